// ProtocolEngine: the coordinator's commit protocols (2PC with presumed abort, one-phase,
// read-only, and the 3PC of DESIGN §4) as a deterministic, event-driven state machine with
// no I/O, no threads and no clock of its own. Not thread-safe: the driver serializes every
// call (one thread, or one mutex around the engine AND the TxnTable it reads).
//
// The driver owns Raft, the TxnTable, the sockets and the clock, and:
//   - calls OnLeadershipChanged() whenever this node's leadership or term changes (and
//     when Raft::Propose fails with NotLeader);
//   - calls Tick(now_ms) regularly (every few ms) with a monotonic clock;
//   - forwards client calls (Begin, RegisterBranch, Commit, Abort), agent calls (Inquire,
//     RegisterParticipant), operator calls (Resolve) and participant replies (OnReply);
//   - applies committed entries to the table and, right after each, calls
//     OnApplied(command, result) — on every node, leader or not;
//   - after each batch of calls drains TakeOutput(): proposes `proposals` in order, sends
//     `messages` (feeding the replies back), answers the tokens, reports `hazards` loudly.
// A single-threaded simulator does the same in one loop.
//
// The engine acts only on APPLIED state, never on what it proposed: a client hears
// COMMITTED, a participant hears PRECOMMIT or COMMIT, and an inquirer hears ABORTED only
// after the entry that makes it true was applied. The one answer given without the log is
// the presumed abort of DESIGN §3.5 (a transaction this leader itself gave up on before
// proposing anything: it never commits it later, and no later leader can), and the
// outcomes of one-phase and all-read-only commits, which the participants established.
//
// Begin and RegisterBranch are leader-volatile: no log entry on the normal path. A gtid
// carries the term of its leader; after a leader change its transaction is unknown to the
// new leader, which never collects its votes or drives it to commit, and presumes abort
// for it (an ABORT proposed and applied before it is told to anyone).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "coordinator/txn/engine_txn.h"
#include "coordinator/txn/engine_types.h"
#include "coordinator/txn/txn_table.h"

namespace verdict::coordinator::txn {

// A transaction as `verdictctl show` sees it on the leader.
struct TxnView {
  struct Branch {
    BranchRef ref;
    Vote vote = Vote::kNone;
    bool precommit_acked = false, fenced = false, target = false, done = false;
    uint32_t attempts = 0;
  };
  std::string gtid;
  Protocol protocol = Protocol::k2PC;
  std::string phase;  // PhaseName
  bool own = false;   // begun by this leadership (else adopted from the log or an inquiry)
  int64_t age_ms = 0;
  int64_t deadline_in_ms = 0;
  std::optional<Outcome> outcome;
  std::string reason;
  std::vector<Branch> branches;
};

struct EngineStats {
  uint64_t begun = 0, committed = 0, aborted = 0, one_phase = 0, read_only = 0;
  uint64_t unlogged_aborts = 0, presumed_abort_proposals = 0, adopted = 0;
  uint64_t messages = 0, resends = 0, stray_replies = 0, hazards = 0, ends_proposed = 0;
};

class ProtocolEngine {
 public:
  // `table` must outlive the engine; the driver applies to it (see above).
  ProtocolEngine(const EngineConfig& config, const TxnTable& table);
  ProtocolEngine(const ProtocolEngine&) = delete;
  ProtocolEngine& operator=(const ProtocolEngine&) = delete;
  ~ProtocolEngine();

  // ---- events ----

  // Leadership gained (is_leader, term) or lost. Losing it drops all volatile state
  // (waiting clients hear UNKNOWN, inquirers NOT_LEADER). Gaining it (or a new term)
  // adopts from the table every decided transaction without END (phase two resumes) and
  // every PRECOMMIT intent without decision (PRECOMMIT is re-sent; never presumed abort).
  void OnLeadershipChanged(bool is_leader, uint64_t term);

  // Advances the engine's clock (monotonic ms; a smaller value is ignored) and runs
  // deadlines, vote timeouts, resends with capped exponential backoff, proposal retries
  // and END batching.
  void Tick(int64_t now_ms);

  // Starts a transaction and returns its gtid ("<term>.<node>.<seq>"). deadline_ms <= 0
  // means the configured default. NotLeader on a follower.
  Status Begin(Protocol protocol, int64_t deadline_ms, std::string* gtid);

  // Adds a branch. Idempotent for the same (participant, branch). NotLeader; NotFound for a
  // gtid this leadership is not running or a participant that is not registered;
  // FailedPrecondition once Commit/Abort was requested or past the limit of branches.
  Status RegisterBranch(std::string_view gtid, const std::string& participant,
                        const std::string& branch, bool read_only_hint);

  // Client requests; each is answered exactly once by a ClientReply with `token`.
  void Commit(RequestToken token, std::string_view gtid);
  void Abort(RequestToken token, std::string_view gtid);

  // An agent asks about a gtid for its prepared branch `asker`; answered by an
  // InquiryReply with `token`.
  void Inquire(RequestToken token, std::string_view gtid, const BranchRef& asker);

  // Registry: proposes REGISTER_PARTICIPANT; AdminReply OK once applied.
  void RegisterParticipant(RequestToken token, const RegisterParticipantCmd& reg);

  // `verdictctl resolve`: proposes a heuristic DECIDE for a gtid with no applied decision
  // that this leader is not driving (unknown, beyond memory, or a PRECOMMIT intent — the
  // latter only --commit: some branch may be PRECOMMITTED and commit on its own).
  // AdminReply OK once applied as the decision; FailedPrecondition otherwise.
  void Resolve(RequestToken token, std::string_view gtid, Outcome outcome,
               const HeuristicInfo& info);

  // A participant's reply to a message the engine emitted. Unknown gtids or branches,
  // duplicates and replies that come too late are ignored (counted as stray).
  void OnReply(const ParticipantReply& reply);

  // The driver applied `cmd` to the table with `result` (every node, in log order).
  void OnApplied(const TxnCommand& cmd, const ApplyResult& result);

  // ---- output ----
  EngineOutput TakeOutput();
  bool HasOutput() const { return !out_.Empty(); }

  // ---- queries ----
  bool is_leader() const { return leader_; }
  uint64_t term() const { return term_; }
  int64_t now_ms() const { return now_; }
  std::optional<TxnView> Describe(std::string_view gtid) const;
  std::vector<TxnView> List() const;  // every transaction this leader holds
  const EngineStats& stats() const { return stats_; }

 private:
  // engine.cc: plumbing shared by the protocol files.
  ActiveTxn* Find(std::string_view gtid);
  BranchSlot* FindSlot(ActiveTxn& t, const std::string& participant, const std::string& branch);
  PeerBranch Peer(const BranchRef& ref) const;
  // Emits the message `t`'s phase owes `slot`, if any and (force or due); schedules the
  // next resend with capped exponential backoff.
  void Pump(ActiveTxn& t, BranchSlot& slot, bool force);
  void PumpAll(ActiveTxn& t, bool force);
  std::optional<MessageKind> Owed(const ActiveTxn& t, const BranchSlot& slot) const;
  void ResetBackoff(ActiveTxn& t);
  void Propose(ActiveTxn& t, Phase phase, const TxnCommand& cmd);
  void ReplyClients(ActiveTxn& t, ClientOutcome outcome, const std::string& reason);
  void ReplyClient(RequestToken token, std::string_view gtid, ClientOutcome outcome,
                   std::string reason);
  void ReplyInquirers(ActiveTxn& t, InquiryStatus status);
  void Hazard(HazardKind kind, const ActiveTxn& t, const BranchRef& b, std::string message);
  void Remember(const std::string& gtid, ClientOutcome outcome, const std::string& reason);
  void AddAsker(ActiveTxn& t, const BranchRef& asker);
  // Finished transactions are marked and dropped by Sweep() at the end of each event, so
  // that references stay valid while an event is handled.
  void Erase(ActiveTxn& t);
  void Sweep();
  void StepDown();

  // engine_2pc.cc: phase one, the 2PC decision, phase two, unlogged aborts, one-phase.
  void StartCommit(ActiveTxn& t);
  void OnVote(ActiveTxn& t, BranchSlot& slot, Vote vote, const std::string& why);
  void AllVoted(ActiveTxn& t);
  void AbortUnlogged(ActiveTxn& t, const std::string& reason);
  void EnterDecided(ActiveTxn& t, Outcome outcome);
  void OnPhaseTwoReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r);
  void OnOnePhaseReply(ActiveTxn& t, const ParticipantReply& r);
  void MaybeFinished(ActiveTxn& t);
  void TickTxn(ActiveTxn& t);

  // engine_3pc.cc: PRECOMMIT intent, precommit round, fencing.
  void ProposePrecommit(ActiveTxn& t);
  void OnPrecommitApplied(ActiveTxn& t);
  void OnPrecommitReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r);
  void OnFenceReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r);
  void StartFencing(ActiveTxn& t, const std::string& why);
  void ProposeCommitFromPrecommit(ActiveTxn& t);
  void ProposeFencedAbort(ActiveTxn& t, const std::string& why);

  // engine_recovery.cc: adoption from the log, unknown gtids, inquiries, resolve.
  void AdoptAll();
  // Takes over a transaction the table knows (decided without END, or a PRECOMMIT intent),
  // creating its volatile state or resetting it (waiting clients are kept). nullptr for
  // records the engine does not drive (legacy Decide RPC records, ended ones).
  ActiveTxn* Adopt(const std::string& gtid, const TxnRecord& rec);
  // An ABORT answer for a gtid nobody drives: propose it first (DESIGN §3).
  void ProposePresumedAbort(ActiveTxn& t);
  ActiveTxn& NewUnknown(const std::string& gtid);
  void AnswerFromTable(std::string_view gtid, RequestToken token, bool inquiry,
                       const BranchRef* asker);
  void FlushEnds(bool force);

  const EngineConfig config_;
  const TxnTable& table_;

  bool leader_ = false;
  uint64_t term_ = 0;
  uint64_t next_seq_ = 1;  // of this leadership's gtids
  // The term next_seq_ counts in. Leadership may be lost and regained within one term (a
  // Propose refused during a leader transfer that then times out): the sequence must go
  // on, or a gtid would be handed out twice.
  uint64_t seq_term_ = 0;
  int64_t now_ = 0;

  std::map<std::string, ActiveTxn, std::less<>> txns_;
  std::vector<std::string> doomed_;  // marked by Erase(), dropped by Sweep()
  // Outcomes of this leadership's transactions that ended without a log entry (unlogged
  // abort, one-phase, read-only, empty), for repeated Commit/Abort calls. Bounded FIFO.
  std::map<std::string, std::pair<ClientOutcome, std::string>, std::less<>> recent_;
  std::deque<std::string> recent_order_;
  // Registrations waiting to be applied: name -> (tokens, proposal, proposed at).
  struct PendingRegistration {
    std::vector<RequestToken> tokens;
    std::string proposal;
    int64_t proposed_ms = 0;
  };
  std::map<std::string, PendingRegistration> registrations_;
  std::vector<std::string> end_batch_;  // gtids awaiting an END proposal
  int64_t end_batch_since_ = 0;

  EngineOutput out_;
  EngineStats stats_;
};

}  // namespace verdict::coordinator::txn
