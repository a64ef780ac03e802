// ParticipantService: what a coordinator (phase one/two, 3PC), an SDK (branch work) and a
// peer agent (cooperative termination, DESIGN §3-§4) ask a verdict-participant agent.
// Served multiplexed under the name "Participant" (framed transport, binary protocol).
//
// Every call names (gtid, branch) and is idempotent: repeating it returns the same
// answer. An out-of-order call (execute after prepare, commit before prepare, prepare
// after abort, precommit on a fenced branch, ...) returns WRONG_STATE with the branch's
// current `state` and changes nothing.

include "types.thrift"

namespace cpp verdict.rpc
namespace py verdict_rpc.participant

// How a participant call ended.
enum ParticipantCode {
  OK = 0,
  // Malformed request (empty/oversized gtid or branch, bad parameter, unknown enum).
  INVALID_ARGUMENT = 1,
  // The agent has no record of this branch. For Abort this is never returned (presumed
  // abort: OK). For Commit it is a heuristic hazard the caller must raise loudly.
  NOT_FOUND = 2,
  // The call does not fit the branch's state; `state` says what it is. Nothing changed.
  WRONG_STATE = 3,
  // The statement failed (SQL error, constraint violation). The branch is now ABORTED and
  // votes NO; `message` carries the database's text.
  SQL_ERROR = 4,
  // A lock wait exceeded the branch's lock timeout. The branch is now ABORTED (votes NO).
  LOCK_TIMEOUT = 5,
  // PRECOMMIT refused: the branch is FENCED (termination under way). Not a decision.
  FENCED = 6,
  // FENCE refused: the branch is PRECOMMITTED.
  PRECOMMITTED = 7,
  // The agent cannot serve now (recovering, shutting down, journal or database I/O
  // error). Nothing was acknowledged; retry later.
  UNAVAILABLE = 8,
  // Open of a branch whose key is already used by a branch in another state.
  ALREADY_EXISTS = 9,
}

enum BranchState {
  ACTIVE = 0,        // open, has not voted
  PREPARED = 1,      // voted YES, uncertain, durable
  PRECOMMITTED = 2,  // 3PC: accepted PRECOMMIT (refuses FENCE), durable
  FENCED = 3,        // 3PC: promised to refuse PRECOMMIT, durable
  COMMITTED = 4,
  ABORTED = 5,
  NONE = 6,          // no record of the branch (unknown or forgotten)
  READ_ONLY = 7,     // voted READ_ONLY and left the transaction: evidence of neither outcome
  OUTCOME_UNKNOWN = 8,  // one-phase commit whose local outcome is unknown (in doubt)
}

enum Vote {
  YES = 1,
  NO = 2,
  READ_ONLY = 3,     // wrote nothing; leaves phase two (state becomes READ_ONLY)
}

enum Protocol {
  TWO_PC = 2,
  THREE_PC = 3,
}

enum SqlType {
  SQL_NULL = 0,
  INTEGER = 1,
  REAL = 2,
  TEXT = 3,
  BLOB = 4,
}

// One typed SQL value; the field matching `type` is set.
struct SqlValue {
  1: SqlType type,
  2: optional i64 integer,
  3: optional double real,
  4: optional binary bytes,   // TEXT (UTF-8) or BLOB
}

struct SqlRow {
  1: list<SqlValue> values,
}

// A branch of the same gtid on some participant: who to ask during termination.
struct PeerBranch {
  1: string name,       // participant name (--name)
  2: string address,    // HOST:PORT of its agent
  3: string branch,     // branch name on that participant
}

struct OpenBranchRequest {
  1: string gtid,                     // non-empty, <= 256 bytes, printable, no ':'
  2: string branch,                   // idem
  3: Protocol protocol = Protocol.TWO_PC,
  // Time left until the transaction's deadline; the branch aborts (and votes NO) when it
  // passes before PREPARE. 0 = agent default.
  4: i64 timeout_ms = 0,
  // Abort the branch if no call arrives for this long before PREPARE. 0 = agent default.
  5: i64 idle_timeout_ms = 0,
  // Bound on one statement's lock wait (then LOCK_TIMEOUT). 0 = agent default.
  6: i64 lock_timeout_ms = 0,
}

struct OpenBranchResponse {
  1: ParticipantCode code,
  2: BranchState state,
  3: string message,
}

// OpenBranchRequest's options, for opening a branch inside its first Execute.
struct OpenOptions {
  1: Protocol protocol = Protocol.TWO_PC,
  2: i64 timeout_ms = 0,
  3: i64 idle_timeout_ms = 0,
  4: i64 lock_timeout_ms = 0,
}

struct ExecuteRequest {
  1: string gtid,
  2: string branch,
  3: string sql,                      // one statement, `?` placeholders
  4: list<SqlValue> params,
  // 1-based statement number within the branch. A repeat of the last executed seq returns
  // the same result without running it again; seq > last+1 is INVALID_ARGUMENT. 0 = no
  // deduplication (always runs).
  5: i64 seq = 0,
  // Set on a branch's first statement: the branch is opened first, as OpenBranch with
  // these options would, so opening costs no round trip of its own. A branch that exists
  // already is left as it is (the statement's own answer follows, e.g. WRONG_STATE after
  // PREPARE); other refusals of the open (INVALID_ARGUMENT, UNAVAILABLE) are the answer.
  6: optional OpenOptions open,
}

struct ExecuteResponse {
  1: ParticipantCode code,
  2: list<string> columns,
  3: list<SqlRow> rows,
  4: i64 rows_affected,
  5: BranchState state,
  6: string message,
}

struct PrepareRequest {
  1: string gtid,
  2: string branch,
  3: list<PeerBranch> participants,   // every branch of the gtid, this one included
}

struct PrepareResponse {
  1: ParticipantCode code,            // OK, or WRONG_STATE (then vote NO unless already
                                      // prepared), UNAVAILABLE, INVALID_ARGUMENT
  2: Vote vote,
  3: BranchState state,
  4: string message,                  // the reason for a NO
}

struct BranchRequest {
  1: string gtid,
  2: string branch,
}

struct FenceRequest {
  1: string gtid,
  2: string branch,
  3: string fencer,                   // who asks (participant name or "coordinator")
}

struct CommitRequest {
  1: string gtid,
  2: string branch,
  // Single-participant transaction: commit an ACTIVE branch with no prepare and no
  // journal record. Ignored when the branch is already prepared or committed.
  3: bool one_phase = false,
}

// Reply of Precommit, Fence, Commit, Abort.
struct BranchResponse {
  1: ParticipantCode code,
  2: BranchState state,
  3: string message,
}

struct BranchInfo {
  1: string gtid,
  2: string branch,
  3: BranchState state,
  4: Protocol protocol,
  5: list<PeerBranch> participants,
  6: i64 age_ms,                      // since the last state change
}

struct BranchStatusResponse {
  // OK; NOT_FOUND (state NONE: no record and no commit marker in the database — a
  // forgotten COMMITTED branch is answered OK/COMMITTED from its marker); UNAVAILABLE (no
  // record and the database could not be asked: NOT an answer, ask again).
  1: ParticipantCode code,
  2: BranchInfo info,
  3: string message,
}

struct ListInDoubtResponse {
  1: ParticipantCode code,
  // Branches whose outcome is not known here: PREPARED, PRECOMMITTED, FENCED (voted YES,
  // undecided) and OUTCOME_UNKNOWN (a one-phase commit whose local outcome is unknown).
  2: list<BranchInfo> branches,
}

service ParticipantService {
  OpenBranchResponse OpenBranch(1: OpenBranchRequest request),
  ExecuteResponse Execute(1: ExecuteRequest request),
  // Votes. YES only after the branch is durable (journal fdatasync'd).
  PrepareResponse Prepare(1: PrepareRequest request),
  // 3PC: PREPARED -> PRECOMMITTED (durable before OK). FENCED answers code FENCED.
  BranchResponse Precommit(1: BranchRequest request),
  // 3PC: PREPARED -> FENCED (durable before OK). PRECOMMITTED answers code PRECOMMITTED.
  BranchResponse Fence(1: FenceRequest request),
  // The decision COMMIT (or a one-phase commit). Idempotent: a branch the agent has
  // forgotten is answered OK/COMMITTED from its commit marker in the database; without a
  // record and a marker (or for a prepared branch rolled back outside Verdict, e.g. a
  // manual ROLLBACK PREPARED) the answer is NOT_FOUND, a heuristic hazard.
  BranchResponse Commit(1: CommitRequest request),
  // The decision ABORT, or an abort before the vote. Unknown branch: OK (presumed abort),
  // unless its commit marker shows it committed (WRONG_STATE, COMMITTED: a hazard).
  BranchResponse Abort(1: BranchRequest request),
  // Cooperative termination (a peer asks): aborts the branch only if it has not voted
  // (ACTIVE, or no record and no commit marker in the database: an ABORTED tombstone is
  // journaled so it can never vote YES); otherwise WRONG_STATE with its state (COMMITTED
  // for a forgotten branch whose marker exists), nothing changed. OK if already ABORTED.
  // UNAVAILABLE if there is no record and the database cannot be asked.
  BranchResponse AbortIfUnvoted(1: BranchRequest request),
  BranchStatusResponse GetBranchStatus(1: BranchRequest request),
  ListInDoubtResponse ListInDoubt(),
}

// ---------------------------------------------------------------------------------------
// ParticipantRegistryService: what a participant agent asks the coordinator group. Every
// coordinator node serves it multiplexed under the name "Registry" (followers answer
// NOT_LEADER with a leader hint). Implemented by the coordinator (issue 4); the agent's
// client is participant/coordinator_client.h. Kept in this file so the IDL is compiled by
// one verdict_thrift_idl() call.

struct RegisterParticipantRequest {
  1: string name,        // unique participant name (--name)
  2: string address,     // HOST:PORT where its ParticipantService listens
  3: string backend,     // "sqlite" or "postgres"
}

struct RegisterParticipantResponse {
  1: types.ResultCode code,               // OK once the mapping is applied in the log
  2: optional types.NodeAddress leader,   // NOT_LEADER: the leader, if known
  3: string message,
}

// The coordinator's view of a transaction for an inquiring participant.
enum TxnStatus {
  COMMITTED = 1,
  // Decided ABORT, or unknown: the coordinator proposes and applies ABORT for an unknown
  // gtid before answering this (DESIGN §3), so the answer is final.
  ABORTED = 2,
  // Undecided and still in its voting phase: keep waiting.
  IN_PROGRESS = 3,
  // 3PC: PRECOMMIT applied, no decision yet; the coordinator is resending PRECOMMIT.
  PRECOMMIT_INTENT = 4,
}

struct InquireRequest {
  1: string gtid,
  2: string participant,  // who asks
  3: string branch,
}

struct InquireResponse {
  1: types.ResultCode code,               // OK, NOT_LEADER, UNKNOWN, UNAVAILABLE
  2: TxnStatus status,                    // code == OK
  3: optional types.NodeAddress leader,
  4: string message,
}

struct ParticipantEntry {
  1: string name,
  2: string address,
  3: string backend,
}

struct ListParticipantsResponse {
  1: types.ResultCode code,
  2: list<ParticipantEntry> participants,
  3: optional types.NodeAddress leader,
}

service ParticipantRegistryService {
  // Records name -> address through the replicated log (idempotent; a new address for a
  // known name replaces the old one).
  RegisterParticipantResponse RegisterParticipant(1: RegisterParticipantRequest request),
  // The outcome of a gtid, for a participant holding a prepared branch.
  InquireResponse Inquire(1: InquireRequest request),
  ListParticipantsResponse ListParticipants(),
}
