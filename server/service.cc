#include "server/service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crypto/guarded_bytes.h"
#include "crypto/master_key.h"
#include "crypto/secret_key.h"
#include "report/processing_register.h"
#include "report/subject_report_html.h"
#include "report/subject_report_json.h"
#include "server/errors.h"

namespace custos::server {

// Consecutive creates of one session, run as one CreateRecords write: one
// hand-over to a worker, one commit and one hand-back to the loop (one
// LoopInbox delivery) for the run, in the order sent
// (Connection::open_creates). The loop's thread appends until a worker
// starts the batch.
struct CreateBatch {
  // The largest run: below Limits::max_batch_records' default (100); a
  // lower configured limit only sends longer runs down the one-by-one
  // path.
  static constexpr size_t kMaxCreates = 64;

  uint64_t session = 0;  // Whose creates (SessionImpl's serial: one actor).
  std::mutex mu;
  bool started = false;            // Guarded by mu.
  std::vector<NewRecord> records;  // Guarded by mu.
  // One per record: the loop's own fulfillers of the calls' promises. A
  // worker only moves them, into the delivery that fulfils them on the
  // loop's thread.
  std::vector<kj::Own<kj::PromiseFulfiller<uint64_t>>> answers;  // Guarded.
};

namespace {

uint64_t NextSessionSerial() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

// Runs `batch` on a worker: CreateRecords for the whole run, or, when the
// engine refuses the run (one record refused refuses it), each create on
// its own, so that each call gets the answer it would have had alone. The
// answers go back to the loop in one delivery. noexcept: the answers must
// reach the loop's thread (a failure to allocate their delivery ends the
// process rather than destroy them here).
void RunCreates(Engine& engine, const Actor& actor, CreateBatch& batch,
                LoopInbox& inbox) noexcept {
  std::vector<NewRecord> records;
  std::vector<kj::Own<kj::PromiseFulfiller<uint64_t>>> answers;
  {
    std::lock_guard lock(batch.mu);
    batch.started = true;
    records = std::move(batch.records);
    answers = std::move(batch.answers);
  }
  std::vector<Result<uint64_t>> results;
  try {
    if (records.size() > 1) {
      auto ids = engine.CreateRecords(actor, records);
      if (ids) {
        for (uint64_t id : *ids) results.emplace_back(id);
      }
    }
    if (results.empty()) {
      for (const NewRecord& r : records) {
        results.push_back(engine.CreateRecord(actor, r));
      }
    }
  } catch (...) {
    // An exception must not escape a worker: the calls not answered yet
    // fail with Internal (below), its text never sent.
  }
  records.clear();  // The personal data, freed here rather than on the loop.
  inbox.Add(
      [answers = std::move(answers), results = std::move(results)]() mutable {
        for (size_t i = 0; i < answers.size(); ++i) {
          if (i < results.size() && results[i]) {
            answers[i]->fulfill(static_cast<uint64_t>(*results[i]));
          } else {
            answers[i]->reject(ToException(
                i < results.size()
                    ? results[i].error()
                    : Status::Internal("the call failed on the server")));
          }
        }
      });
}

// ---- Running engine calls on the pool ---------------------------------------

// A result crossing from a worker to the event loop (through the
// LoopInbox, whose lock orders the hand-off where ThreadSanitizer sees it).
template <typename T>
struct Handoff {
  // The result is made in place (no move of a std::expected, which GCC 12
  // at -O3 takes for a read of uninitialised memory).
  template <typename Fn>
  explicit Handoff(Fn& fn) : value(fn()) {}
  T value;
};

// Runs `fn` on a worker in `lane`; the promise resolves on the event
// loop's thread with its result, delivered through `inbox`.
template <typename T>
kj::Promise<kj::Own<T>> OnLane(WorkerPool& pool, LoopInbox& inbox,
                               const std::shared_ptr<WorkerPool::Lane>& lane,
                               std::move_only_function<T()> fn) {
  // The result crosses threads on the heap: kj's promise machinery then
  // moves a pointer only (and GCC 12 sees no uninitialised std::expected
  // in kj's ExceptionOr).
  auto paf = kj::newPromiseAndFulfiller<kj::Own<Handoff<T>>>();
  pool.Post(lane, [fn = std::move(fn), answer = kj::mv(paf.fulfiller),
                   &inbox]() mutable noexcept {
    // An exception must not escape a worker (it would end the server):
    // the call fails with Internal, its text never sent.
    kj::Own<Handoff<T>> handoff;
    try {
      handoff = kj::heap<Handoff<T>>(fn);
    } catch (...) {
    }
    // The loop's fulfiller is only moved here; it is used and destroyed
    // on the loop's thread.
    inbox.Add([answer = kj::mv(answer), handoff = kj::mv(handoff)]() mutable {
      if (handoff.get() != nullptr) {
        answer->fulfill(kj::mv(handoff));
      } else {
        answer->reject(
            ToException(Status::Internal("the call failed on the server")));
      }
    });
  });
  return paf.promise.then([](kj::Own<Handoff<T>> handoff) {
    return kj::heap<T>(std::move(handoff->value));
  });
}

// Posts the connection's open run of creates if it waits to be
// (Connection::unposted_creates).
void PostCreates(Connection& conn) {
  if (conn.unposted_creates == nullptr) return;
  std::move_only_function<void()> task = std::move(conn.unposted_creates);
  conn.unposted_creates = nullptr;
  conn.pool.Post(conn.lane, std::move(task));
}

}  // namespace

Status StoppingRefusal() {
  return Status::Unavailable(
      "the server is stopping; try again once it has started again");
}

namespace {

// In the connection's lane: its calls in the order sent. Refused once the
// server stops (Connection::stopping).
template <typename T>
kj::Promise<kj::Own<T>> OnWorker(Connection& conn,
                                 std::move_only_function<T()> fn) {
  if (conn.stopping.stop_requested()) {
    return kj::Promise<kj::Own<T>>(ToException(StoppingRefusal()));
  }
  PostCreates(conn);            // Creates sent before this call run first,
  conn.open_creates = nullptr;  // and a later create runs after it.
  return OnLane<T>(conn.pool, conn.inbox, conn.lane, std::move(fn));
}

// Long work, on one of the server's two long lanes (LongWork): refused
// with Unavailable while another call of that lane, of any connection,
// runs. `busy` is
// cleared by the worker as the work ends, before its answer is sent, so a
// client that waited for one long call's answer may start the next; a
// call the client abandoned keeps the lane until its work ends.
//
// The call is published on the server's WorkBoard (Admin.progress) as
// `operation` once it has the lane (on the loop's thread, so a progress
// call answered after this one was accepted never shows the one before),
// with what the engine reports through the WorkProgressFn given to `fn`,
// and with its outcome when it ends, however it ends (an exception out of
// `fn` is Internal). Every call that had the lane is shown, a refused one
// too: "the last long call" is the last one, whatever became of it.
inline Status OutcomeOf(const Status& s) { return s; }
template <typename X>
Status OutcomeOf(const Result<X>& r) {
  return r ? Status::Ok() : r.error();
}

template <typename T>
kj::Promise<kj::Own<T>> OnWorkLane(
    Connection& conn, std::shared_ptr<LongWork> work, const Actor& actor,
    std::initializer_list<Role> roles, std::string_view operation,
    std::string_view busy_message,
    std::move_only_function<T(const WorkProgressFn&)> fn) {
  // A principal revoked (or without the role) neither takes the lane from
  // the others nor shows on the board: refused first, as the engine would
  // refuse it (a review, helper-123: a revoked admin's facet held the lane
  // with calls refused on the worker).
  if (conn.stopping.stop_requested()) {
    return kj::Promise<kj::Own<T>>(ToException(StoppingRefusal()));
  }
  if (Status allowed = conn.engine.MayAct(actor, roles); !allowed.ok()) {
    return kj::Promise<kj::Own<T>>(ToException(allowed));
  }
  bool idle = false;
  if (!work->busy.compare_exchange_strong(idle, true)) {
    return kj::Promise<kj::Own<T>>(
        ToException(Status::Unavailable(std::string(busy_message))));
  }
  work->board.Begin(operation, ToMicros(conn.engine.Now()));
  return OnLane<T>(
      conn.pool, conn.inbox, work->lane,
      [fn = std::move(fn), work, engine = &conn.engine]() mutable -> T {
        // Declared first: the board ends before the lane is free.
        struct EndBusy {
          LongWork& w;
          ~EndBusy() { w.busy.store(false); }
        } end_busy{*work};
        struct EndOnBoard {
          LongWork& w;
          Engine& engine;
          bool ended = false;
          ~EndOnBoard() {
            if (!ended) {
              w.board.End(Status::Internal("the call failed"),
                          ToMicros(engine.Now()));
            }
          }
        } end_on_board{*work, *engine};
        const WorkProgressFn progress = [&w = *work](const WorkProgress& p) {
          w.board.Progress(p);
          if (w.TEST_work_progress) w.TEST_work_progress(p);
        };
        T result = fn(progress);
        work->board.End(OutcomeOf(result), ToMicros(engine->Now()));
        end_on_board.ended = true;
        return result;
      });
}

// The maintenance lane (the Admin facet's long calls).
template <typename T>
kj::Promise<kj::Own<T>> OnLongLane(
    Connection& conn, const Actor& actor, std::string_view operation,
    std::move_only_function<T(const WorkProgressFn&)> fn) {
  return OnWorkLane<T>(conn, conn.long_work, actor, {Role::kAdmin}, operation,
                       "another long operation is running on this server; "
                       "try again once it has ended",
                       std::move(fn));
}

// The reading lane (verifyChain and processingRegister, of the Auditor and
// Admin facets).
template <typename T>
kj::Promise<kj::Own<T>> OnReadingLane(
    Connection& conn, const Actor& actor, std::string_view operation,
    std::move_only_function<T(const WorkProgressFn&)> fn) {
  return OnWorkLane<T>(conn, conn.reading_work, actor,
                       {Role::kAuditor, Role::kAdmin}, operation,
                       "another verifyChain or processingRegister is running "
                       "on this server; try again once it has ended",
                       std::move(fn));
}

[[noreturn]] void Throw(const Status& status) {
  kj::throwFatalException(ToException(status));
}

// By reference: moving the Result into a parameter first makes GCC 12 at
// -O3 warn of an uninitialised std::expected (a false positive).
template <typename T>
T Value(Result<T>&& r) {
  if (!r) Throw(r.error());
  return std::move(*r);
}

void Check(const Status& s) {
  if (!s.ok()) Throw(s);
}

// ---- Conversions (on the loop thread)
// -----------------------------------------

std::string Str(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

// Identifiers a client sends (subject, hold and principal ids, grantees,
// tokens; page keys): at most kMaxIdBytes bytes, checked here before any
// work, so that no lookup, key or log line is made of megabytes a client
// chose. Every id Custos makes is far shorter (principal ids at most
// Limits::max_id_length; subject and hold ids fixed-size).
constexpr size_t kMaxIdBytes = 256;

std::string IdStr(capnp::Text::Reader t, const char* what) {
  if (t.size() > kMaxIdBytes) {
    Throw(Status::InvalidArgument(std::string(what) + " must be at most " +
                                  std::to_string(kMaxIdBytes) + " bytes"));
  }
  return Str(t);
}

// A credential the server has put into an answer: its own copy wiped (the
// message's is the RPC system's, freed once sent).
void Wipe(std::string& secret) {
  crypto::Wipe({reinterpret_cast<uint8_t*>(secret.data()), secret.size()});
}

capnp::Text::Reader Txt(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

int64_t Micros(const std::optional<Timestamp>& t) {
  return t ? ToMicros(*t) : 0;
}

std::vector<Field> FromRpc(capnp::List<rpc::Field>::Reader fields) {
  std::vector<Field> out;
  for (auto f : fields) out.push_back({Str(f.getName()), Str(f.getValue())});
  return out;
}

std::vector<Attribute> FromRpc(capnp::List<rpc::Attribute>::Reader attrs) {
  std::vector<Attribute> out;
  for (auto a : attrs) out.push_back({Str(a.getKey()), Str(a.getValue())});
  return out;
}

std::optional<Purpose> PurposeOf(bool has, rpc::Purpose::Reader p) {
  if (!has) return std::nullopt;
  PurposeKind kind = PurposeKind::kProofOfExchange;
  switch (p.getKind()) {
    case rpc::PurposeKind::PROOF_OF_EXCHANGE:
      kind = PurposeKind::kProofOfExchange;
      break;
    case rpc::PurposeKind::SUBJECT_CONSENT:
      kind = PurposeKind::kSubjectConsent;
      break;
    case rpc::PurposeKind::PUBLIC_INTEREST:
      kind = PurposeKind::kPublicInterest;
      break;
    default:
      Throw(Status::InvalidArgument("unknown purpose kind"));
  }
  return Purpose{kind, Str(p.getJustification())};
}

RecordState FromRpc(rpc::RecordState s) {
  switch (s) {
    case rpc::RecordState::ACTIVE:
      return RecordState::kActive;
    case rpc::RecordState::CLOSED:
      return RecordState::kClosed;
    case rpc::RecordState::BLOCKED:
      return RecordState::kBlocked;
    case rpc::RecordState::ERASED:
      return RecordState::kErased;
  }
  Throw(Status::InvalidArgument("unknown record state"));
}

rpc::RecordState ToRpc(RecordState s) {
  switch (s) {
    case RecordState::kActive:
      return rpc::RecordState::ACTIVE;
    case RecordState::kClosed:
      return rpc::RecordState::CLOSED;
    case RecordState::kBlocked:
      return rpc::RecordState::BLOCKED;
    case RecordState::kErased:
      return rpc::RecordState::ERASED;
  }
  return rpc::RecordState::ERASED;
}

Role FromRpc(rpc::Role r) {
  switch (r) {
    case rpc::Role::USER:
      return Role::kUser;
    case rpc::Role::OFFICER:
      return Role::kOfficer;
    case rpc::Role::AUDITOR:
      return Role::kAuditor;
    case rpc::Role::ADMIN:
      return Role::kAdmin;
  }
  Throw(Status::InvalidArgument("unknown role"));
}

rpc::Role ToRpc(Role r) {
  switch (r) {
    case Role::kUser:
      return rpc::Role::USER;
    case Role::kOfficer:
      return rpc::Role::OFFICER;
    case Role::kAuditor:
      return rpc::Role::AUDITOR;
    case Role::kAdmin:
      return rpc::Role::ADMIN;
  }
  return rpc::Role::USER;
}

// The counts of a new record's lists, before it is copied: a message of a
// few MiB holding hundreds of thousands of empty attributes or fields would
// otherwise be built into as many strings on the loop before the engine
// refused it (hostile review, helper-113).
// `position`: the record's in a createMany (from 0), named as the engine
// names it ("record 1: ..."); none for create.
void CheckCounts(rpc::NewRecord::Reader r, const Limits& limits,
                 std::optional<size_t> position = std::nullopt) {
  const auto parts = r.getPersonal();
  size_t most_fields = 0;
  if (parts.size() <= limits.max_subjects_per_record) {
    for (auto part : parts)
      most_fields = std::max<size_t>(most_fields, part.getFields().size());
  }
  const Status counted =
      CheckNewRecordCounts(r.getAttributes().size(), parts.size(), most_fields,
                           r.getGrants().size(), limits);
  if (counted.ok()) return;
  if (!position) Throw(counted);
  Throw(Status(counted.code(), "record " + std::to_string(*position) + ": " +
                                   counted.message()));
}

NewRecord FromRpc(rpc::NewRecord::Reader r) {
  NewRecord out;
  out.kind = Str(r.getKind());
  out.attributes = FromRpc(r.getAttributes());
  for (auto p : r.getPersonal()) {
    out.personal.push_back(
        {Str(p.getSubjectIdentifier()), FromRpc(p.getFields())});
  }
  for (auto g : r.getGrants()) out.grants.push_back(IdStr(g, "a grantee"));
  out.sensitive = r.getSensitive();
  return out;
}

void SetFields(capnp::List<rpc::Field>::Builder out,
               const std::vector<Field>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    out[i].setName(Txt(fields[i].name));
    out[i].setValue(Txt(fields[i].value));
  }
}

void SetTexts(capnp::List<capnp::Text>::Builder out,
              const std::vector<std::string>& texts) {
  for (size_t i = 0; i < texts.size(); ++i) out.set(i, Txt(texts[i]));
}

void ToRpc(const RecordView& v, rpc::Record::Builder b) {
  b.setId(v.id);
  b.setKind(Txt(v.kind));
  b.setOwner(Txt(v.owner));
  SetTexts(b.initGrants(v.grants.size()), v.grants);
  auto attrs = b.initAttributes(v.attributes.size());
  for (size_t i = 0; i < v.attributes.size(); ++i) {
    attrs[i].setKey(Txt(v.attributes[i].key));
    attrs[i].setValue(Txt(v.attributes[i].value));
  }
  b.setState(ToRpc(v.state));
  b.setSensitive(v.sensitive);
  b.setVersion(v.version);
  b.setCreatedAtMicros(ToMicros(v.created_at));
  b.setUpdatedAtMicros(ToMicros(v.updated_at));
  b.setClosedAtMicros(Micros(v.closed_at));
  b.setBlockedAtMicros(Micros(v.blocked_at));
  b.setErasedAtMicros(Micros(v.erased_at));
  SetTexts(b.initSubjectIds(v.subject_ids.size()), v.subject_ids);
  b.setPersonalIncluded(v.personal_included);
  b.setPurposeRequired(v.purpose_required);
  auto parts = b.initParts(v.parts.size());
  for (size_t i = 0; i < v.parts.size(); ++i) {
    parts[i].setSubjectId(Txt(v.parts[i].subject_id));
    parts[i].setSubjectIdentifier(Txt(v.parts[i].subject_identifier));
    parts[i].setVersion(v.parts[i].version);
    SetFields(parts[i].initFields(v.parts[i].fields.size()), v.parts[i].fields);
  }
  auto flags = b.initFlags(v.flags.size());
  for (size_t i = 0; i < v.flags.size(); ++i) {
    flags[i].setBy(Txt(v.flags[i].by));
    flags[i].setAtMicros(ToMicros(v.flags[i].at));
    flags[i].setSubjectId(Txt(v.flags[i].subject_id));
    flags[i].setNote(Txt(v.flags[i].note));
  }
  auto contests = b.initContests(v.contests.size());
  for (size_t i = 0; i < v.contests.size(); ++i) {
    contests[i].setBy(Txt(v.contests[i].by));
    contests[i].setAtMicros(ToMicros(v.contests[i].at));
    contests[i].setSubjectId(Txt(v.contests[i].subject_id));
    contests[i].setStatement(Txt(v.contests[i].statement));
    SetFields(contests[i].initCorrected(v.contests[i].corrected.size()),
              v.contests[i].corrected);
  }
}

// Words of a Text of `size` bytes in a message: its pointer, and its bytes
// with the terminating NUL, rounded up to whole words.
uint64_t TextWords(size_t size) { return 1 + (size + 8) / 8; }

// A getMany entry's error: the text of the exception the single get would
// throw ("<Code>: <message>").
std::string ErrorText(const Status& error) {
  return std::string(StatusCodeName(error.code()))
      .append(": ")
      .append(error.message());
}

// Words of a struct of type T in a message (its pointers' targets apart).
template <typename T>
constexpr uint64_t StructWords() {
  return T::_capnpPrivate::dataWordSize + T::_capnpPrivate::pointerCount;
}

// Words of a list of texts: one for a far pointer's landing pad (below),
// and each text's.
uint64_t TextsWords(const std::vector<std::string>& texts) {
  uint64_t words = 1;
  for (const std::string& t : texts) words += TextWords(t.size());
  return words;
}

// Words of a list of structs: its tag, a landing pad, the structs.
template <typename T>
uint64_t StructListWords(size_t count) {
  return 2 + count * StructWords<T>();
}

uint64_t FieldsWords(const std::vector<Field>& fields) {
  uint64_t words = StructListWords<rpc::Field>(fields.size());
  for (const Field& f : fields) {
    words += TextWords(f.name.size()) + TextWords(f.value.size());
  }
  return words;
}

}  // namespace

void WorkBoard::Begin(std::string_view operation, int64_t now_micros) {
  std::lock_guard lock(mu_);
  view_ = View{};
  view_.operation = std::string(operation);
  view_.running = true;
  view_.started_micros = now_micros;
}

void WorkBoard::Progress(const WorkProgress& progress) {
  std::lock_guard lock(mu_);
  view_.phase.assign(progress.phase);
  view_.unit.assign(progress.unit);
  view_.done = progress.done;
  view_.total = progress.total;
}

void WorkBoard::End(const Status& outcome, int64_t now_micros) {
  std::lock_guard lock(mu_);
  view_.running = false;
  view_.ended_micros = now_micros;
  view_.outcome = std::string(StatusCodeName(outcome.code()));
}

WorkBoard::View WorkBoard::Read() const {
  std::lock_guard lock(mu_);
  return view_;
}

void RecordToRpc(const RecordView& view, rpc::Record::Builder out) {
  ToRpc(view, out);
}

uint64_t RecordAnswerWords(const RecordView& v) {
  // Every pointer is counted twice, in its struct or list and once more
  // (TextWords, TextsWords, StructListWords, the record's own): where its
  // target lies in another segment of the message, Cap'n Proto writes a
  // far pointer and a landing pad of one word beside the target, which
  // totalSize() leaves out but the transport sends. A bound, not a size.
  uint64_t words = 1 + StructWords<rpc::Record>() + TextWords(v.kind.size()) +
                   TextWords(v.owner.size()) + TextsWords(v.grants) +
                   TextsWords(v.subject_ids);
  words += StructListWords<rpc::Attribute>(v.attributes.size());
  for (const Attribute& a : v.attributes) {
    words += TextWords(a.key.size()) + TextWords(a.value.size());
  }
  words += StructListWords<rpc::Part>(v.parts.size());
  for (const PartView& p : v.parts) {
    words += TextWords(p.subject_id.size()) +
             TextWords(p.subject_identifier.size()) + FieldsWords(p.fields);
  }
  words += StructListWords<rpc::Flag>(v.flags.size());
  for (const FlagView& f : v.flags) {
    words += TextWords(f.by.size()) + TextWords(f.subject_id.size()) +
             TextWords(f.note.size());
  }
  words += StructListWords<rpc::Contest>(v.contests.size());
  for (const ContestView& c : v.contests) {
    words += TextWords(c.by.size()) + TextWords(c.subject_id.size()) +
             TextWords(c.statement.size()) + FieldsWords(c.corrected);
  }
  return words;
}

namespace {

void ToRpc(const HoldView& h, rpc::Hold::Builder b) {
  b.setId(Txt(h.id));
  b.setRecordId(h.record_id.value_or(0));
  b.setSubjectId(Txt(h.subject_id.value_or("")));
  b.setReason(Txt(h.reason));
  b.setSetBy(Txt(h.set_by));
  b.setSetAtMicros(ToMicros(h.set_at));
  b.setEndsAtMicros(ToMicros(h.ends_at));
  b.setReleasedAtMicros(Micros(h.released_at));
  b.setReleasedBy(Txt(h.released_by));
}

void ToRpc(const PrincipalInfo& p, rpc::Principal::Builder b) {
  b.setId(Txt(p.id));
  b.setDisplayName(Txt(p.display_name));
  auto roles = b.initRoles(p.roles.size());
  for (size_t i = 0; i < p.roles.size(); ++i) roles.set(i, ToRpc(p.roles[i]));
  b.setRedacted(p.redacted);
  b.setRevoked(p.revoked);
  b.setCreatedAtMicros(ToMicros(p.created_at));
}

void ToRpc(const RetentionPolicy& p, rpc::RetentionPolicy::Builder b) {
  b.setKind(Txt(p.kind));
  if (p.close_after) b.setCloseAfter(Txt(p.close_after->ToString()));
  if (p.block_after) b.setBlockAfter(Txt(p.block_after->ToString()));
  b.setEraseAfter(Txt(p.erase_after.ToString()));
  b.setHistoryAfter(Txt(p.history_after.ToString()));
}

// A policy's period: "" is absent. InvalidArgument naming the field.
// No ISO 8601 period the engine accepts is longer; a longer text is
// refused unparsed.
constexpr size_t kMaxPeriodText = 64;

std::optional<Period> PeriodOf(capnp::Text::Reader text, const char* field,
                               bool required) {
  if (text.size() == 0) {
    if (!required) return std::nullopt;
    Throw(Status::InvalidArgument(
        std::string("policy field ").append(field).append(" is required")));
  }
  // Not ParsePeriod's message, which quotes the text (a client's text is
  // never echoed: it may be anything); nor is a longer text than any
  // period parsed.
  const Status not_a_period = Status::InvalidArgument(
      std::string("policy field ")
          .append(field)
          .append(" is not an ISO 8601 period (as P6M or P3Y)"));
  if (text.size() > kMaxPeriodText) Throw(not_a_period);
  auto period = ParsePeriod(std::string_view(text.cStr(), text.size()));
  if (!period) Throw(not_a_period);
  return *period;
}

RetentionPolicy FromRpc(rpc::RetentionPolicy::Reader p) {
  RetentionPolicy out;
  out.kind = Str(p.getKind());
  out.close_after = PeriodOf(p.getCloseAfter(), "closeAfter", false);
  out.block_after = PeriodOf(p.getBlockAfter(), "blockAfter", false);
  out.erase_after = *PeriodOf(p.getEraseAfter(), "eraseAfter", true);
  out.history_after = *PeriodOf(p.getHistoryAfter(), "historyAfter", true);
  return out;
}

// Cap'n Proto checks an answer against the server's own message limit
// and, over it, sends an exception of its own instead (which a client
// reads as "InvalidArgument: malformed request", server/errors.h). The
// results struct, its pointer and the RPC message around an answer:
constexpr uint64_t kAnswerEnvelopeWords = 64;
// The largest first segment Cap'n Proto gives an answer (OneSegment).
constexpr uint64_t kMaxSizeHintWords = uint64_t{1} << 20;

// OK if an answer of at most `words` words (without its envelope), `what`,
// can be sent; ResourceExhausted saying so otherwise.
Status AnswerFits(uint64_t max_message_words, uint64_t words,
                  const char* what) {
  if (words + kAnswerEnvelopeWords < max_message_words) return Status::Ok();
  return Status::ResourceExhausted(
      std::string(what).append(" would be larger than the server's message "
                               "limit (custosd --max-message-bytes)"));
}

// Answers of records, bounded (RecordAnswerWords) before the reads they
// disclose are recorded (BeforeDisclosure, storage/types.h): one too large
// to send is refused with nothing recorded, where one refused once built
// would leave reads in the history that no one received.
Status RecordsFit(uint64_t max_message_words, const RecordView& view) {
  return AnswerFits(max_message_words, RecordAnswerWords(view), "the record");
}

Status RecordsFit(uint64_t max_message_words, const ListPage& page) {
  uint64_t words = 2;  // The list's tag and landing pad.
  for (const RecordView& view : page.records) words += RecordAnswerWords(view);
  return AnswerFits(max_message_words, words, "the page");
}

Status RecordsFit(uint64_t max_message_words,
                  const std::vector<Result<RecordView>>& answers) {
  uint64_t words = StructListWords<rpc::GetResult>(answers.size());
  for (const Result<RecordView>& answer : answers) {
    words += answer ? RecordAnswerWords(*answer)
                    : TextWords(ErrorText(answer.error()).size());
  }
  return AnswerFits(max_message_words, words, "the records asked for");
}

// A bound of `words` words, checked before an answer is built, as
// CheckAnswerSize will check the answer once built: doubled past the size
// hint Cap'n Proto caps (far pointers), so that an answer this passes is
// never refused afterwards, its events written (helper-126).
Status BoundFits(uint64_t max_message_words, uint64_t words, const char* what) {
  if (words + kAnswerEnvelopeWords >= kMaxSizeHintWords) words *= 2;
  return AnswerFits(max_message_words, words, what);
}

// The answers of an auditor's disclosures, bounded the same way before
// their events are written: a history page (its access_history event), a
// breach scope (its breach_scope events), a subject report (its report
// event, once rendered). Each pointer counted twice, as in
// RecordAnswerWords.
Status HistoryPageFits(uint64_t max_message_words,
                       const AccessHistoryPage& page) {
  uint64_t words = 2 + StructListWords<rpc::AccessEvent>(page.events.size());
  for (const AccessEvent& e : page.events) {
    words +=
        TextWords(e.principal_id.size()) + TextWords(e.principal_name.size()) +
        TextWords(e.action.size()) + TextWords(e.record_kind.size()) +
        TextsWords(e.fields) +
        TextWords(e.purpose ? PurposeKindName(*e.purpose).size() : 0) +
        TextWords(e.justification.size()) +
        TextWords(e.record_state ? RecordStateName(*e.record_state).size() : 0);
  }
  return BoundFits(max_message_words, words, "the history page");
}

Status BreachScopeFits(uint64_t max_message_words, const BreachScope& scope) {
  uint64_t words =
      1 + StructWords<rpc::BreachScope>() + TextWords(scope.auditor_id.size()) +
      TextsWords(scope.principal_ids) + TextWords(scope.purpose.size()) +
      StructListWords<rpc::BreachSubject>(scope.subjects.size());
  for (const BreachSubject& s : scope.subjects) {
    words += TextWords(s.subject_id.size()) + TextWords(s.identifier.size()) +
             2 + s.record_ids.size() + TextsWords(s.fields) +
             StructListWords<rpc::BreachDisclosure>(s.disclosures.size());
    for (const BreachDisclosure& d : s.disclosures) {
      words += TextWords(d.principal_id.size()) +
               TextWords(d.principal_name.size()) + TextWords(d.action.size()) +
               TextWords(d.record_kind.size()) +
               TextWords(d.purpose ? PurposeKindName(*d.purpose).size() : 0) +
               TextWords(d.justification.size()) + TextsWords(d.fields);
    }
  }
  return BoundFits(max_message_words, words, "the breach scope");
}

// An answer holding one text of `size` bytes, `what`: ResourceExhausted,
// saying so, when it would be too large to send.
void CheckAnswerText(uint64_t max_message_words, size_t size,
                     const char* what) {
  if (TextWords(size) + kAnswerEnvelopeWords < max_message_words) return;
  Throw(Status::ResourceExhausted(
      std::string(what).append(" is larger than the server's message limit "
                               "(custosd --max-message-bytes)")));
}

// The largest chunk Auditor.subjectReportTo writes to a client's sink: 1
// MiB, and at most a quarter of the server's message limit (so a chunk and
// its call always fit that limit, and a client that reads what the server
// may send reads it).
size_t SinkChunkBytes(uint64_t max_message_words) {
  const uint64_t quarter = max_message_words * sizeof(capnp::word) / 4;
  return static_cast<size_t>(
      std::clamp<uint64_t>(quarter, uint64_t{64}, uint64_t{1} << 20));
}

// `sent` (a write to, or the end of, a client's ByteSink) within the
// connection's sink_timeout, its failure replaced by Unavailable: the
// client's own exception (its text is the client's) is not passed on.
kj::Promise<void> SinkStep(kj::Promise<void> sent, Connection& conn) {
  return sent
      .catch_([](kj::Exception&&) {
        Throw(Status::Unavailable(
            "the subject report could not be written to the client's "
            "sink"));
      })
      .exclusiveJoin(
          conn.timer.afterDelay(conn.sink_timeout.count() * kj::MILLISECONDS)
              .then([]() {
                Throw(Status::Unavailable(
                    "the client's sink took no part of the subject report in "
                    "time"));
              }));
}

// Writes `document` from `offset` to `sink`, a chunk of at most `chunk`
// bytes at a time (each one sent once the stream's flow control lets it),
// then ends it. `document` and `conn` outlive the promise.
kj::Promise<void> WriteToSink(rpc::ByteSink::Client sink,
                              const std::string& document, size_t offset,
                              size_t chunk, Connection& conn) {
  if (offset >= document.size()) {
    return SinkStep(sink.endRequest().send().ignoreResult(), conn);
  }
  const size_t n = std::min(chunk, document.size() - offset);
  auto write =
      sink.writeRequest(capnp::MessageSize{n / sizeof(capnp::word) + 8, 0});
  write.setChunk(kj::arrayPtr(
      reinterpret_cast<const capnp::byte*>(document.data()) + offset, n));
  return SinkStep(write.send(), conn)
      .then(
          [sink = kj::mv(sink), &document, offset, n, chunk, &conn]() mutable {
            return WriteToSink(kj::mv(sink), document, offset + n, chunk, conn);
          });
}

// A subject report being sent to a client's sink (subjectReportTo), from
// its call's arrival to its end, counted on the event loop: at most
// kMaxStreamsPerConnection per connection, kMaxStreamsPerPrincipal to one
// principal over all its connections (one auditor cannot take every slot)
// and kMaxStreamsPerServer in all, each holding its rendered document in
// memory meanwhile.
constexpr size_t kMaxStreamsPerConnection = 1;
constexpr size_t kMaxStreamsPerPrincipal = 2;
constexpr size_t kMaxStreamsPerServer = 4;

// Owns what it counts: the call's promise may outlive its connection's
// other holders.
class StreamSlot {
 public:
  StreamSlot(std::shared_ptr<Connection> conn, std::string principal)
      : conn_(std::move(conn)),
        server_(conn_->server_streams),
        principal_(std::move(principal)) {
    ++conn_->streams;
    ++server_->total;
    ++server_->by_principal[principal_];
  }
  ~StreamSlot() {
    --conn_->streams;
    --server_->total;
    const auto it = server_->by_principal.find(principal_);
    if (--it->second == 0) server_->by_principal.erase(it);
  }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  const std::shared_ptr<Connection> conn_;
  const std::shared_ptr<ReportStreams> server_;
  const std::string principal_;
};

// A slot for one more subject report sent to a sink for `principal`, or
// Unavailable (before anything is produced or recorded) when the
// connection, the principal or the server is sent as many as it may.
kj::Own<StreamSlot> TakeStreamSlot(const std::shared_ptr<Connection>& conn,
                                   const std::string& principal) {
  if (conn->streams >= kMaxStreamsPerConnection) {
    Throw(Status::Unavailable(
        "a subject report is being sent on this connection; try again once "
        "it has ended"));
  }
  const auto sent = conn->server_streams->by_principal.find(principal);
  if (sent != conn->server_streams->by_principal.end() &&
      sent->second >= kMaxStreamsPerPrincipal) {
    Throw(Status::Unavailable(
        std::string("this principal is being sent ")
            .append(std::to_string(kMaxStreamsPerPrincipal))
            .append(" subject reports; try again once one has ended")));
  }
  if (conn->server_streams->total >= kMaxStreamsPerServer) {
    Throw(Status::Unavailable(
        "too many subject reports are being sent by this server; try again "
        "once one has ended"));
  }
  return kj::heap<StreamSlot>(conn, principal);
}

// `written` (a whole subject report to a client's sink) within the
// connection's sink_deadline, or Unavailable: a sink that takes each chunk
// just within sink_timeout cannot hold the report and its slot for longer.
kj::Promise<void> WithinSinkDeadline(kj::Promise<void> written,
                                     Connection& conn) {
  return written.exclusiveJoin(
      conn.timer.afterDelay(conn.sink_deadline.count() * kj::MILLISECONDS)
          .then([]() {
            Throw(Status::Unavailable(
                "the client's sink did not take the whole subject report in "
                "time"));
          }));
}

// The same for an answer already built in `results`, `what` (a list whose
// length the caller chose, or records whose size their writers chose):
// its words counted by walking it. Thrown, the exception goes out in a
// message of its own and the built answer is dropped.
template <typename Results>
void CheckAnswerSize(uint64_t max_message_words, Results results,
                     const char* what) {
  uint64_t words = results.totalSize().wordCount;
  // Built past its first segment (OneSegment), an answer may hold far
  // pointers, each with a landing pad of one word that totalSize() leaves
  // out: at most one per word walked.
  if (words + kAnswerEnvelopeWords >= kMaxSizeHintWords) words *= 2;
  Check(AnswerFits(max_message_words, words, what));
}

// The size hint of an answer checked once built (CheckAnswerSize): its
// first segment as large as the limit, so that it is built in one segment,
// without far pointers, and the size walked is the size sent. Cap'n Proto
// caps a hint at 2^20 words (rpc.c++, MAX_SIZE_HINT); the segment's pages
// that the answer does not use are never touched.
capnp::MessageSize OneSegment(uint64_t max_message_words) {
  return {std::min(max_message_words, kMaxSizeHintWords), 0};
}

// `report` with its per-record lists within `budget_words` (schema,
// SweepReport): a sweep of 500,000 due records lists 12 MB of transitions,
// over the 8 MiB an answer may have. Each list keeps its first entries
// while their words (counted as Cap'n Proto lays them out, each list's tag
// word included) fit in what the lists before it left; the rest are
// counted as omitted.
void ToRpc(const SweepReport& report, rpc::SweepReport::Builder out,
           uint64_t budget_words) {
  // The kinds whose policy failed its MAC are listed whole (at most
  // kMaxPolicyKinds short texts), out of the same budget (helper-123).
  const uint64_t kinds_words = TextsWords(report.unauthenticated_policies);
  uint64_t left = budget_words > kinds_words ? budget_words - kinds_words : 0;
  // How many of `n` entries fit, entry i taking words(i); takes them from
  // `left`.
  const auto fitting = [&left](size_t n, auto&& words) {
    if (left == 0) return size_t{0};
    --left;  // The list's tag word.
    size_t i = 0;
    for (; i < n; ++i) {
      const uint64_t w = words(i);
      if (w > left) break;
      left -= w;
    }
    return i;
  };
  // SkippedRecord: one data word and a pointer to its reason;
  // HeldErasure: two, and a pointer to its list of ids; Transition: three
  // data words. The rarer lists first: the records a sweep could not read
  // (an operator's to repair) and those a hold kept are never crowded out
  // by the transitions of a large backlog.
  const size_t skipped_listed =
      fitting(report.skipped.size(), [&report](size_t i) -> uint64_t {
        return 1 + TextWords(report.skipped[i].reason.size());
      });
  const size_t held_listed =
      fitting(report.held.size(), [&report](size_t i) -> uint64_t {
        uint64_t w = 3;
        for (const std::string& id : report.held[i].hold_ids)
          w += TextWords(id.size());
        return w;
      });
  const size_t transitions_listed =
      fitting(report.transitions.size(), [](size_t) -> uint64_t { return 3; });
  out.setTransitionsOmitted(report.transitions.size() - transitions_listed);
  out.setHeldOmitted(report.held.size() - held_listed);
  out.setSkippedRecordsOmitted(report.skipped.size() - skipped_listed);
  out.setClosed(report.closed);
  out.setBlocked(report.blocked);
  out.setErased(report.erased);
  out.setPostponed(report.postponed);
  out.setHistoryPruned(report.history_pruned);
  out.setHistoryBehind(report.history_behind);
  out.setHistoryExamined(report.history_examined);
  out.setHistoryUnauthenticated(report.history_unauthenticated);
  SetTexts(
      out.initUnauthenticatedPolicies(report.unauthenticated_policies.size()),
      report.unauthenticated_policies);
  out.setComplete(report.complete);
  out.setSkipped(report.skipped.size());
  out.setMalformedIndexKeys(report.malformed_index_keys);
  auto transitions = out.initTransitions(transitions_listed);
  for (size_t i = 0; i < transitions_listed; ++i) {
    const PlannedTransition& t = report.transitions[i];
    transitions[i].setRecordId(t.record_id);
    transitions[i].setFrom(ToRpc(t.from));
    transitions[i].setTo(ToRpc(t.to));
    transitions[i].setDueMicros(ToMicros(t.due));
  }
  auto held = out.initHeld(held_listed);
  for (size_t i = 0; i < held_listed; ++i) {
    held[i].setRecordId(report.held[i].record_id);
    held[i].setErasableAtMicros(ToMicros(report.held[i].erasable_at));
    SetTexts(held[i].initHoldIds(report.held[i].hold_ids.size()),
             report.held[i].hold_ids);
  }
  auto skipped = out.initSkippedRecords(skipped_listed);
  for (size_t i = 0; i < skipped_listed; ++i) {
    skipped[i].setRecordId(report.skipped[i].record_id);
    skipped[i].setReason(Txt(report.skipped[i].reason));
  }
}

void ToRpc(const std::vector<BackupFile>& files,
           capnp::List<rpc::BackupFile>::Builder out) {
  for (size_t i = 0; i < files.size(); ++i) {
    out[i].setName(Txt(files[i].name));
    out[i].setSize(files[i].size);
    out[i].setBlake2bHex(Txt(files[i].blake2b_hex));
  }
}

void SetHolds(const std::vector<HoldView>& holds,
              capnp::List<rpc::Hold>::Builder out) {
  for (size_t i = 0; i < holds.size(); ++i) ToRpc(holds[i], out[i]);
}

// A path on the server's host, from an admin: absolute, without "..", at
// most PATH_MAX. Never echoed (docs/decisions.md).
std::string ServerPath(capnp::Text::Reader text) {
  const std::string path = Str(text);
  const bool ok = path.starts_with('/') && path.size() < 4096 &&
                  path.find('\0') == std::string::npos &&
                  path.find("/../") == std::string::npos &&
                  !path.ends_with("/..");
  if (!ok) {
    Throw(Status::InvalidArgument(
        "a path on the server must be absolute, without '..'"));
  }
  return path;
}

// For engine calls that take no actor (CompleteShreds, VerifyBackup): the
// caller must hold the admin role now, as every Admin call checks.
Status RequireAdmin(Engine& engine, const Actor& actor) {
  auto who = engine.WhoAmI(actor);
  if (!who) return who.error();
  if (!who->HasRole(Role::kAdmin)) {
    return Status::PermissionDenied("this call needs the admin role");
  }
  return Status::Ok();
}

// `path` must lie strictly inside `dir`: first as written (against `dir`
// as configured or resolved), before the filesystem is touched, so that a
// path elsewhere gets one answer whatever is there (a directory the server
// may not search must not answer otherwise than a missing one); then with
// the symbolic links of its existing part resolved, against `dir`
// resolved. PermissionDenied with `outside` otherwise. Returns the path
// resolved, which the caller uses (not the one sent: a link swapped in
// after the check is not followed again). On the worker (it touches the
// filesystem). Never echoes a path.
Result<std::string> CheckInside(const std::string& dir, const std::string& path,
                                const char* outside) {
  namespace fs = std::filesystem;
  auto strictly_inside = [](const fs::path& p, const fs::path& root) {
    std::string r = root.string(), s = p.string();
    while (r.size() > 1 && r.ends_with('/')) r.pop_back();
    return s.starts_with(r + "/") && s.size() > r.size() + 1;
  };
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(dir, ec);
  if (ec) {
    return Fail(Status::Internal("the server's directory cannot be resolved"));
  }
  const fs::path written = fs::path(path).lexically_normal();
  if (!strictly_inside(written, fs::path(dir).lexically_normal()) &&
      !strictly_inside(written, root)) {
    return Fail(Status::PermissionDenied(outside));
  }
  const fs::path target = fs::weakly_canonical(path, ec);
  if (ec) return Fail(Status::InvalidArgument("the path cannot be resolved"));
  if (!strictly_inside(target, root)) {
    return Fail(Status::PermissionDenied(outside));
  }
  return target.string();
}

// Backups and restore kits go only inside the server's backup directory
// (ServerOptions::backup_dir).
Result<std::string> CheckInBackupDir(const std::string& backup_dir,
                                     const std::string& path) {
  if (backup_dir.empty()) {
    return Fail(Status::FailedPrecondition(
        "this server has no backup directory (custosd --backup-dir)"));
  }
  return CheckInside(backup_dir, path,
                     "backups and restore kits are written and read only "
                     "inside the server's backup directory");
}

// A new master key file is read only inside the server's key directory
// (ServerOptions::key_dir): an admin cannot probe the host's other files
// by the codes of the refusals.
Result<std::string> CheckInKeyDir(const std::string& key_dir,
                                  const std::string& path) {
  if (key_dir.empty()) {
    return Fail(Status::FailedPrecondition(
        "this server has no key directory (custosd --key-dir)"));
  }
  return CheckInside(key_dir, path,
                     "a new master key file is read only inside the "
                     "server's key directory (custosd --key-dir)");
}

// ---- Facets
// ---------------------------------------------------------------------

// A page of listHolds or listPrincipals: the items after `after_id`, at
// most `limit` (1 to Limits::max_page_size); limit 0 asks for all of them
// at once, as before these calls paged (a client that does not page is
// never cut short: it is refused with ResourceExhausted if they do not fit
// a message). The engine is asked for one more than a page, to tell
// whether a next one exists.
struct PageRequest {
  std::string after_id;
  size_t limit = 0;  // 0: all.
};
constexpr size_t kMaxAfterIdBytes = kMaxIdBytes;

PageRequest CheckPage(capnp::Text::Reader after_id, uint32_t limit,
                      const Limits& limits) {
  if (after_id.size() > kMaxAfterIdBytes) {
    Throw(Status::InvalidArgument("afterId must be at most " +
                                  std::to_string(kMaxAfterIdBytes) + " bytes"));
  }
  if (limit > limits.max_page_size) {
    Throw(Status::InvalidArgument("limit must be at most " +
                                  std::to_string(limits.max_page_size)));
  }
  return {Str(after_id), limit};
}

// Words of a hold, a principal in an answer (every pointer counted twice,
// as RecordAnswerWords does: its landing pad).
uint64_t AnswerWords(const HoldView& h) {
  return StructWords<rpc::Hold>() + TextWords(h.id.size()) +
         TextWords(h.subject_id ? h.subject_id->size() : 0) +
         TextWords(h.reason.size()) + TextWords(h.set_by.size()) +
         TextWords(h.released_by.size());
}
uint64_t AnswerWords(const PrincipalInfo& p) {
  return StructWords<rpc::Principal>() + TextWords(p.id.size()) +
         TextWords(p.display_name.size()) +
         TextWords(2 * p.roles.size());  // A list of 16-bit enums.
}

// Cuts `items` (the engine's answer to a page asked one longer) to the
// page, and to what fits the message limit (the rest of the answer is
// kAnswerEnvelopeWords), and returns the next page's afterId: the last
// item's id, or "" if none follows. A page of one item too large is kept
// (CheckAnswerSize refuses it). Limit 0: everything, uncut.
template <typename T>
std::string CutPage(std::vector<T>& items, size_t limit,
                    uint64_t max_message_words) {
  if (limit == 0) return "";
  bool more = items.size() > limit;
  if (more) items.resize(limit);
  uint64_t words = kAnswerEnvelopeWords + 2;  // With the list's tag and pad.
  size_t fit = 0;
  for (; fit < items.size(); ++fit) {
    words += AnswerWords(items[fit]);
    if (words >= max_message_words && fit > 0) break;
  }
  if (fit < items.size()) {
    items.resize(fit);
    more = true;
  }
  return more ? items.back().id : "";
}

// listHolds, offered by the Officer, Auditor and Admin facets alike.
template <typename Context>
kj::Promise<void> ListHoldsCall(Connection& conn, const Actor& actor,
                                Context context) {
  auto p = context.getParams();
  PageRequest page =
      CheckPage(p.getAfterId(), p.getLimit(), conn.engine.limits());
  return OnWorker<Result<std::vector<HoldView>>>(
             conn,
             [engine = &conn.engine, actor = actor, ended = p.getIncludeEnded(),
              page]() {
               return engine->ListHolds(actor, ended, page.after_id,
                                        page.limit == 0 ? 0 : page.limit + 1);
             })
      .then([context, max_words = conn.max_message_words, limit = page.limit](
                kj::Own<Result<std::vector<HoldView>>> r) mutable {
        std::vector<HoldView> holds = Value(std::move(*r));
        const std::string next = CutPage(holds, limit, max_words);
        auto out = context.getResults(OneSegment(max_words));
        SetHolds(holds, out.initHolds(holds.size()));
        out.setNextAfterId(Txt(next));
        CheckAnswerSize(max_words, context.getResults(), "the list of holds");
      });
}

// verifyChain, offered by the Auditor and Admin facets. It reads the whole
// history: long work.
template <typename Context>
kj::Promise<void> VerifyChainCall(Connection& conn, const Actor& actor,
                                  Context context) {
  // Copied off the message on the loop, each checked before its copy.
  auto given = context.getParams().getThrough();
  if (Status s = CheckRecordedHeadCount(given.size()); !s.ok()) Throw(s);
  std::vector<RecordedHead> through;
  through.reserve(given.size());
  for (auto head : given) {
    const capnp::Text::Reader link = head.getLinkHex();
    if (Status s = CheckRecordedHeadLink(
            through.size(), std::string_view(link.cStr(), link.size()));
        !s.ok()) {
      Throw(s);
    }
    through.push_back(
        {.seq = head.getSeq(), .link_hex = Str(head.getLinkHex())});
  }
  return OnReadingLane<Result<ChainVerification>>(
             conn, actor, "verifyChain",
             [engine = &conn.engine, actor = actor,
              through = std::move(through)](const WorkProgressFn& progress) {
               return engine->VerifyChain(actor, progress, through);
             })
      .then([context, max_words = conn.max_message_words](
                kj::Own<Result<ChainVerification>> r) mutable {
        ChainVerification v = Value(std::move(*r));
        auto out = context.getResults(OneSegment(max_words));
        out.setOk(v.ok);
        out.setProblem(Txt(v.problem));
        out.setVerified(v.verified);
        out.setHeadSeq(v.head_seq);
        out.setHeadLinkHex(Txt(v.head_link_hex));
        out.setAnchorsMatched(v.anchors_matched);
        out.setAnchorsFolded(v.anchors_folded);
        out.setFirstBroken(v.first_broken);
        out.setAnchorLastHeld(v.anchor_last_held);
        out.setPoliciesChecked(v.policies_checked);
        out.setPolicyDifferencesTotal(v.policy_differences_total);
        auto differences =
            out.initPolicyDifferences(v.policy_differences.size());
        for (size_t i = 0; i < v.policy_differences.size(); ++i) {
          const PolicyDifference& d = v.policy_differences[i];
          auto o = differences[i];
          o.setKind(d.kind);
          o.setExpectedFrom(
              std::string(PolicyDifferenceFromName(d.expected_from)));
          o.setLastSetSeq(d.last_set_seq);
          o.setExpected(d.expected);
          o.setStored(std::string(PolicyDifferenceStoredName(d.stored)));
          o.setStoredText(d.stored_text);
        }
        CheckAnswerSize(max_words, out, "the chain's verification");
      });
}

// processingRegister, offered by the Auditor and Admin facets: rendered on
// the reading lane (it reads every record).
template <typename Context>
kj::Promise<void> ProcessingRegisterCall(Connection& conn, const Actor& actor,
                                         Context context) {
  return OnReadingLane<Result<std::string>>(
             conn, actor, "processingRegister",
             [engine = &conn.engine, actor = actor,
              html = context.getParams().getHtml()](
                 const WorkProgressFn&) -> Result<std::string> {
               auto reg = engine->ProduceProcessingRegister(actor);
               if (!reg) return Fail(reg.error());
               return html ? RenderProcessingRegisterHtml(*reg)
                           : RenderProcessingRegisterJson(*reg);
             })
      .then([context, max_words = conn.max_message_words](
                kj::Own<Result<std::string>> r) mutable {
        const std::string document = Value(std::move(*r));
        CheckAnswerText(max_words, document.size(), "the processing register");
        context.getResults().setDocument(Txt(document));
      });
}

void SetMonth(const MonthStatistics& m, rpc::MonthStatistics::Builder b) {
  b.setMonth(m.month);
  b.setCreated(m.created);
  b.setClosed(m.closed);
  b.setBlocked(m.blocked);
  b.setErased(m.erased);
  auto within = b.initClosedWithin(kCloseBuckets);
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    within.set(static_cast<unsigned>(i), m.closed_within[i]);
  }
}

void SetStatistics(const Statistics& s, rpc::Statistics::Builder b) {
  b.setGeneratedAtMicros(ToMicros(s.generated_at));
  b.setKind(Txt(s.query.kind));
  b.setFromMonth(s.query.from_month);
  b.setToMonth(s.query.to_month);
  b.setPending(s.pending);
  b.setUnreadable(s.unreadable);
  SetMonth(s.total, b.initTotal());
  auto kinds = b.initKinds(static_cast<unsigned>(s.kinds.size()));
  for (size_t i = 0; i < s.kinds.size(); ++i) {
    const KindStatistics& k = s.kinds[i];
    auto out = kinds[static_cast<unsigned>(i)];
    out.setKind(Txt(k.kind));
    out.setActive(k.by_state[0]);
    out.setClosed(k.by_state[1]);
    out.setBlocked(k.by_state[2]);
    out.setErased(k.by_state[3]);
    auto months = out.initMonths(static_cast<unsigned>(k.months.size()));
    for (size_t m = 0; m < k.months.size(); ++m) {
      SetMonth(k.months[m], months[static_cast<unsigned>(m)]);
    }
    SetMonth(k.total, out.initTotal());
    auto attributes =
        out.initAttributes(static_cast<unsigned>(k.attributes.size()));
    for (size_t a = 0; a < k.attributes.size(); ++a) {
      const AttributeStatistics& in = k.attributes[a];
      auto o = attributes[static_cast<unsigned>(a)];
      o.setName(Txt(in.name));
      o.setOther(in.other);
      auto values = o.initValues(static_cast<unsigned>(in.values.size()));
      for (size_t v = 0; v < in.values.size(); ++v) {
        values[static_cast<unsigned>(v)].setValue(Txt(in.values[v].first));
        values[static_cast<unsigned>(v)].setRecords(in.values[v].second);
      }
    }
    out.setOtherAttributes(k.other_attributes);
  }
}

// statistics, offered by the Auditor and Admin facets: answered from the
// statistics index, so on the connection's worker (no long lane).
template <typename Context>
kj::Promise<void> StatisticsCall(Connection& conn, const Actor& actor,
                                 Context context) {
  auto p = context.getParams();
  StatisticsQuery query;
  // The kind's length is bounded before it is copied.
  if (p.getKind().size() > kMaxKindLength) {
    Throw(Status::InvalidArgument(std::string("a kind is at most ")
                                      .append(std::to_string(kMaxKindLength))
                                      .append(" characters")));
  }
  query.kind = Str(p.getKind());
  query.from_month = p.getFromMonth();
  query.to_month = p.getToMonth();
  Check(CheckStatisticsQuery(query));
  return OnWorker<Result<Statistics>>(conn,
                                      [engine = &conn.engine, actor = actor,
                                       query = std::move(query)]() {
                                        return engine->ProduceStatistics(actor,
                                                                         query);
                                      })
      .then([context, max_words = conn.max_message_words](
                kj::Own<Result<Statistics>> r) mutable {
        const Statistics s = Value(std::move(*r));
        SetStatistics(
            s, context.getResults(OneSegment(max_words)).initStatistics());
        CheckAnswerSize(max_words, context.getResults(), "the statistics");
      });
}

// findSubject, offered by the Auditor and Admin facets.
template <typename Context>
kj::Promise<void> FindSubjectCall(Connection& conn, const Actor& actor,
                                  Context context) {
  // The identifier's length is bounded before it is copied (the engine
  // refuses the same, but on a worker, after an 8 MiB copy).
  const capnp::Text::Reader identifier_text =
      context.getParams().getIdentifier();
  if (identifier_text.size() > conn.engine.limits().max_identifier_length) {
    Throw(Status::InvalidArgument(
        "identifier must be at most " +
        std::to_string(conn.engine.limits().max_identifier_length) + " bytes"));
  }
  return OnWorker<Result<std::string>>(conn,
                                       [engine = &conn.engine, actor = actor,
                                        identifier = Str(identifier_text)]() {
                                         return engine->FindSubject(actor,
                                                                    identifier);
                                       })
      .then([context](kj::Own<Result<std::string>> r) mutable {
        const std::string id = Value(std::move(*r));
        context.getResults().setSubjectId(Txt(id));
      });
}

class OfficerImpl final : public rpc::Officer::Server {
 public:
  OfficerImpl(std::shared_ptr<Connection> conn, Actor actor)
      : conn_(std::move(conn)), actor_(std::move(actor)) {}

  kj::Promise<void> contest(ContestContext context) override {
    auto p = context.getParams();
    Check(CheckFieldCount(p.getCorrected().size(), conn_->engine.limits()));
    return OnWorker<Status>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, id = p.getId(),
                subject = IdStr(p.getSubjectId(), "subjectId"),
                statement = Str(p.getStatement()),
                corrected = FromRpc(p.getCorrected())]() {
                 return engine->Contest(actor, id, subject, statement,
                                        corrected);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> setRecordHold(SetRecordHoldContext context) override {
    auto p = context.getParams();
    return OnWorker<Result<HoldView>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, id = p.getId(),
                reason = Str(p.getReason()),
                ends = FromMicros(p.getEndsAtMicros())]() {
                 return engine->SetRecordHold(actor, id, reason, ends);
               })
        .then([context](kj::Own<Result<HoldView>> r) mutable {
          ToRpc(Value(std::move(*r)), context.getResults().initHold());
        });
  }

  kj::Promise<void> releaseHold(ReleaseHoldContext context) override {
    return OnWorker<Status>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                id = IdStr(context.getParams().getHoldId(), "holdId")]() {
                 return engine->ReleaseHold(actor, id);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> listHolds(ListHoldsContext context) override {
    return ListHoldsCall(*conn_, actor_, context);
  }

  kj::Promise<void> setSubjectHold(SetSubjectHoldContext context) override {
    auto p = context.getParams();
    return OnWorker<Result<HoldView>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                subject = IdStr(p.getSubjectId(), "subjectId"),
                reason = Str(p.getReason()),
                ends = FromMicros(p.getEndsAtMicros())]() {
                 return engine->SetSubjectHold(actor, subject, reason, ends);
               })
        .then([context](kj::Own<Result<HoldView>> r) mutable {
          ToRpc(Value(std::move(*r)), context.getResults().initHold());
        });
  }

 private:
  std::shared_ptr<Connection> conn_;
  Actor actor_;
};

class AuditorImpl final : public rpc::Auditor::Server {
 public:
  AuditorImpl(std::shared_ptr<Connection> conn, Actor actor)
      : conn_(std::move(conn)), actor_(std::move(actor)) {}

  kj::Promise<void> accessHistory(AccessHistoryContext context) override {
    auto p = context.getParams();
    const int64_t to =
        p.getToMicros() == 0 ? ToMicros(Timestamp::max()) : p.getToMicros();
    return OnWorker<Result<AccessHistoryPage>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                subject = IdStr(p.getSubjectId(), "subjectId"),
                from = FromMicros(p.getFromMicros()), to = FromMicros(to),
                after = p.getAfterSeq(), limit = p.getLimit(),
                max_words = conn_->max_message_words]() {
                 return engine->AccessHistory(
                     actor, subject, from, to, after, limit,
                     [max_words](const AccessHistoryPage& page) {
                       return HistoryPageFits(max_words, page);
                     });
               })
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<AccessHistoryPage>> r) mutable {
          AccessHistoryPage page = Value(std::move(*r));
          auto out = context.getResults(OneSegment(max_words));
          auto events = out.initEvents(page.events.size());
          for (size_t i = 0; i < page.events.size(); ++i) {
            const AccessEvent& e = page.events[i];
            events[i].setSeq(e.seq);
            events[i].setAtMicros(ToMicros(e.at));
            events[i].setPrincipalId(Txt(e.principal_id));
            events[i].setPrincipalName(Txt(e.principal_name));
            events[i].setAction(Txt(e.action));
            events[i].setRecordId(e.record_id);
            events[i].setRecordKind(Txt(e.record_kind));
            SetTexts(events[i].initFields(e.fields.size()), e.fields);
            if (e.purpose) {
              events[i].setPurpose(
                  Txt(std::string(PurposeKindName(*e.purpose))));
            }
            events[i].setJustification(Txt(e.justification));
            if (e.record_state) {
              events[i].setRecordState(
                  Txt(std::string(RecordStateName(*e.record_state))));
            }
          }
          out.setNextAfterSeq(page.next_after_seq);
          CheckAnswerSize(max_words, out, "the history page");
        });
  }

  kj::Promise<void> subjectReport(SubjectReportContext context) override {
    return RenderedReport(context.getParams().getSubjectId(),
                          RenderSubjectReportJson, /*fit_the_answer=*/true)
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<std::string>> r) mutable {
          const std::string json = Value(std::move(*r));
          CheckAnswerText(max_words, json.size(), "the subject report");
          context.getResults().setJson(Txt(json));
        });
  }

  kj::Promise<void> subjectReportHtml(
      SubjectReportHtmlContext context) override {
    return RenderedReport(context.getParams().getSubjectId(),
                          RenderSubjectReportHtml, /*fit_the_answer=*/true)
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<std::string>> r) mutable {
          const std::string html = Value(std::move(*r));
          CheckAnswerText(max_words, html.size(), "the subject report");
          context.getResults().setHtml(Txt(html));
        });
  }

  kj::Promise<void> verifyChain(VerifyChainContext context) override {
    return VerifyChainCall(*conn_, actor_, context);
  }

  kj::Promise<void> listHolds(ListHoldsContext context) override {
    return ListHoldsCall(*conn_, actor_, context);
  }

  kj::Promise<void> findSubject(FindSubjectContext context) override {
    return FindSubjectCall(*conn_, actor_, context);
  }

  kj::Promise<void> processingRegister(
      ProcessingRegisterContext context) override {
    return ProcessingRegisterCall(*conn_, actor_, context);
  }

  kj::Promise<void> statistics(StatisticsContext context) override {
    return StatisticsCall(*conn_, actor_, context);
  }

  kj::Promise<void> subjectReportTo(SubjectReportToContext context) override {
    auto p = context.getParams();
    // The sink read (a pointer that is not a capability throws) before the
    // report is produced and its event written.
    if (!p.hasSink()) Throw(Status::InvalidArgument("sink is required"));
    rpc::ByteSink::Client sink = p.getSink();
    kj::Own<StreamSlot> slot = TakeStreamSlot(conn_, actor_.id());
    return RenderedReport(
               p.getSubjectId(),
               p.getHtml() ? RenderSubjectReportHtml : RenderSubjectReportJson,
               /*fit_the_answer=*/false)
        .then([context, conn = conn_,
               sink = kj::mv(sink)](kj::Own<Result<std::string>> r) mutable {
          auto document = kj::heap<std::string>(Value(std::move(*r)));
          const uint64_t bytes = document->size();
          auto written = WithinSinkDeadline(
              WriteToSink(kj::mv(sink), *document, 0,
                          SinkChunkBytes(conn->max_message_words), *conn),
              *conn);
          return written.attach(kj::mv(document), kj::mv(conn))
              .then([context, bytes]() mutable {
                context.getResults().setBytes(bytes);
              });
        })
        .attach(kj::mv(slot));
  }

  kj::Promise<void> breachScope(BreachScopeContext context) override {
    auto p = context.getParams();
    // The query's bounds, on network input, before anything is copied or
    // a worker is asked (the engine checks them again).
    const auto ids = p.getPrincipalIds();
    if (ids.size() == 0 || ids.size() > kMaxBreachPrincipals) {
      Throw(Status::InvalidArgument(
          std::string("a breach scope names 1 to ")
              .append(std::to_string(kMaxBreachPrincipals))
              .append(" principals")));
    }
    BreachQuery query;
    for (auto id : ids) query.principal_ids.push_back(Str(id));
    query.from = FromMicros(p.getFromMicros());
    query.to = FromMicros(p.getToMicros());
    query.purpose = Str(p.getPurpose());
    Check(CheckBreachQuery(query, conn_->engine.limits()));
    return OnWorker<Result<BreachScope>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                query = std::move(query),
                max_words = conn_->max_message_words]() {
                 return engine->ProduceBreachScope(
                     actor, query, [max_words](const BreachScope& scope) {
                       return BreachScopeFits(max_words, scope);
                     });
               })
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<BreachScope>> r) mutable {
          const BreachScope scope = Value(std::move(*r));
          ToRpc(scope, context.getResults(OneSegment(max_words)).initScope());
          CheckAnswerSize(max_words, context.getResults(), "the breach scope");
        });
  }

 private:
  static void ToRpc(const BreachScope& v, rpc::BreachScope::Builder b) {
    b.setGeneratedAtMicros(ToMicros(v.generated_at));
    b.setAuditorId(Txt(v.auditor_id));
    SetTexts(b.initPrincipalIds(v.principal_ids.size()), v.principal_ids);
    b.setFromMicros(ToMicros(v.from));
    b.setToMicros(ToMicros(v.to));
    b.setPurpose(Txt(v.purpose));
    b.setDisclosures(v.disclosures);
    b.setWithoutIdentity(v.without_identity);
    b.setUnindexedUntilMicros(Micros(v.unindexed_until));
    auto subjects = b.initSubjects(v.subjects.size());
    for (size_t i = 0; i < v.subjects.size(); ++i) {
      const BreachSubject& s = v.subjects[i];
      auto out = subjects[i];
      out.setSubjectId(Txt(s.subject_id));
      out.setIdentifier(Txt(s.identifier));
      auto records = out.initRecordIds(s.record_ids.size());
      for (size_t k = 0; k < s.record_ids.size(); ++k) {
        records.set(k, s.record_ids[k]);
      }
      SetTexts(out.initFields(s.fields.size()), s.fields);
      auto disclosures = out.initDisclosures(s.disclosures.size());
      for (size_t k = 0; k < s.disclosures.size(); ++k) {
        const BreachDisclosure& d = s.disclosures[k];
        auto o = disclosures[k];
        o.setSeq(d.seq);
        o.setAtMicros(ToMicros(d.at));
        o.setPrincipalId(Txt(d.principal_id));
        o.setPrincipalName(Txt(d.principal_name));
        o.setAction(Txt(d.action));
        o.setRecordId(d.record_id);
        o.setRecordKind(Txt(d.record_kind));
        if (d.purpose) {
          o.setPurpose(Txt(std::string(PurposeKindName(*d.purpose))));
        }
        o.setJustification(Txt(d.justification));
        SetTexts(o.initFields(d.fields.size()), d.fields);
      }
    }
  }

  // The subject's report, produced and rendered by `render` on the worker
  // (its personal data never touches a Cap'n Proto builder until the
  // answer is built). With `fit_the_answer`, one too large to send in an
  // answer is refused before the report's event is written, with nothing
  // recorded; without (subjectReportTo, which sends it in chunks), any
  // size.
  kj::Promise<kj::Own<Result<std::string>>> RenderedReport(
      capnp::Text::Reader subject_id,
      std::string (*render)(const SubjectReport&), bool fit_the_answer) {
    return OnWorker<Result<std::string>>(
        *conn_,
        [engine = &conn_->engine, actor = actor_,
         subject = IdStr(subject_id, "subjectId"), render, fit_the_answer,
         max_words = conn_->max_message_words]() -> Result<std::string> {
          std::string rendered;
          auto report = engine->ProduceSubjectReport(
              actor, subject, [&](const SubjectReport& r) {
                rendered = render(r);
                if (!fit_the_answer) return Status::Ok();
                return AnswerFits(max_words, TextWords(rendered.size()),
                                  "the subject report");
              });
          if (!report) return Fail(report.error());
          return rendered;
        });
  }

  std::shared_ptr<Connection> conn_;
  Actor actor_;
};

class AdminImpl final : public rpc::Admin::Server {
 public:
  AdminImpl(std::shared_ptr<Connection> conn, Actor actor)
      : conn_(std::move(conn)), actor_(std::move(actor)) {}

  kj::Promise<void> createPrincipal(CreatePrincipalContext context) override {
    auto p = context.getParams();
    // As many entries as there are roles: a longer list (up to millions of
    // enums in a message) was copied, then deduplicated by the engine.
    constexpr size_t kMaxRoles = 4;
    if (p.getRoles().size() > kMaxRoles) {
      Throw(Status::InvalidArgument("roles must hold at most " +
                                    std::to_string(kMaxRoles) + " entries"));
    }
    std::vector<Role> roles;
    for (auto r : p.getRoles()) roles.push_back(FromRpc(r));
    return OnWorker<Result<NewPrincipal>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                id = IdStr(p.getId(), "id"), name = Str(p.getDisplayName()),
                roles = std::move(roles), redacted = p.getRedacted()]() {
                 return engine->CreatePrincipal(actor, id, name, roles,
                                                redacted);
               })
        .then([context](kj::Own<Result<NewPrincipal>> r) mutable {
          NewPrincipal created = Value(std::move(*r));
          auto out = context.getResults().initCreated();
          ToRpc(created.info, out.initPrincipal());
          out.setToken(Txt(created.token));
          Wipe(created.token);
        });
  }

  kj::Promise<void> listPrincipals(ListPrincipalsContext context) override {
    auto p = context.getParams();
    PageRequest page =
        CheckPage(p.getAfterId(), p.getLimit(), conn_->engine.limits());
    return OnWorker<Result<std::vector<PrincipalInfo>>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, page]() {
                 return engine->ListPrincipals(
                     actor, page.after_id,
                     page.limit == 0 ? 0 : page.limit + 1);
               })
        .then(
            [context, max_words = conn_->max_message_words, limit = page.limit](
                kj::Own<Result<std::vector<PrincipalInfo>>> r) mutable {
              std::vector<PrincipalInfo> all = Value(std::move(*r));
              const std::string next = CutPage(all, limit, max_words);
              auto results = context.getResults(OneSegment(max_words));
              results.setNextAfterId(Txt(next));
              auto out = results.initPrincipals(all.size());
              for (size_t i = 0; i < all.size(); ++i) ToRpc(all[i], out[i]);
              CheckAnswerSize(max_words, context.getResults(),
                              "the list of principals");
            });
  }

  kj::Promise<void> revokePrincipal(RevokePrincipalContext context) override {
    return OnWorker<Status>(*conn_,
                            [engine = &conn_->engine, actor = actor_,
                             id = IdStr(context.getParams().getId(), "id")]() {
                              return engine->RevokePrincipal(actor, id);
                            })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> sweep(SweepContext context) override {
    auto p = context.getParams();
    // Refused here, naming the field the client set (the engine's refusal
    // names its own, max_history_examined); 0 is the server's bound.
    if (p.getMaxHistoryExamined() > kMaxHistoryExamined) {
      Throw(Status::InvalidArgument("maxHistoryExamined must be 1 to " +
                                    std::to_string(kMaxHistoryExamined) +
                                    " (0: the server's bound)"));
    }
    return OnLongLane<Result<SweepReport>>(
               *conn_, actor_, "sweep",
               [engine = &conn_->engine, actor = actor_,
                as_of = p.getAsOfMicros(), dry_run = p.getDryRun(),
                max_records = p.getMaxRecords(),
                max_history_examined = p.getMaxHistoryExamined(),
                work = conn_->long_work](const WorkProgressFn& board) {
                 SweepOptions options;
                 options.dry_run = dry_run;
                 // 0: the engine's now.
                 options.as_of = as_of == 0 ? engine->Now() : FromMicros(as_of);
                 if (max_records != 0) options.max_records = max_records;
                 // 1 to kMaxHistoryExamined (checked above).
                 if (max_history_examined != 0) {
                   options.max_history_examined =
                       static_cast<size_t>(max_history_examined);
                 }
                 options.stop = work->stop;
                 // Published once the engine has accepted the sweep (its
                 // first progress report): a refused sweep leaves the last
                 // one's figures as they were. `running` ends with the call,
                 // however it ends.
                 const int64_t started = ToMicros(engine->Now());
                 SweepStatus& status = work->sweep;
                 struct EndRunning {
                   SweepStatus& s;
                   ~EndRunning() { s.running = false; }
                 } end_running{status};
                 bool published = false;
                 options.progress = [&hooks = *work, &status, started,
                                     &published,
                                     &board](const SweepProgress& progress) {
                   if (!published) {
                     published = true;
                     status.started_micros = started;
                     status.running = true;
                   }
                   status.phase = static_cast<int>(progress.phase);
                   status.records_done = progress.records_done;
                   status.batches = progress.batches;
                   board(WorkProgress{SweepPhaseName(progress.phase), "records",
                                      progress.records_done, 0});
                   if (hooks.TEST_sweep_progress) {
                     hooks.TEST_sweep_progress(progress);
                   }
                 };
                 return engine->Sweep(actor, options);
               })
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<SweepReport>> r) mutable {
          // Half the limit for the lists: the rest of the answer and the
          // RPC message around it are a few dozen words.
          ToRpc(Value(std::move(*r)), context.getResults().initReport(),
                max_words / 2);
        });
  }

  // Resolves once the caller is known to hold the admin role now (a
  // revoked admin learns nothing more); PermissionDenied otherwise. On the
  // connection's lane, so the progress calls below are answered while a
  // long call holds the long one.
  kj::Promise<void> AdminNow() {
    return OnWorker<Result<PrincipalInfo>>(
               *conn_, [engine = &conn_->engine,
                        actor = actor_]() { return engine->WhoAmI(actor); })
        .then([](kj::Own<Result<PrincipalInfo>> r) {
          const PrincipalInfo caller = Value(std::move(*r));
          if (!caller.HasRole(Role::kAdmin)) {
            Throw(Status::PermissionDenied("this call needs the admin role"));
          }
        });
  }

  kj::Promise<void> sweepProgress(SweepProgressContext context) override {
    return AdminNow().then([context, work = conn_->long_work]() mutable {
      const SweepStatus& status = work->sweep;
      auto out = context.getResults();
      out.setRunning(status.running.load());
      if (status.started_micros.load() != 0) {
        out.setPhase(Txt(std::string(
            SweepPhaseName(static_cast<SweepPhase>(status.phase.load())))));
      }
      out.setRecordsDone(status.records_done.load());
      out.setBatches(status.batches.load());
      out.setStartedMicros(status.started_micros.load());
    });
  }

  kj::Promise<void> progress(ProgressContext context) override {
    return AdminNow().then([context, maintenance = conn_->long_work,
                            reading = conn_->reading_work]() mutable {
      auto set = [](const WorkBoard::View& view,
                    rpc::WorkProgress::Builder out) {
        out.setOperation(Txt(view.operation));
        out.setRunning(view.running);
        out.setPhase(Txt(view.phase));
        out.setUnit(Txt(view.unit));
        out.setDone(view.done);
        out.setTotal(view.total);
        out.setStartedMicros(view.started_micros);
        out.setEndedMicros(view.ended_micros);
        out.setOutcome(Txt(view.outcome));
      };
      auto out = context.getResults();
      set(maintenance->board.Read(), out.initProgress());
      set(reading->board.Read(), out.initReading());
    });
  }

  kj::Promise<void> processingRegister(
      ProcessingRegisterContext context) override {
    return ProcessingRegisterCall(*conn_, actor_, context);
  }
  kj::Promise<void> statistics(StatisticsContext context) override {
    return StatisticsCall(*conn_, actor_, context);
  }

  kj::Promise<void> findSubject(FindSubjectContext context) override {
    return FindSubjectCall(*conn_, actor_, context);
  }

  kj::Promise<void> rotateCredential(RotateCredentialContext context) override {
    return OnWorker<Result<std::string>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                id = IdStr(context.getParams().getId(), "id")]() {
                 return engine->RotateCredential(actor, id);
               })
        .then([context](kj::Own<Result<std::string>> r) mutable {
          std::string token = Value(std::move(*r));
          context.getResults().setToken(Txt(token));
          Wipe(token);
        });
  }

  kj::Promise<void> shredSubject(ShredSubjectContext context) override {
    return OnWorker<Status>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                id = IdStr(context.getParams().getSubjectId(), "subjectId")]() {
                 return engine->ShredSubject(actor, id);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> setPolicy(SetPolicyContext context) override {
    return OnWorker<Status>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                policy = FromRpc(context.getParams().getPolicy())]() {
                 return engine->SetPolicy(actor, policy);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> reapplyPolicies(ReapplyPoliciesContext context) override {
    return OnLongLane<Result<size_t>>(
               *conn_, actor_, "reapplyPolicies",
               [engine = &conn_->engine,
                actor = actor_](const WorkProgressFn& progress) {
                 return engine->ReapplyPolicies(actor, progress);
               })
        .then([context](kj::Own<Result<size_t>> r) mutable {
          context.getResults().setUpdated(Value(std::move(*r)));
        });
  }

  kj::Promise<void> listHolds(ListHoldsContext context) override {
    return ListHoldsCall(*conn_, actor_, context);
  }

  kj::Promise<void> verifyChain(VerifyChainContext context) override {
    return VerifyChainCall(*conn_, actor_, context);
  }

  kj::Promise<void> completeShreds(CompleteShredsContext context) override {
    return OnLongLane<Result<size_t>>(
               *conn_, actor_, "completeShreds",
               [engine = &conn_->engine, actor = actor_,
                budget = context.getParams().getBudget()](
                   const WorkProgressFn& progress) -> Result<size_t> {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 if (budget == 0 || budget > kMaxShredBudget) {
                   return Fail(Status::InvalidArgument(
                       "the budget must be 1 to " +
                       std::to_string(kMaxShredBudget)));
                 }
                 return engine->CompleteShreds(budget, progress);
               })
        .then([context](kj::Own<Result<size_t>> r) mutable {
          context.getResults().setRewritten(Value(std::move(*r)));
        });
  }

  kj::Promise<void> rekeySubject(RekeySubjectContext context) override {
    return OnLongLane<Status>(*conn_, actor_, "rekeySubject",
                              [engine = &conn_->engine, actor = actor_,
                               id = IdStr(context.getParams().getSubjectId(),
                                          "subjectId")](const WorkProgressFn&) {
                                return engine->RekeySubject(actor, id);
                              })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> verifyErasure(VerifyErasureContext context) override {
    return OnLongLane<Result<ErasureReport>>(
               *conn_, actor_, "verifyErasure",
               [engine = &conn_->engine,
                actor = actor_](const WorkProgressFn& progress) {
                 return engine->VerifyErasure(actor, progress);
               })
        .then([context](kj::Own<Result<ErasureReport>> r) mutable {
          // Read in place, not moved out: GCC 12 at -O3 takes the move for
          // a read of an uninitialised member (-Wmaybe-uninitialized).
          if (!*r) Throw(r->error());
          const ErasureReport& report = **r;
          auto out = context.getResults();
          out.setWitnesses(report.witnesses);
          out.setFound(report.found);
          SetTexts(
              out.initFilesWithLeftovers(report.files_with_leftovers.size()),
              report.files_with_leftovers);
          out.setCorruptQueueEntries(report.corrupt_queue_entries);
          out.setUndecodableSealedEntries(report.undecodable_sealed_entries);
        });
  }

  kj::Promise<void> rotateMasterKey(RotateMasterKeyContext context) override {
    // The key is read on the worker, from the server's host: it never
    // crosses the wire, and it lives only in guarded memory.
    return OnLongLane<Status>(
               *conn_, actor_, "rotateMasterKey",
               [engine = &conn_->engine, actor = actor_, root = conn_->key_dir,
                path = ServerPath(context.getParams().getKeyFile())](
                   const WorkProgressFn&) -> Status {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 auto inside = CheckInKeyDir(root, path);
                 if (!inside) return inside.error();
                 auto key = crypto::LoadMasterKeyFile(*inside);
                 if (!key) {
                   // Its code says why (NotFound, FailedPrecondition for a
                   // mode, InvalidArgument for a format); never the file.
                   return Status(key.error().code(),
                                 "the new master key file cannot be used");
                 }
                 return engine->RotateMasterKey(actor, *key);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> rotateKek(RotateKekContext context) override {
    auto p = context.getParams();
    KekRotationOptions options;
    if (p.getBatchSize() != 0) options.batch_size = p.getBatchSize();
    if (p.getMaxKeys() != 0) options.max_keys = p.getMaxKeys();
    return OnLongLane<Result<KekRotationReport>>(
               *conn_, actor_, "rotateKek",
               [engine = &conn_->engine, actor = actor_,
                options](const WorkProgressFn& progress) mutable {
                 options.progress = progress;
                 return engine->RotateKek(actor, options);
               })
        .then([context](kj::Own<Result<KekRotationReport>> r) mutable {
          KekRotationReport report = Value(std::move(*r));
          auto out = context.getResults();
          out.setKekVersion(report.kek_version);
          out.setRewrapped(report.rewrapped);
          out.setComplete(report.complete);
        });
  }

  kj::Promise<void> kekVersions(KekVersionsContext context) override {
    return OnWorker<Result<std::vector<uint32_t>>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_]() {
                 return engine->KekVersions(actor);
               })
        .then([context](kj::Own<Result<std::vector<uint32_t>>> r) mutable {
          std::vector<uint32_t> versions = Value(std::move(*r));
          auto out = context.getResults().initVersions(versions.size());
          for (size_t i = 0; i < versions.size(); ++i) out.set(i, versions[i]);
        });
  }

  kj::Promise<void> backup(BackupContext context) override {
    return OnLongLane<Result<BackupReport>>(
               *conn_, actor_, "backup",
               [engine = &conn_->engine, actor = actor_,
                root = conn_->backup_dir,
                dir = ServerPath(context.getParams().getDir())](
                   const WorkProgressFn& progress) -> Result<BackupReport> {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 auto inside = CheckInBackupDir(root, dir);
                 if (!inside) return Fail(inside.error());
                 return engine->Backup(actor, *inside, progress);
               })
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<BackupReport>> r) mutable {
          BackupReport report = Value(std::move(*r));
          auto results = context.getResults(OneSegment(max_words));
          auto out = results.initReport();
          out.setBackupId(Txt(report.backup_id));
          out.setCreatedMicros(ToMicros(report.created));
          out.setRecordsEntries(report.records_entries);
          out.setKeystoreEntries(report.keystore_entries);
          ToRpc(report.files, out.initFiles(report.files.size()));
          // Made: only its report is too large (verifyBackup's is too).
          CheckAnswerSize(max_words, results,
                          "the backup's report (the backup was made)");
        });
  }

  kj::Promise<void> verifyBackup(VerifyBackupContext context) override {
    return OnLongLane<Result<BackupVerification>>(
               *conn_, actor_, "verifyBackup",
               [engine = &conn_->engine, actor = actor_,
                root = conn_->backup_dir,
                dir = ServerPath(context.getParams().getDir())](
                   const WorkProgressFn& progress)
                   -> Result<BackupVerification> {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 auto inside = CheckInBackupDir(root, dir);
                 if (!inside) return Fail(inside.error());
                 return Engine::VerifyBackup(*inside, progress);
               })
        .then([context, max_words = conn_->max_message_words](
                  kj::Own<Result<BackupVerification>> r) mutable {
          BackupVerification v = Value(std::move(*r));
          auto results = context.getResults(OneSegment(max_words));
          auto out = results.initVerification();
          out.setFormatVersion(v.format_version);
          out.setBackupId(Txt(v.backup_id));
          out.setCreatedMicros(ToMicros(v.created));
          ToRpc(v.files, out.initFiles(v.files.size()));
          out.setRecordsChunks(v.records_chunks);
          out.setKeystoreChunks(v.keystore_chunks);
          CheckAnswerSize(max_words, results, "the backup's verification");
        });
  }

  kj::Promise<void> exportRestoreKit(ExportRestoreKitContext context) override {
    return OnLongLane<Status>(
               *conn_, actor_, "exportRestoreKit",
               [engine = &conn_->engine, actor = actor_,
                root = conn_->backup_dir,
                path = ServerPath(context.getParams().getPath())](
                   const WorkProgressFn&) -> Status {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 auto inside = CheckInBackupDir(root, path);
                 if (!inside) return inside.error();
                 return engine->ExportRestoreKit(actor, *inside);
               })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  kj::Promise<void> expireBackupKeys(ExpireBackupKeysContext context) override {
    return OnLongLane<Result<size_t>>(*conn_, actor_, "expireBackupKeys",
                                      [engine = &conn_->engine,
                                       actor = actor_](const WorkProgressFn&) {
                                        return engine->ExpireBackupKeys(actor);
                                      })
        .then([context](kj::Own<Result<size_t>> r) mutable {
          context.getResults().setExpired(Value(std::move(*r)));
        });
  }
  kj::Promise<void> stats(StatsContext context) override {
    return OnWorker<Result<EngineStats>>(
               *conn_,
               [engine = &conn_->engine,
                actor = actor_]() -> Result<EngineStats> {
                 CUSTOS_RETURN_IF_ERROR(RequireAdmin(*engine, actor));
                 return engine->Stats();
               })
        .then([context](kj::Own<Result<EngineStats>> r) mutable {
          const EngineStats stats = Value(std::move(*r));
          auto out = context.getResults().initStats();
          out.setWrites(stats.writes);
          out.setSyncs(stats.syncs);
          out.setCachedKeys(stats.cached_keys);
          out.setKeyCacheHits(stats.key_cache_hits);
          out.setKeyCacheMisses(stats.key_cache_misses);
        });
  }

 private:
  std::shared_ptr<Connection> conn_;
  Actor actor_;
};

// ---- Reminders
// ----------------------------------------------------------------

rpc::ReminderReason ToRpc(ReminderReason r) {
  switch (r) {
    case ReminderReason::kCloseDue:
      return rpc::ReminderReason::CLOSE_DUE;
    case ReminderReason::kBlockDue:
      return rpc::ReminderReason::BLOCK_DUE;
    case ReminderReason::kEraseDue:
      return rpc::ReminderReason::ERASE_DUE;
    case ReminderReason::kOpenTooLong:
      return rpc::ReminderReason::OPEN_TOO_LONG;
  }
  return rpc::ReminderReason::CLOSE_DUE;
}

// Words of a reminder in a message, bounded as RecordAnswerWords bounds a
// record's (every pointer twice: a far pointer's landing pad).
uint64_t ReminderWords(const Reminder& r) {
  uint64_t words = StructWords<rpc::Reminder>() + TextWords(r.kind.size()) +
                   StructListWords<rpc::Attribute>(r.attributes.size());
  for (const Attribute& a : r.attributes) {
    words += TextWords(a.key.size()) + TextWords(a.value.size());
  }
  return words;
}

// Keeps the reminders of the first records of `reminders` (by record id)
// whose words fit in an answer or remind under `max_message_words`: a page
// of a thousand reminders, each with its record's attributes (up to 64 of
// 1 KiB), may not. Cut at a record, never inside one's reminders; returns
// the last record kept when it cut (the next page starts after it), else
// 0. A record whose reminders alone do not fit (a limit near its minimum)
// keeps them without their attributes, so that no deadline goes untold.
uint64_t FitReminders(std::vector<Reminder>& reminders,
                      uint64_t max_message_words) {
  const auto fits = [max_message_words](uint64_t words) {
    return AnswerFits(max_message_words, words, "reminders").ok();
  };
  uint64_t words = 2;  // The list's tag and landing pad.
  size_t i = 0;
  while (i < reminders.size()) {
    size_t end = i;  // Past the record's reminders.
    uint64_t record_words = 0;
    while (end < reminders.size() &&
           reminders[end].record_id == reminders[i].record_id) {
      record_words += ReminderWords(reminders[end++]);
    }
    if (!fits(2 + record_words)) {
      record_words = 0;
      for (size_t k = i; k < end; ++k) {
        reminders[k].attributes.clear();
        record_words += ReminderWords(reminders[k]);
      }
    }
    if (!fits(words + record_words) && i > 0) {
      const uint64_t last = reminders[i - 1].record_id;
      reminders.resize(i);
      return last;
    }
    words += record_words;
    i = end;
  }
  return 0;
}

void SetReminders(const std::vector<Reminder>& reminders,
                  capnp::List<rpc::Reminder>::Builder out) {
  for (size_t i = 0; i < reminders.size(); ++i) {
    const Reminder& r = reminders[i];
    auto b = out[i];
    b.setRecordId(r.record_id);
    b.setKind(Txt(r.kind));
    b.setReason(ToRpc(r.reason));
    b.setDueAtMicros(ToMicros(r.due_at));
    b.setState(ToRpc(r.state));
    b.setCreatedAtMicros(ToMicros(r.created_at));
    auto attrs = b.initAttributes(r.attributes.size());
    for (size_t k = 0; k < r.attributes.size(); ++k) {
      attrs[k].setKey(Txt(r.attributes[k].key));
      attrs[k].setValue(Txt(r.attributes[k].value));
    }
    b.setDeliveredAtMicros(Micros(r.delivered_at));
  }
}

// A reminder period from a call: "" is the server's. InvalidArgument naming
// the field otherwise.
Period ReminderPeriod(capnp::Text::Reader text, const char* field,
                      const Period& server_default) {
  if (text.size() == 0) return server_default;
  if (text.size() > kMaxPeriodText) {
    Throw(Status::InvalidArgument(
        std::string(field).append(" is not an ISO 8601 period")));
  }
  auto period = ParsePeriod(std::string_view(text.cStr(), text.size()));
  if (!period) {
    // Not ParsePeriod's message, which quotes the text.
    Throw(Status::InvalidArgument(
        std::string(field).append(" is not an ISO 8601 period")));
  }
  return *period;
}

// The query of a dueSoon or watch call, checked (CheckReminderQuery) on
// the loop's thread before any worker is asked.
ReminderQuery ReminderQueryOf(capnp::Text::Reader warn_before,
                              capnp::Text::Reader open_too_long,
                              const ReminderSettings& settings) {
  ReminderQuery query;
  query.warn_before =
      ReminderPeriod(warn_before, "warnBefore", settings.warn_before);
  query.open_too_long =
      ReminderPeriod(open_too_long, "openTooLong", settings.open_too_long);
  // The server's own periods were checked when it started.
  if (warn_before.size() != 0 || open_too_long.size() != 0) {
    Check(CheckReminderQuery(query));
  }
  return query;
}

// Session.watch's handle: cancelling or dropping it ends the watch.
class WatchHandleImpl final : public rpc::WatchHandle::Server {
 public:
  WatchHandleImpl(std::shared_ptr<Connection> conn, uint64_t id)
      : conn_(std::move(conn)), id_(id) {}
  ~WatchHandleImpl() { End(); }

  kj::Promise<void> cancel(CancelContext) override {
    End();
    return kj::READY_NOW;
  }

 private:
  void End() {
    if (ended_) return;
    ended_ = true;
    conn_->watches->Remove(id_);
    --conn_->open_watches;
  }

  std::shared_ptr<Connection> conn_;
  const uint64_t id_;
  bool ended_ = false;
};

// ---- Session
// ------------------------------------------------------------------

class SessionImpl final : public rpc::Session::Server {
 public:
  SessionImpl(std::shared_ptr<Connection> conn, Actor actor)
      : conn_(std::move(conn)), actor_(std::move(actor)) {}

  kj::Promise<void> whoAmI(WhoAmIContext context) override {
    return OnWorker<Result<PrincipalInfo>>(
               *conn_, [engine = &conn_->engine,
                        actor = actor_]() { return engine->WhoAmI(actor); })
        .then([context](kj::Own<Result<PrincipalInfo>> r) mutable {
          ToRpc(Value(std::move(*r)), context.getResults().initPrincipal());
        });
  }

  // Joins the session's open run of creates, or starts one
  // (CreateBatch): pipelined creates share a hand-over and a commit.
  kj::Promise<void> create(CreateContext context) override {
    if (conn_->stopping.stop_requested()) Throw(StoppingRefusal());
    CheckCounts(context.getParams().getRecord(), conn_->engine.limits());
    NewRecord record = FromRpc(context.getParams().getRecord());
    auto paf = kj::newPromiseAndFulfiller<uint64_t>();
    std::shared_ptr<CreateBatch> batch = conn_->open_creates;
    bool joined = false;
    if (batch != nullptr && batch->session == serial_) {
      std::lock_guard lock(batch->mu);
      if (!batch->started && batch->records.size() < CreateBatch::kMaxCreates) {
        batch->records.push_back(std::move(record));
        batch->answers.push_back(kj::mv(paf.fulfiller));
        joined = true;
      }
    }
    if (!joined) {
      PostCreates(*conn_);  // A full run, or another session's: first.
      batch = std::make_shared<CreateBatch>();
      batch->session = serial_;
      batch->records.push_back(std::move(record));
      batch->answers.push_back(kj::mv(paf.fulfiller));
      conn_->open_creates = batch;
      conn_->unposted_creates = [batch, engine = &conn_->engine, actor = actor_,
                                 inbox = &conn_->inbox]() noexcept {
        RunCreates(*engine, actor, *batch, *inbox);
      };
      // Once the loop has read the calls that arrived with this one. (The
      // promise replaced, if any, had nothing left to post.)
      conn_->post_creates = kj::evalLast([conn = conn_.get()] {
                              PostCreates(*conn);
                            }).eagerlyEvaluate(nullptr);
    }
    return paf.promise.then(
        [context](uint64_t id) mutable { context.getResults().setId(id); });
  }

  kj::Promise<void> get(GetContext context) override {
    auto p = context.getParams();
    return OnWorker<Result<RecordView>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, id = p.getId(),
                purpose = PurposeOf(p.hasPurpose(), p.getPurpose()),
                max_words = conn_->max_message_words]() {
                 return engine->GetRecord(actor, id, purpose,
                                          [max_words](const RecordView& view) {
                                            return RecordsFit(max_words, view);
                                          });
               })
        .then([context](kj::Own<Result<RecordView>> r) mutable {
          ToRpc(Value(std::move(*r)), context.getResults().initRecord());
        });
  }

  kj::Promise<void> list(ListContext context) override {
    auto q = context.getParams().getQuery();
    ListQuery query;
    if (q.getKind().size() > 0) query.kind = Str(q.getKind());
    if (q.getHasState()) query.state = FromRpc(q.getState());
    Check(CheckListFilterCount(q.getAttributeEquals().size(),
                               conn_->engine.limits()));
    query.attribute_equals = FromRpc(q.getAttributeEquals());
    if (q.getCreatedFromMicros() != 0) {
      query.created_from = FromMicros(q.getCreatedFromMicros());
    }
    if (q.getCreatedToMicros() != 0) {
      query.created_to = FromMicros(q.getCreatedToMicros());
    }
    query.after_id = q.getAfterId();
    query.limit = q.getLimit();
    query.purpose = PurposeOf(q.hasPurpose(), q.getPurpose());
    return OnWorker<Result<ListPage>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                query = std::move(query),
                max_words = conn_->max_message_words]() {
                 return engine->ListRecords(
                     actor, query, [max_words](const ListPage& page) {
                       return RecordsFit(max_words, page);
                     });
               })
        .then([context](kj::Own<Result<ListPage>> r) mutable {
          ListPage page = Value(std::move(*r));
          auto out = context.getResults();
          auto records = out.initRecords(page.records.size());
          for (size_t i = 0; i < page.records.size(); ++i) {
            ToRpc(page.records[i], records[i]);
          }
          out.setNextAfterId(page.next_after_id);
          out.setSkipped(static_cast<uint32_t>(page.skipped));
        });
  }

  kj::Promise<void> grant(GrantContext context) override {
    auto p = context.getParams();
    return Simple(
        [id = p.getId(), grantee = IdStr(p.getGrantee(), "grantee")](
            Engine& e, const Actor& a) { return e.Grant(a, id, grantee); });
  }

  kj::Promise<void> rectify(RectifyContext context) override {
    auto p = context.getParams();
    Check(CheckFieldCount(p.getFields().size(), conn_->engine.limits()));
    return OnWorker<Result<uint64_t>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, id = p.getId(),
                subject = IdStr(p.getSubjectId(), "subjectId"),
                fields = FromRpc(p.getFields())]() {
                 return engine->Rectify(actor, id, subject, fields);
               })
        .then([context](kj::Own<Result<uint64_t>> r) mutable {
          context.getResults().setVersion(Value(std::move(*r)));
        });
  }

  kj::Promise<void> flag(FlagContext context) override {
    auto p = context.getParams();
    return Simple([id = p.getId(),
                   subject = IdStr(p.getSubjectId(), "subjectId"),
                   note = Str(p.getNote()),
                   purpose = PurposeOf(p.hasPurpose(), p.getPurpose())](
                      Engine& e, const Actor& a) {
      return e.FlagIncorrect(a, id, subject, note, purpose);
    });
  }

  kj::Promise<void> close(CloseContext context) override {
    return Simple([id = context.getParams().getId()](
                      Engine& e, const Actor& a) { return e.Close(a, id); });
  }

  kj::Promise<void> withdraw(WithdrawContext context) override {
    return Simple([id = context.getParams().getId()](
                      Engine& e, const Actor& a) { return e.Withdraw(a, id); });
  }

  kj::Promise<void> erase(EraseContext context) override {
    return Simple(
        [id = context.getParams().getId()](Engine& e, const Actor& a) {
          return e.EraseRecord(a, id);
        });
  }

  kj::Promise<void> listPolicies(ListPoliciesContext context) override {
    struct Listed {
      std::vector<RetentionPolicy> policies;
      std::vector<int64_t> set_at;
    };
    return OnWorker<Result<Listed>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_]() -> Result<Listed> {
                 Listed listed;
                 auto policies = engine->ListPolicies(actor, &listed.set_at);
                 if (!policies) return Fail(policies.error());
                 listed.policies = std::move(*policies);
                 return listed;
               })
        .then([context](kj::Own<Result<Listed>> r) mutable {
          const Listed listed = Value(std::move(*r));
          auto out = context.getResults().initPolicies(listed.policies.size());
          for (size_t i = 0; i < listed.policies.size(); ++i) {
            ToRpc(listed.policies[i], out[i]);
            out[i].setSetAtMicros(listed.set_at[i]);
          }
        });
  }

  kj::Promise<void> createMany(CreateManyContext context) override {
    auto in = context.getParams().getRecords();
    // The batch limit is the engine's too; checked here first so that an
    // oversized batch is not copied at all.
    CheckBatch(in.size());
    for (size_t i = 0; i < in.size(); ++i)
      CheckCounts(in[i], conn_->engine.limits(), i);
    std::vector<NewRecord> records;
    records.reserve(in.size());
    for (auto r : in) records.push_back(FromRpc(r));
    return OnWorker<Result<std::vector<uint64_t>>>(
               *conn_,
               [engine = &conn_->engine, actor = actor_,
                records = std::move(records)]() {
                 return engine->CreateRecords(actor, records);
               })
        .then([context](kj::Own<Result<std::vector<uint64_t>>> r) mutable {
          std::vector<uint64_t> ids = Value(std::move(*r));
          auto out = context.getResults().initIds(ids.size());
          for (size_t i = 0; i < ids.size(); ++i) out.set(i, ids[i]);
        });
  }

  kj::Promise<void> getMany(GetManyContext context) override {
    auto p = context.getParams();
    CheckBatch(p.getIds().size());
    std::vector<uint64_t> ids;
    ids.reserve(p.getIds().size());
    for (uint64_t id : p.getIds()) ids.push_back(id);
    using Answers = Result<std::vector<Result<RecordView>>>;
    return OnWorker<Answers>(
               *conn_,
               [engine = &conn_->engine, actor = actor_, ids = ids,
                purpose = PurposeOf(p.hasPurpose(), p.getPurpose()),
                max_words = conn_->max_message_words]() {
                 return engine->GetRecords(
                     actor, ids, purpose,
                     [max_words](const std::vector<Result<RecordView>>& a) {
                       return RecordsFit(max_words, a);
                     });
               })
        .then([context, ids](kj::Own<Answers> r) mutable {
          std::vector<Result<RecordView>> answers = Value(std::move(*r));
          auto out = context.getResults().initResults(answers.size());
          for (size_t i = 0; i < answers.size(); ++i) {
            out[i].setId(ids[i]);
            if (answers[i]) {
              ToRpc(*answers[i], out[i].initRecord());
            } else {
              out[i].setError(Txt(ErrorText(answers[i].error())));
            }
          }
        });
  }

  kj::Promise<void> officer(OfficerContext context) override {
    return Facet<OfficerImpl>(Role::kOfficer, "officer",
                              [context](kj::Own<OfficerImpl> f) mutable {
                                context.getResults().setOfficer(kj::mv(f));
                              });
  }

  kj::Promise<void> auditor(AuditorContext context) override {
    return Facet<AuditorImpl>(Role::kAuditor, "auditor",
                              [context](kj::Own<AuditorImpl> f) mutable {
                                context.getResults().setAuditor(kj::mv(f));
                              });
  }

  kj::Promise<void> admin(AdminContext context) override {
    return Facet<AdminImpl>(Role::kAdmin, "admin",
                            [context](kj::Own<AdminImpl> f) mutable {
                              context.getResults().setAdmin(kj::mv(f));
                            });
  }

  kj::Promise<void> dueSoon(DueSoonContext context) override {
    auto p = context.getParams();
    ReminderQuery query = ReminderQueryOf(p.getWarnBefore(), p.getOpenTooLong(),
                                          ReminderDefaults());
    query.after_record_id = p.getAfterRecordId();
    using Found = Result<ReminderPage>;
    return OnWorker<Found>(*conn_,
                           [engine = &conn_->engine, actor = actor_, query]() {
                             return engine->DueSoon(actor, query);
                           })
        .then([context,
               max_words = conn_->max_message_words](kj::Own<Found> r) mutable {
          ReminderPage page = Value(std::move(*r));
          // A page cut to the message limit goes on after its last record
          // (and counts only the skipped records before it).
          const uint64_t cut = FitReminders(page.reminders, max_words);
          if (cut != 0) {
            page.next_after_record_id = cut;
            page.skipped = static_cast<size_t>(std::ranges::count_if(
                page.skipped_ids, [cut](uint64_t id) { return id <= cut; }));
          }
          auto results = context.getResults();
          SetReminders(page.reminders,
                       results.initReminders(page.reminders.size()));
          results.setNextAfterRecordId(page.next_after_record_id);
          results.setSkipped(static_cast<uint32_t>(page.skipped));
        });
  }

  // The first reminders are found on the connection's lane (which checks
  // the role and the arguments for the caller); the watch is registered
  // once they are, and its first remind sent at once.
  kj::Promise<void> watch(WatchContext context) override {
    auto p = context.getParams();
    if (conn_->watches == nullptr) {
      Throw(Status::Unavailable("this server does not deliver reminders"));
    }
    CheckWatchRoom();
    const ReminderQuery query = ReminderQueryOf(
        p.getWarnBefore(), p.getOpenTooLong(), ReminderDefaults());
    rpc::Watcher::Client watcher = p.getWatcher();
    using Found = Result<ReminderPage>;
    return OnWorker<Found>(*conn_,
                           [engine = &conn_->engine, actor = actor_, query]() {
                             return engine->DueSoon(actor, query);
                           })
        .then([this, context, query,
               watcher = kj::mv(watcher)](kj::Own<Found> r) mutable {
          ReminderPage first = Value(std::move(*r));
          CheckWatchRoom();  // Pipelined watches: counted now.
          const uint64_t id = conn_->watches->Add(
              *conn_, actor_, query, kj::mv(watcher), std::move(first));
          ++conn_->open_watches;
          context.getResults().setHandle(kj::heap<WatchHandleImpl>(conn_, id));
        });
  }

 private:
  const ReminderSettings& ReminderDefaults() const {
    static const ReminderSettings kDefaults;
    return conn_->watches != nullptr ? conn_->watches->settings() : kDefaults;
  }

  void CheckWatchRoom() const {
    if (conn_->open_watches >= kMaxWatchesPerConnection) {
      Throw(Status::ResourceExhausted(
          std::string("a connection holds at most ")
              .append(std::to_string(kMaxWatchesPerConnection))
              .append(" watches")));
    }
  }

  // A call whose answer is only success or an error.

  template <typename F>
  kj::Promise<void> Simple(F call) {
    return OnWorker<Status>(*conn_,
                            [engine = &conn_->engine, actor = actor_,
                             call = std::move(call)]() mutable {
                              return call(*engine, actor);
                            })
        .then([](kj::Own<Status> s) { Check(*s); });
  }

  // A batch's size against the engine's limit (Limits::max_batch_records),
  // before the request is copied.
  void CheckBatch(size_t items) {
    Check(CheckBatchSize(items, conn_->engine.limits()));
  }

  // Hands out facet T when the principal holds `role` now.
  template <typename T, typename Set>
  kj::Promise<void> Facet(Role role, const char* name, Set set) {
    return OnWorker<Result<PrincipalInfo>>(
               *conn_, [engine = &conn_->engine,
                        actor = actor_]() { return engine->WhoAmI(actor); })
        .then([this, role, name,
               set = std::move(set)](kj::Own<Result<PrincipalInfo>> r) mutable {
          PrincipalInfo who = Value(std::move(*r));
          if (!who.HasRole(role)) {
            Throw(Status::PermissionDenied(std::string("this facet needs the ")
                                               .append(name)
                                               .append(" role")));
          }
          set(kj::heap<T>(conn_, actor_));
        });
  }

  std::shared_ptr<Connection> conn_;
  Actor actor_;
  // Unique per session, never reused (an address could be).
  const uint64_t serial_ = NextSessionSerial();
};

// The wait after a connection's n-th failed login (n >= 1) before its
// refusal is answered and its next login checked: none after the first,
// then 100 ms doubling each time, at most 5 s.
kj::Duration LoginWait(int failures) {
  if (failures <= 1) return 0 * kj::MILLISECONDS;
  return std::min<int64_t>(100LL << std::min(failures - 2, 6), 5000) *
         kj::MILLISECONDS;
}

// ---- Gateway
// ------------------------------------------------------------------

class GatewayImpl final : public rpc::Gateway::Server {
 public:
  explicit GatewayImpl(std::shared_ptr<Connection> conn)
      : conn_(std::move(conn)) {}

  // Logins of one connection are checked one at a time, in the order sent,
  // and after a failure the next one is not checked before the failure's
  // wait has passed (LoginWait): pipelined guesses are slowed like
  // sequential ones. A success does not reset the count (a client holding
  // one good credential could otherwise interleave it with guesses). A
  // login with no other before it and no wait is checked at once, so it
  // keeps its order with the connection's other calls; at most
  // kMaxPendingLogins wait at once, more are refused.
  kj::Promise<void> login(LoginContext context) override {
    auto p = context.getParams();
    for (auto [text, what] : {std::pair{p.getPrincipal(), "principal"},
                              std::pair{p.getToken(), "token"}}) {
      if (text.size() > kMaxIdBytes) {
        Throw(Status::InvalidArgument(std::string(what) + " must be at most " +
                                      std::to_string(kMaxIdBytes) + " bytes"));
      }
    }
    if (conn_->logins_pending >= kMaxPendingLogins) {
      Throw(Status::ResourceExhausted(
          "too many logins waiting on this connection (at most " +
          std::to_string(kMaxPendingLogins) +
          "); wait for an answer before sending another"));
    }
    const bool first_in_line = conn_->logins_pending == 0;
    ++conn_->logins_pending;
    // This login's turn: the previous one's (answered, failed or dropped).
    auto turn = kj::newPromiseAndFulfiller<void>();
    kj::Promise<void> previous =
        kj::mv(conn_->login_turn).then([]() {}, [](kj::Exception&&) {});
    conn_->login_turn = kj::mv(turn.promise);
    kj::Promise<kj::Own<Result<Actor>>> checked = nullptr;
    if (first_in_line && conn_->next_login_at <= conn_->timer.now()) {
      checked = CheckCredential(context);
    } else {
      checked = previous
                    .then([this]() {
                      return conn_->timer.atTime(conn_->next_login_at);
                    })
                    .then([this, context]() mutable {
                      return CheckCredential(context);
                    });
    }
    return checked
        .then([this, context](
                  kj::Own<Result<Actor>> owned) mutable -> kj::Promise<void> {
          Result<Actor>& r = *owned;
          if (r) {
            conn_->logged_in = true;
            context.getResults().setSession(
                kj::heap<SessionImpl>(conn_, std::move(*r)));
            return kj::READY_NOW;
          }
          // Set before the wait: the next login waits for it however this
          // one ends.
          conn_->next_login_at =
              conn_->timer.now() + LoginWait(++conn_->failed_logins);
          Status refused = r.error();
          return conn_->timer.atTime(conn_->next_login_at).then([refused]() {
            Throw(refused);
          });
        })
        .attach(kj::defer(
            [conn = conn_, fulfiller = kj::mv(turn.fulfiller)]() mutable {
              --conn->logins_pending;
              fulfiller->fulfill();
            }));
  }

 private:
  // On the connection's lane, when the login's turn has come: the token's
  // one copy of ours is made only now, in guarded memory, and wiped when the
  // check ends (the message's is the RPC system's).
  kj::Promise<kj::Own<Result<Actor>>> CheckCredential(LoginContext& context) {
    auto p = context.getParams();
    const capnp::Text::Reader token = p.getToken();
    return OnWorker<Result<Actor>>(
        *conn_,
        [engine = &conn_->engine, principal = Str(p.getPrincipal()),
         token = crypto::GuardedBytes::Copy(
             std::string_view(token.cStr(), token.size()))]() -> Result<Actor> {
          auto actor = engine->Authenticate(token.view());
          // A token of another principal is refused like a wrong one.
          if (!actor || actor->id() != principal) {
            return Fail(Status::Unauthenticated("invalid credential"));
          }
          return actor;
        });
  }

  std::shared_ptr<Connection> conn_;
};

}  // namespace

// ---- Watches
// ------------------------------------------------------------------

struct Watches::Watch {
  Watch(uint64_t id_in, const Connection* conn_in, Actor actor_in,
        ReminderQuery query_in, rpc::Watcher::Client watcher_in)
      : id(id_in),
        conn(conn_in),
        actor(std::move(actor_in)),
        query(query_in),
        watcher(kj::mv(watcher_in)) {
    auto paf = kj::newPromiseAndFulfiller<void>();
    ended = paf.promise.fork();
    end = kj::mv(paf.fulfiller);
  }
  const uint64_t id;
  const Connection* const conn;  // Compared only: RemoveConnection.
  const Actor actor;
  const ReminderQuery query;
  rpc::Watcher::Client watcher;
  // A check or a delivery is under way: no other starts.
  bool busy = false;
  // Fulfilled when the watch ends: its work in flight is cancelled.
  kj::ForkedPromise<void> ended = nullptr;
  kj::Own<kj::PromiseFulfiller<void>> end;
};

Watches::Watches(Engine& engine, WorkerPool& pool, LoopInbox& inbox,
                 kj::Timer& timer, ReminderSettings settings)
    : engine_(engine),
      pool_(pool),
      inbox_(inbox),
      timer_(timer),
      settings_(std::move(settings)),
      lane_(pool.NewLane()),
      tasks_(kj::heap<kj::TaskSet>(errors_)) {}

Watches::~Watches() = default;

uint64_t Watches::Add(const Connection& conn, Actor actor, ReminderQuery query,
                      rpc::Watcher::Client watcher, ReminderPage first) {
  if (stopped_) Throw(StoppingRefusal());
  if (conn.ended) Throw(Status::Unavailable("the connection has ended"));
  const auto held = std::ranges::count_if(watches_, [&](const auto& entry) {
    return entry.second->actor.id() == actor.id();
  });
  if (static_cast<size_t>(held) >= kMaxWatchesPerPrincipal) {
    Throw(Status::ResourceExhausted(
        std::string("a principal holds at most ")
            .append(std::to_string(kMaxWatchesPerPrincipal))
            .append(" watches")));
  }
  auto watch = std::make_shared<Watch>(next_id_++, &conn, std::move(actor),
                                       query, kj::mv(watcher));
  watches_.emplace(watch->id, watch);
  WatchesChanged();
  watch->busy = true;
  tasks_->add(Guarded(watch, Deliver(watch, std::move(first))));
  return watch->id;
}

void Watches::Remove(uint64_t id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  // Destroyed last, once out of the map: its Watcher may hold its own
  // handle, whose destructor removes it again (a no-op then).
  const std::shared_ptr<Watch> watch = std::move(it->second);
  watches_.erase(it);
  watch->end->fulfill();  // Cancels its work at the next turn.
  WatchesChanged();
}

void Watches::RemoveConnection(const Connection& conn) {
  std::vector<uint64_t> ids;
  for (const auto& [id, watch] : watches_) {
    if (watch->conn == &conn) ids.push_back(id);
  }
  for (uint64_t id : ids) Remove(id);
}

void Watches::Clear() {
  stopped_ = true;
  // Destroyed at the end, out of the members (see Remove).
  auto watches = std::move(watches_);
  watches_.clear();
  auto tasks = kj::mv(tasks_);  // Cancels the work in flight.
  tasks_ = kj::heap<kj::TaskSet>(errors_);
  WatchesChanged();
}

void Watches::WatchesChanged() {
  if (settings_.TEST_watches) settings_.TEST_watches(watches_.size());
}

void Watches::Report(const char* what, StatusCode code) {
  // The code only: no principal, record or message text.
  const std::string_view name = StatusCodeName(code);
  std::fprintf(stderr, "custosd: reminders: %s failed: %.*s\n", what,
               static_cast<int>(name.size()), name.data());
}

kj::Promise<void> Watches::Run() {
  return timer_.afterDelay(settings_.interval).then([this]() {
    for (auto& [id, watch] : watches_) Check(watch);
    return Run();
  });
}

kj::Promise<void> Watches::Guarded(const std::shared_ptr<Watch>& watch,
                                   kj::Promise<void> work) {
  return work.exclusiveJoin(watch->ended.addBranch())
      .then([watch]() { watch->busy = false; },
            [watch](kj::Exception&& e) {
              watch->busy = false;
              Report("a delivery", FromException(e).code());
            });
}

void Watches::Check(std::shared_ptr<Watch> watch) {
  if (watch->busy) return;
  watch->busy = true;
  tasks_->add(Guarded(watch, Find(watch, 0)).then([this]() {
    if (settings_.TEST_check_done) settings_.TEST_check_done();
  }));
}

kj::Promise<void> Watches::Find(std::shared_ptr<Watch> watch,
                                uint64_t after_record_id) {
  ReminderQuery query = watch->query;
  query.after_record_id = after_record_id;
  using Found = Result<ReminderPage>;
  return OnLane<Found>(pool_, inbox_, lane_,
                       [engine = &engine_, actor = watch->actor, query]() {
                         return engine->DueSoon(actor, query);
                       })
      .then([this, watch](kj::Own<Found> found) -> kj::Promise<void> {
        if (!*found) {
          // Revoked, its credential replaced, or its role gone: the watch
          // ends.
          const StatusCode code = found->error().code();
          if (code == StatusCode::kUnauthenticated ||
              code == StatusCode::kPermissionDenied) {
            Remove(watch->id);
          } else {
            Report("a check", code);
          }
          return kj::READY_NOW;
        }
        return Deliver(watch, std::move(**found));
      });
}

kj::Promise<void> Watches::Deliver(std::shared_ptr<Watch> watch,
                                   ReminderPage page) {
  if (!watches_.contains(watch->id)) return kj::READY_NOW;
  if (page.skipped > 0) {
    // A count only: no principal or record.
    std::fprintf(stderr,
                 "custosd: reminders: %zu records left out of a check "
                 "(unreadable, or their next deadline needs a retention "
                 "policy that failed to authenticate)\n",
                 page.skipped);
  }
  const uint64_t page_next = page.next_after_record_id;
  std::vector<Reminder> reminders = std::move(page.reminders);
  std::erase_if(reminders,
                [](const Reminder& r) { return r.delivered_at.has_value(); });
  if (reminders.empty()) {
    return page_next == 0 ? kj::Promise<void>(kj::READY_NOW)
                          : Find(watch, page_next);
  }
  // Those of as many records as one remind can hold; the rest after them.
  const uint64_t cut = FitReminders(reminders, settings_.max_message_words);
  const uint64_t next = cut != 0 ? cut : page_next;
  auto request = watch->watcher.remindRequest();
  SetReminders(reminders, request.initReminders(reminders.size()));
  return request.send()
      .ignoreResult()
      .exclusiveJoin(timer_.afterDelay(kRemindTimeout).then([]() {
        Throw(Status::Unavailable("the Watcher did not answer in time"));
      }))
      .then([this, watch, reminders = std::move(reminders)]() mutable {
        // Only now that remind returned: marked delivered, for good.
        return OnLane<Status>(pool_, inbox_, lane_,
                              [engine = &engine_, actor = watch->actor,
                               reminders = std::move(reminders)]() {
                                return engine->MarkRemindersDelivered(
                                    actor, reminders);
                              });
      })
      .then([this, watch, next](kj::Own<Status> marked) -> kj::Promise<void> {
        if (!marked->ok()) {
          // Sent again by a later check: delivered at least once.
          Report("marking reminders delivered", marked->code());
          return kj::READY_NOW;
        }
        return next == 0 ? kj::Promise<void>(kj::READY_NOW) : Find(watch, next);
      });
}

kj::Own<rpc::Gateway::Server> NewGateway(std::shared_ptr<Connection> conn) {
  return kj::heap<GatewayImpl>(std::move(conn));
}

}  // namespace custos::server
