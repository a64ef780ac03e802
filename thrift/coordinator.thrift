// CoordinatorService: what clients (SDKs, verdictctl, participants) ask a coordinator
// node. Requests and responses are structs so fields can be added compatibly.

include "types.thrift"
include "participant.thrift"

namespace cpp verdict.rpc
namespace py verdict_rpc.coordinator

struct DecideRequest {
  1: string gtid,                 // non-empty, at most 256 bytes
  2: types.Outcome outcome,
  3: list<string> participants,   // at most 1024 names of at most 256 bytes each
}

struct DecideResponse {
  1: types.ResultCode code,
  // code == OK: the decision the replicated log APPLIED for the gtid. The first decision
  // for a gtid wins: a later Decide with the other outcome returns the first one here.
  2: optional types.Outcome outcome,
  3: list<string> participants,   // code == OK: the participants recorded with it
  4: i64 log_index,               // code == OK: index of the entry that decided
  5: optional types.NodeAddress leader,  // code == NOT_LEADER: the leader, if known
  6: string message,              // human-readable detail when code != OK
}

// Up to 1024 decisions in one call, each handled exactly as a Decide of its own (they share
// Raft entries' fsyncs either way; batching saves the per-call network round trips).
struct DecideBatchRequest {
  1: list<DecideRequest> requests,
}

struct DecideBatchResponse {
  // OK: `responses` has one DecideResponse per request, in order, each with its own code.
  // INVALID_ARGUMENT: the batch itself is malformed (empty or too large); nothing was done.
  1: types.ResultCode code,
  2: list<DecideResponse> responses,
  3: string message,
}

// How fresh a read must be.
enum Consistency {
  // Linearizable: served by the leader after a Raft read-index round; a follower answers
  // NOT_LEADER with the leader's address.
  LINEARIZABLE = 0,
  // This node's applied state, whatever its role: may be stale, never wrong (an applied
  // decision never changes). For diagnostics and tests.
  LOCAL = 1,
}

struct GetDecisionRequest {
  1: string gtid,
  2: Consistency consistency = Consistency.LINEARIZABLE,
}

struct GetDecisionResponse {
  1: types.ResultCode code,       // OK, NOT_FOUND, NOT_LEADER, UNKNOWN, INVALID_ARGUMENT
  2: optional types.Outcome outcome,
  3: list<string> participants,
  4: i64 log_index,
  5: optional types.NodeAddress leader,
  6: string message,
}

enum Role {
  FOLLOWER = 0,
  PRE_CANDIDATE = 1,
  CANDIDATE = 2,
  LEADER = 3,
}

struct NodeStatus {
  1: i64 id,
  2: string address,
  3: Role role,
  4: i64 term,
  5: types.NodeAddress leader,    // id 0 = no known leader
  6: i64 commit_index,
  7: i64 applied_index,
  8: i64 last_index,
  9: i64 snapshot_index,
  10: list<types.NodeAddress> membership,
  11: i64 decisions,              // decisions in the register
}

// ---------------------------------------------------------------------------------------
// Global transactions (DESIGN §3-§4). Begin, RegisterBranch, Commit and Abort go to the
// leader; a follower answers NOT_LEADER with the leader's address.

struct BeginRequest {
  1: participant.Protocol protocol = participant.Protocol.TWO_PC,
  // Time the transaction may take until its decision; past it, it aborts. <= 0: the
  // coordinator's default (--default-deadline-ms); longer values are clamped.
  2: i64 deadline_ms = 0,
}

struct BeginResponse {
  1: types.ResultCode code,               // OK, NOT_LEADER, INVALID_ARGUMENT, UNAVAILABLE
  2: string gtid,                         // "<term>.<node>.<seq>": unique across leaders
  3: i64 deadline_ms,                     // the deadline in force (after clamping)
  4: optional types.NodeAddress leader,   // NOT_LEADER
  5: string message,
}

struct RegisterBranchRequest {
  1: string gtid,
  2: string participant,    // a registered participant name
  3: string branch,         // the branch name opened on that participant
  4: bool read_only = false,  // hint: the branch expects to write nothing
}

struct RegisterBranchResponse {
  // OK (idempotent), NOT_LEADER, NOT_FOUND (gtid not running on this leader, or the
  // participant is not registered), WRONG_STATE (Commit/Abort already requested, too many
  // branches), INVALID_ARGUMENT.
  1: types.ResultCode code,
  2: optional types.NodeAddress leader,
  3: string message,
}

struct TxnRequest {
  1: string gtid,
}

enum TxnOutcome {
  COMMITTED = 1,
  ABORTED = 2,
  // In doubt: the decision may or may not have been applied (leadership lost, timeout).
  // Ask again with GetTxn or repeat the call: both are idempotent.
  UNKNOWN = 3,
}

// Commit or Abort of a transaction.
struct TxnOutcomeResponse {
  1: types.ResultCode code,               // OK (then see outcome), NOT_LEADER, INVALID_ARGUMENT
  2: TxnOutcome outcome,
  3: string reason,                       // why ABORTED or UNKNOWN
  4: optional types.NodeAddress leader,
  5: string message,
}

// One branch as the leader's protocol engine sees it.
struct BranchDetail {
  1: string participant,
  2: string branch,
  3: string address,            // from the registry ("" if unregistered)
  4: string vote,               // "", "YES", "NO", "READ_ONLY"
  5: bool precommit_acked,      // 3PC
  6: bool fenced,               // 3PC
  7: bool acknowledged,         // phase two (or the precommit round) done for it
  8: i32 attempts,              // messages sent for the current phase
}

struct HeuristicDecision {
  1: string who,
  2: i64 when_unix_ms,
  3: string why,
}

struct TxnInfo {
  1: string gtid,
  2: participant.Protocol protocol,
  // The engine's phase on the leader ("active", "preparing", "deciding", "precommitting",
  // "committing", "aborting", ...), or "decided" / "intent" / "ended" for a transaction
  // known only from the replicated table, or "unknown".
  3: string phase,
  4: optional types.Outcome decision,     // the APPLIED decision, if any
  5: string basis,                        // why it was decided ("votes", "fenced", ...)
  6: i64 decision_index,                  // log index of the deciding entry (0: none)
  7: bool precommit_applied,              // 3PC intent in the log
  8: bool driven,                         // the leader's engine is driving it now
  9: i64 age_ms,                          // since Begin or adoption by this leader
  10: i64 deadline_in_ms,
  11: string reason,                      // why it aborted, if known
  12: list<BranchDetail> branches,
  13: optional HeuristicDecision heuristic,
  14: bool in_doubt,                      // a branch may be prepared without knowing the outcome
}

struct TxnInfoResponse {
  1: types.ResultCode code,               // OK, NOT_FOUND, NOT_LEADER, INVALID_ARGUMENT
  2: TxnInfo info,
  3: optional types.NodeAddress leader,
  4: string message,
}

struct ListTxnsRequest {
  1: bool in_doubt_only = false,
  2: i32 limit = 1000,
}

struct ListTxnsResponse {
  1: types.ResultCode code,
  2: list<TxnInfo> txns,
  3: bool truncated,
  4: optional types.NodeAddress leader,
  5: string message,
}

// `verdictctl resolve`: a heuristic decision for a transaction with no applied decision.
// Proposed through the log with who, when and why; visible forever after.
struct ResolveRequest {
  1: string gtid,
  2: types.Outcome outcome,
  3: string who,
  4: string why,
}

struct ResolveResponse {
  // OK once applied; WRONG_STATE if the transaction already has a decision (`decision`
  // says which), is being driven by the leader, or is a 3PC intent asked to abort.
  1: types.ResultCode code,
  2: optional types.Outcome decision,
  3: optional types.NodeAddress leader,
  4: string message,
}

// A heuristic hazard (DESIGN §2.4): e.g. COMMIT sent to a branch that says it never existed.
struct Hazard {
  1: string kind,
  2: string gtid,
  3: string participant,
  4: string branch,
  5: string message,
  6: i64 when_unix_ms,
  7: i64 node,                            // the coordinator node that saw it
}

struct ListHazardsResponse {
  1: types.ResultCode code,
  2: list<Hazard> hazards,                // this node's, most recent last (bounded)
  3: i64 total,                           // hazards seen by this node since it started
}

service CoordinatorService {
  // Records a decision for a transaction through the replicated log and returns the one
  // applied. Idempotent. NOT_LEADER on a follower; UNKNOWN if it was not applied in time.
  DecideResponse Decide(1: DecideRequest request),

  // Several Decides in one round trip.
  DecideBatchResponse DecideBatch(1: DecideBatchRequest request),

  // The decision recorded for a gtid (NOT_FOUND if none).
  GetDecisionResponse GetDecision(1: GetDecisionRequest request),

  // This node's view of the group. Never redirected: every node answers for itself.
  NodeStatus GetStatus(),

  // ---- global transactions ----
  BeginResponse Begin(1: BeginRequest request),
  RegisterBranchResponse RegisterBranch(1: RegisterBranchRequest request),
  // Answered once the decision is applied (COMMITTED / ABORTED), or UNKNOWN. Idempotent.
  TxnOutcomeResponse Commit(1: TxnRequest request),
  TxnOutcomeResponse Abort(1: TxnRequest request),
  // What the leader knows of a gtid: the applied record and, if it drives it, the engine's.
  TxnInfoResponse GetTxn(1: TxnRequest request),
  ListTxnsResponse ListTxns(1: ListTxnsRequest request),
  ResolveResponse Resolve(1: ResolveRequest request),
  // Never redirected: each node reports the hazards it saw.
  ListHazardsResponse ListHazards(),
}
