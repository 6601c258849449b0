// The RPC interfaces of schema/custos.capnp over the engine (docs/api.md).
//
// Each connection gets its own Gateway, and with it its own lane of the
// worker pool: its calls reach the engine in the order sent, on a worker
// thread, and come back to the event loop to be answered (through the
// server's LoopInbox). Long work has two lanes for the whole server,
// maintenance and reading (LongWork). Requests are
// turned into plain values on the loop thread before the engine call, and
// answers into Cap'n Proto builders after it: workers never touch either.
//
// Thread safety: the interface objects live on the event loop's thread.

#ifndef CUSTOS_SERVER_SERVICE_H_
#define CUSTOS_SERVER_SERVICE_H_

#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "schema/custos.capnp.h"
#include "server/loop_inbox.h"
#include "server/worker_pool.h"
#include "storage/engine.h"

namespace custos::server {

// A record's answer as Session.get, getMany and list send it, and an upper
// bound of the words it takes in a message, laid out in one segment or
// several (every pointer counted twice: a far pointer's landing pad):
// checked before the reads an answer discloses are recorded
// (tests/server_answer_test.cc holds the bound against built records;
// ServerAdminTest.AnswersAroundTheLimitAreSentOrRefusedBeforeTheirReads
// against answers sent).
void RecordToRpc(const RecordView& view, rpc::Record::Builder out);
uint64_t RecordAnswerWords(const RecordView& view);

// The progress of the last sweep the server started (Admin.sweepProgress):
// written by the worker that sweeps, read by any connection's calls.
struct SweepStatus {
  std::atomic<bool> running{false};
  std::atomic<int> phase{0};  // A SweepPhase.
  std::atomic<uint64_t> records_done{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<int64_t> started_micros{0};
};

// The last long call the server ran (Admin.progress), whatever it was:
// written by the worker that runs it, read by any connection's calls.
class WorkBoard {
 public:
  struct View {
    std::string operation;  // The call's schema name; "" before any.
    bool running = false;
    std::string phase;  // WorkProgress's (a sweep's: SweepPhaseName).
    std::string unit;
    uint64_t done = 0;
    uint64_t total = 0;  // 0: not known ahead.
    int64_t started_micros = 0;
    int64_t ended_micros = 0;  // 0 while it runs.
    std::string outcome;       // "" while it runs; else "OK" or the code's
                               // name (StatusCodeName).
  };
  // `operation` starts at `now_micros`, replacing the last one.
  void Begin(std::string_view operation, int64_t now_micros);
  void Progress(const WorkProgress& progress);
  void End(const Status& outcome, int64_t now_micros);
  View Read() const;

 private:
  mutable std::mutex mu_;
  View view_;
};

// A lane of long work shared by every connection: at most one such call
// runs at a time, server-wide, on this lane of the pool; one that arrives
// meanwhile, from any connection, is refused at once with Unavailable and
// changes nothing (docs/api.md, docs/decisions.md). The server has two:
// maintenance (the Admin facet's sweeps, shred completion, policy
// re-application, re-keying, erasure verification, key rotations, backups
// and their verification) and reading (verifyChain and processingRegister,
// of the Auditor and Admin facets), so that an auditor's reads never keep
// an administrator's maintenance waiting, nor the other way round.
struct LongWork {
  std::shared_ptr<WorkerPool::Lane> lane = nullptr;
  // True from a long call's acceptance (on the event loop's thread) until
  // its engine work ends (on the worker, before the answer is sent).
  std::atomic<bool> busy{false};
  SweepStatus sweep;
  WorkBoard board;
  // Requested when the server stops: a sweep in progress ends after the
  // batch it is writing (SweepOptions::stop).
  std::stop_token stop = {};
  // ServerOptions::TEST_sweep_progress and TEST_work_progress.
  std::function<void(const SweepProgress&)> TEST_sweep_progress = nullptr;
  std::function<void(const WorkProgress&)> TEST_work_progress = nullptr;
};

// The reminder settings of the server (ServerOptions; custosd
// --reminder-warn-before, --reminder-open-too-long, --reminder-interval).
struct ReminderSettings {
  // A dueSoon or watch that gives "" uses these.
  Period warn_before = kDefaultReminderWarnBefore;
  Period open_too_long = kDefaultReminderOpenTooLong;
  // How often every watch is checked for new reminders. Default: 60 s.
  kj::Duration interval = 60 * kj::SECONDS;
  // ServerOptions::max_message_words: a remind (and a dueSoon answer)
  // holds the reminders of as many records as fit in it.
  uint64_t max_message_words = 1 << 20;
  // ServerOptions::TEST_reminder_check_done.
  std::function<void()> TEST_check_done = nullptr;
  // ServerOptions::TEST_reminder_watches.
  std::function<void(size_t)> TEST_watches = nullptr;
};

// The watches of every connection (Session.watch): each principal's
// Watcher, called with its reminders not yet delivered when it is
// registered and at each check (every ReminderSettings::interval). The
// reminders are found and marked delivered by the engine on a worker (one
// lane for all watches); the Watcher is called on the event loop's
// thread, with at most Limits::max_reminders_per_call reminders a call,
// and those of no more records than fit in the message limit:
// more are sent in batches, each marked delivered (once its remind
// returned) before the next is found and sent. A remind that has not
// returned after kRemindTimeout fails (its reminders are sent again by a
// later check). A watch is checked by one task at a time: a check that
// finds its watch still busy (a remind in flight, a slow client) is
// skipped. A watch ends with its handle, its connection (RemoveConnection,
// whatever still holds the handle), or its principal; its work in flight
// is cancelled then.
//
// Thread safety: lives on the event loop's thread.
struct Connection;

class Watches {
 public:
  // How long a Watcher may take to answer one remind.
  static constexpr kj::Duration kRemindTimeout = 60 * kj::SECONDS;

  Watches(Engine& engine, WorkerPool& pool, LoopInbox& inbox, kj::Timer& timer,
          ReminderSettings settings);
  ~Watches();

  const ReminderSettings& settings() const { return settings_; }

  // Registers a watch of `conn`'s whose first reminders (DueSoon, found by
  // the caller on a worker) are `first`: those not delivered are sent at
  // once, then the pages after it. Returns its id, for Remove.
  // Unavailable once Clear was called or `conn` has ended;
  // ResourceExhausted when the principal holds kMaxWatchesPerPrincipal.
  uint64_t Add(const Connection& conn, Actor actor, ReminderQuery query,
               rpc::Watcher::Client watcher, ReminderPage first);
  // Ends a watch and cancels its work in flight.
  void Remove(uint64_t id);
  // Ends every watch of `conn` (its connection ended).
  void RemoveConnection(const Connection& conn);
  // Checks every watch every settings().interval, until the promise is
  // dropped.
  kj::Promise<void> Run();
  // Ends every watch and the work in flight, and refuses new ones (server
  // shutdown: the Watchers belong to connections that are about to close).
  void Clear();

 private:
  struct Watch;
  // Finds the watch's reminders on a worker, then delivers them.
  void Check(std::shared_ptr<Watch> watch);
  // Finds the page after `after_record_id` on a worker, then delivers it.
  kj::Promise<void> Find(std::shared_ptr<Watch> watch,
                         uint64_t after_record_id);
  // Sends the undelivered ones of `page`; marks them delivered on a
  // worker once remind returned; then the next page, if any.
  kj::Promise<void> Deliver(std::shared_ptr<Watch> watch, ReminderPage page);
  // `work`, cancelled if the watch ends first; its busy spell ends with it.
  kj::Promise<void> Guarded(const std::shared_ptr<Watch>& watch,
                            kj::Promise<void> work);
  // A failure of a check or a delivery, to stderr: its status code only.
  static void Report(const char* what, StatusCode code);
  void WatchesChanged();

  class Errors final : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&&) override {}
  };

  Engine& engine_;
  WorkerPool& pool_;
  LoopInbox& inbox_;
  kj::Timer& timer_;
  const ReminderSettings settings_;
  std::shared_ptr<WorkerPool::Lane> lane_;
  uint64_t next_id_ = 1;
  bool stopped_ = false;
  std::map<uint64_t, std::shared_ptr<Watch>> watches_;
  Errors errors_;
  kj::Own<kj::TaskSet> tasks_;
};

// What every interface object of one connection shares.
struct CreateBatch;

// The subject reports being sent to clients' sinks (subjectReportTo) on
// the whole server, and how many of them each principal, by id, is sent
// (service.cc, StreamSlot). Touched on the event loop's thread only.
struct ReportStreams {
  size_t total = 0;
  std::map<std::string, size_t> by_principal;
};

struct Connection {
  Engine& engine;
  WorkerPool& pool;
  // Where the pool's workers hand the answers back (the server's one).
  LoopInbox& inbox;
  std::shared_ptr<WorkerPool::Lane> lane;
  kj::Timer& timer;
  // Failed logins on this connection (never reset): each one after the
  // first doubles the wait before its refusal and before the connection's
  // next login is checked (from 100 ms, at most 5 s; service.cc,
  // LoginWait). The turn is fulfilled when the last login sent has ended,
  // however it ended: logins are checked one at a time, in order.
  int failed_logins = 0;
  kj::TimePoint next_login_at = kj::origin<kj::TimePoint>();
  kj::Promise<void> login_turn = kj::READY_NOW;
  // Logins received and not yet ended (at most kMaxPendingLogins).
  size_t logins_pending = 0;
  // A login succeeded on this connection (ServerOptions::login_timeout).
  bool logged_in = false;
  // The server's long work (shared by every connection): a backup that
  // runs for minutes holds one worker, never the connection's other calls.
  // Maintenance and reading (LongWork).
  std::shared_ptr<LongWork> long_work = nullptr;
  std::shared_ptr<LongWork> reading_work = nullptr;
  // ServerOptions::backup_dir and key_dir.
  std::string backup_dir = "";
  std::string key_dir = "";
  // ServerOptions::max_message_words: Cap'n Proto will not send an answer
  // of this size or more (it checks what it sends against what it would
  // read): a sweep's lists are fitted to it, other answers of unbounded
  // size checked against it (service.cc, CheckAnswerSize).
  uint64_t max_message_words = 1 << 20;
  // ServerOptions::sink_timeout and sink_deadline.
  std::chrono::milliseconds sink_timeout{60'000};
  std::chrono::milliseconds sink_deadline{600'000};
  // Subject reports being sent to a client's sink (subjectReportTo), on
  // this connection and on the whole server (shared by every connection).
  // Touched on the event loop's thread only.
  size_t streams = 0;
  std::shared_ptr<ReportStreams> server_streams =
      std::make_shared<ReportStreams>();
  // The creates of one session that wait, consecutive in the lane, for
  // their one CreateRecords write (service.cc, CreateBatch). Touched on the
  // event loop's thread only; any other call posted to the lane closes it,
  // so calls keep the order they were sent in.
  std::shared_ptr<CreateBatch> open_creates = nullptr;
  // The open run's task, until it is posted to the lane: once the loop has
  // read every call that had arrived (kj::evalLast, `post_creates`), so
  // that creates read together run together and an idle worker is woken
  // once for them; at once when the run is full or any other call of the
  // connection is posted (calls keep their order).
  std::move_only_function<void()> unposted_creates = nullptr;
  kj::Promise<void> post_creates = nullptr;
  // The server's watches (shared by every connection), and how many of
  // them this connection's handles hold (at most kMaxWatchesPerConnection).
  std::shared_ptr<Watches> watches = nullptr;
  size_t open_watches = 0;
  // Set when the connection ended (server.cc): a watch whose registration
  // was under way then is refused.
  bool ended = false;
  // The server's stop (Server::Stop, SIGTERM, SIGINT): a call that arrives
  // once it is requested is refused with Unavailable, while the calls
  // already taken finish and are answered (server.cc, the drain).
  std::stop_token stopping = {};
};

// The refusal of a call that arrives while the server stops.
Status StoppingRefusal();

// Gateway.login: logins one connection may have waiting at once (each
// waits for the one before it, and after a failure for its wait).
inline constexpr size_t kMaxPendingLogins = 8;

// Session.watch: watches one connection may hold at once.
inline constexpr size_t kMaxWatchesPerConnection = 16;
// Session.watch: watches one principal may hold at once, over all its
// connections.
inline constexpr size_t kMaxWatchesPerPrincipal = 64;

// The bootstrap capability of a new connection.
kj::Own<rpc::Gateway::Server> NewGateway(std::shared_ptr<Connection> conn);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_SERVICE_H_
