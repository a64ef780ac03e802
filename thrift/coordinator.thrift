// CoordinatorService: what clients (SDKs, verdictctl, participants) ask a coordinator
// node. Requests and responses are structs so fields can be added compatibly.

include "types.thrift"

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
}
