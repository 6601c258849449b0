// Test only: the clear headers of a store's access-history events, read
// from its raw records database (the engine closed), as someone with the
// files but no key could read them.

#ifndef CUSTOS_TESTS_RAW_HISTORY_H_
#define CUSTOS_TESTS_RAW_HISTORY_H_

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <leveldb/db.h>
#include <leveldb/iterator.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "schema/history.capnp.h"
#include "storage/keys.h"

namespace custos::testing {

// What is left of an event once every subject it concerned is shredded.
struct ClearHeader {
  schema::history::Action action;
  std::string principal_id;
  int64_t at_micros = 0;
  uint64_t record_id = 0;  // 0: about no record.
  schema::history::RecordState record_state;
};

// The headers of every event `db` holds (not the stubs pruning left), in
// sequence order.
inline std::vector<ClearHeader> RawEventHeaders(leveldb::DB& db) {
  // LevelDB values carry no alignment guarantee.
  const auto words = [](const void* data, size_t size) {
    kj::Array<capnp::word> w =
        kj::heapArray<capnp::word>(size / sizeof(capnp::word));
    std::memcpy(w.begin(), data, w.size() * sizeof(capnp::word));
    return w;
  };
  std::vector<ClearHeader> out;
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(leveldb::ReadOptions()));
  const std::string prefix(keys::kEventPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    auto stored_words = words(it->value().data(), it->value().size());
    capnp::FlatArrayMessageReader stored_reader(stored_words);
    auto stored = stored_reader.getRoot<schema::history::StoredEvent>();
    if (!stored.isEvent()) continue;
    auto bytes = stored.getEvent();
    auto event_words = words(bytes.begin(), bytes.size());
    capnp::FlatArrayMessageReader event_reader(event_words);
    auto header = event_reader.getRoot<schema::history::Event>().getHeader();
    out.push_back({header.getAction(), header.getPrincipalId(),
                   header.getAtMicros(), header.getRecordId(),
                   header.getRecordState()});
  }
  return out;
}

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_RAW_HISTORY_H_
