// Agent: the participant agent's core, independent of Thrift. It keeps the branch table,
// runs each call through BranchStateMachine, performs the ResourceManager and journal I/O
// the rules require (every acknowledged transition journaled and fdatasync'd first, or
// durable in the database: a prepared branch's COMMITTED, and with a durable-prepare RM a
// 2PC PREPARED, are appended lazily; Recover() restores them from the database), and
// on Tick() aborts idle/late ACTIVE branches, inquires about in-doubt ones, runs
// cooperative termination, commits PRECOMMITTED branches on timeout, reconciles orphan
// prepared branches of the RM and compacts the journal.
//
// Thread-safety: every public method may be called from any thread. Calls on one branch
// are serialized by that branch's mutex; calls on different branches run in parallel
// (their journal appends share fsyncs). Tick() may run concurrently with calls (the
// background thread started by StartBackground() calls it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "participant/branch_journal.h"
#include "participant/branch_state_machine.h"
#include "participant/coordinator_client.h"
#include "participant/peer_client.h"
#include "participant/resource_manager.h"

namespace verdict::participant {

// Monotonic milliseconds; injectable for tests.
class AgentClock {
 public:
  virtual ~AgentClock() = default;
  // Monotonic milliseconds: every timeout of this incarnation.
  virtual int64_t NowMs() = 0;
  // Wall-clock milliseconds since the Unix epoch: only for what must outlive the process
  // (the time of a YES vote, journaled).
  virtual int64_t WallMs() = 0;
};
AgentClock* SystemAgentClock();

struct AgentOptions {
  std::string name;                     // this participant's name
  std::string address;                  // HOST:PORT it serves on
  int default_timeout_ms = 60000;       // branch deadline when OpenBranch gives none
  int default_idle_timeout_ms = 30000;  // idle abort of an ACTIVE branch
  int default_lock_timeout_ms = 2000;   // lock wait bound of one statement
  int max_timeout_ms = 3600 * 1000;     // larger requested timeouts are clamped
  int inquiry_after_ms = 2000;          // in doubt this long -> first inquiry
  int inquiry_backoff_max_ms = 30000;   // backoff cap between inquiries
  int precommit_timeout_ms = 5000;      // 3PC: PRECOMMITTED with a silent group -> commit
  int decided_retention_ms = 600000;    // decided branches answered from memory this long
  // Commit markers (the RM's durable commit evidence, which answers for a committed branch
  // after it is forgotten from memory and journal) are pruned after this long; 0 = never.
  // 0 or >= decided_retention_ms. Safety assumption: docs/participant.md, "Commit evidence".
  int64_t commit_evidence_retention_ms = 7LL * 24 * 3600 * 1000;
  int orphan_safety_ms = 60000;  // RM-prepared branch unknown to the journal
  uint64_t journal_compact_bytes = 64ull << 20;
  int tick_ms = 100;  // background Tick() period
};

struct BranchStatus {
  BranchKey key;
  BranchState state = BranchState::kNone;
  Protocol protocol = Protocol::k2PC;
  std::vector<PeerRef> participants;
  int64_t age_ms = 0;
  // Not OK: the agent has no record of the branch and could not ask the RM for commit
  // evidence (database unreachable), so `state` (kNone) is NOT an answer; report
  // UNAVAILABLE, never "no such branch".
  Status lookup;
};

struct Reply {
  ReplyCode code = ReplyCode::kOk;
  BranchState state = BranchState::kNone;
  std::string message;
};

enum class Vote : uint8_t { kYes = 1, kNo = 2, kReadOnly = 3 };

struct PrepareReply {
  Reply reply;
  Vote vote = Vote::kNo;
};

struct ExecuteReply {
  Reply reply;
  QueryResult result;
};

struct OpenArgs {
  BranchKey key;
  Protocol protocol = Protocol::k2PC;
  int64_t timeout_ms = 0;       // 0 = default
  int64_t idle_timeout_ms = 0;  // 0 = default
  int64_t lock_timeout_ms = 0;  // 0 = default
};

class Agent {
 public:
  Agent(AgentOptions options, ResourceManager& rm, BranchJournal& journal,
        CoordinatorClient& coordinator, PeerClient& peers, AgentClock* clock);
  ~Agent();  // StopBackground()s
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Replays the journal and re-establishes every undecided prepared branch in the RM
  // (locks held) BEFORE anything is served. Corruption/IOError: refuse to start.
  Status Recover();

  Reply Open(const OpenArgs& args);
  // `seq` as in participant.thrift (0 = no deduplication).
  ExecuteReply Execute(const BranchKey& key, const std::string& sql,
                       const std::vector<SqlValue>& params, int64_t seq);
  PrepareReply Prepare(const BranchKey& key, const std::vector<PeerRef>& participants);
  Reply Precommit(const BranchKey& key);
  Reply Fence(const BranchKey& key, const std::string& fencer);
  Reply Commit(const BranchKey& key, bool one_phase);
  Reply Abort(const BranchKey& key);
  // Cooperative termination: aborts the branch only if it has not voted (ACTIVE, or no
  // record and no commit evidence in the RM: an ABORTED tombstone is journaled); otherwise
  // changes nothing and returns WRONG_STATE with the state (OK if already ABORTED).
  //
  // "No record" is never taken at face value by Commit, Abort, AbortIfUnvoted and
  // GetStatus: a branch forgotten after decided_retention_ms (and compacted out of the
  // journal) that COMMITTED is recalled as COMMITTED from the RM's commit evidence
  // (ResourceManager::CommitEvidence) — a forgotten commit is never mistaken for "never
  // voted". If the RM cannot be asked, these calls answer UNAVAILABLE.
  Reply AbortIfUnvoted(const BranchKey& key);
  BranchStatus GetStatus(const BranchKey& key);
  // Branches whose outcome is not known here: PREPARED, PRECOMMITTED, FENCED (voted YES,
  // undecided) and OUTCOME_UNKNOWN (a one-phase commit the RM could not confirm or deny).
  std::vector<BranchStatus> ListInDoubt();

  // One round of timer work (see the file comment). Never blocks on a branch that is busy.
  void Tick();

  // Registers with the coordinator group in the background, retrying with backoff until a
  // leader accepts, and runs Tick() every tick_ms. Idempotent.
  void StartBackground();
  void StopBackground();
  bool registered() const { return registered_.load(); }

 private:
  struct Branch;
  using BranchPtr = std::shared_ptr<Branch>;

  BranchPtr Find(const BranchKey& key);
  BranchPtr FindOrCreate(const BranchKey& key, bool* created);
  void Erase(const BranchKey& key);
  Reply Current(const Branch& b, ReplyCode code, std::string message = {});
  static JournalRecord RecordOf(const Branch& b, BranchState state);
  Status Journal(const Branch& b, BranchState state);
  // The same record, not waited for (BranchJournal::AppendLazily).
  Status JournalLazily(const Branch& b, BranchState state);
  // Applies a COMMIT/ABORT decision to an in-doubt (or unknown) branch. b->mu held.
  Reply DecideLocked(Branch& b, bool commit, const char* why);
  Reply AbortActiveLocked(Branch& b, const std::string& why);
  // If the agent has no record of b (state kNone), asks the RM for commit evidence and,
  // if the branch committed, recalls it as COMMITTED (in memory; the evidence is durable).
  // Errors: the RM could not be asked (b stays kNone). b->mu held.
  // With a durable-prepare RM (ResourceManager::DurablePrepare), also adopts a branch the
  // RM holds prepared as PREPARED (AdoptLocked), so that "no record" is never the answer
  // for a branch that may have voted YES.
  Status RecallLocked(Branch& b);
  // Makes b (no record) PREPARED because the RM holds it prepared: its PREPARED record was
  // appended lazily and lost in a crash, or the agent died before its vote left. 2PC, no
  // participant list (both were in the lost record). b->mu held (or start-up).
  void AdoptLocked(Branch& b);

  // Tick() helpers.
  // Timer work on one branch; true if it is finished for good (COMMITTED, ABORTED or
  // READ_ONLY with no RM leftover): it never needs the timer again, only forgetting.
  bool TickBranch(const BranchPtr& b, int64_t now);
  // Adds a new branch to the table (mu_ held).
  void IndexLocked(const BranchPtr& b);
  // Forgets the finished branches older than decided_retention_ms.
  void ForgetExpired(int64_t now);
  // The branches Tick() visits (a snapshot).
  std::vector<BranchPtr> Ticking();
  void ResolveInDoubt(const BranchPtr& b, int64_t now);
  void Terminate(const BranchPtr& b);
  void ReconcileOrphans(int64_t now);
  // Writes and syncs the lazily appended journal records (every tick, and at stop).
  void FlushJournal();
  void MaybePruneEvidence(int64_t now);
  void MaybeCompact();
  void RegisterLoop();

  const AgentOptions options_;
  ResourceManager& rm_;
  BranchJournal& journal_;
  CoordinatorClient& coordinator_;
  PeerClient& peers_;
  AgentClock* const clock_;

  std::mutex mu_;
  std::map<BranchKey, BranchPtr> branches_;  // guarded by mu_
  // Tick() visits only these: every branch of branches_ not yet found finished for good.
  // A finished one moves to finished_, in the order found, with the time it finished,
  // and is forgotten from there after decided_retention_ms. So a tick costs the live
  // branches, not the (many) decided ones kept for retried calls.
  std::vector<BranchPtr> ticking_;                      // guarded by mu_
  std::deque<std::pair<int64_t, BranchPtr>> finished_;  // guarded by mu_
  std::map<BranchKey, int64_t> orphans_first_seen_;     // guarded by mu_
  int64_t last_reconcile_ms_ = 0;                       // guarded by mu_
  int64_t last_prune_ms_ = 0;                           // guarded by mu_
  bool compacting_ = false;                             // guarded by mu_

  // Journal appends hold it shared; compaction (Rewrite) holds it exclusively.
  std::shared_mutex journal_gate_;

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;  // guarded by bg_mu_
  bool stopping_ = false;          // guarded by bg_mu_
  std::thread tick_thread_;
  std::thread register_thread_;
  std::atomic<bool> registered_{false};
};

}  // namespace verdict::participant
