// Renderings of the register of processing activities
// (storage/processing_register.h, docs/accountability.md): a versioned JSON
// document for machines and a self-contained HTML page for people. Pure
// functions of the value, like the subject report's renderings: the same
// register always gives the same bytes; every string is escaped and made
// valid UTF-8.
//
// Thread safety: no shared state; may be called from any thread.

#ifndef CUSTOS_REPORT_PROCESSING_REGISTER_H_
#define CUSTOS_REPORT_PROCESSING_REGISTER_H_

#include <string>

#include "storage/processing_register.h"

namespace custos {

inline constexpr char kProcessingRegisterFormat[] =
    "custos-processing-register";
inline constexpr int kProcessingRegisterVersion = 1;

// The register as JSON (members in docs/accountability.md), indented by two
// spaces, ending in a newline.
std::string RenderProcessingRegisterJson(const ProcessingRegister& reg);
// The register as one HTML page, no scripts, no external resources.
std::string RenderProcessingRegisterHtml(const ProcessingRegister& reg);

}  // namespace custos

#endif  // CUSTOS_REPORT_PROCESSING_REGISTER_H_
