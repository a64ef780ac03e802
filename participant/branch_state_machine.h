// BranchStateMachine: the participant-side rules of DESIGN §3-§4 as pure functions, with no
// I/O, no clock and no threads: which call is allowed in which branch state, which state it
// leads to and whether that state must be journaled before the reply; what a timeout does;
// and what cooperative termination concludes from the peers' states. The agent
// (participant/agent.h) performs the I/O these functions ask for. Thread-safe (stateless).
//
// Invariants encoded here (and tested exhaustively in tests/unit/participant/):
//  - a branch never votes YES after it has aborted;
//  - PRECOMMITTED refuses FENCE; FENCED refuses PRECOMMIT; both (and PREPARED) obey
//    COMMIT and ABORT decisions;
//  - a PREPARED/FENCED branch never aborts on a timeout (only on a decision, or in 3PC once
//    every peer is FENCED);
//  - a PRECOMMITTED branch commits on timeout;
//  - a READ_ONLY branch is never evidence for either outcome in termination, never
//    accepts PRECOMMIT and never changes state;
//  - a one-phase commit whose outcome is unknown (OUTCOME_UNKNOWN) is never reported as
//    COMMITTED or ABORTED.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "participant/branch_journal.h"

namespace verdict::participant {

// The calls a branch receives (ParticipantService, minus the read-only status calls).
enum class BranchCall : uint8_t {
  kOpen,
  kExecute,
  kPrepare,
  kPrecommit,
  kFence,
  kCommit,          // a COMMIT decision (two-phase)
  kCommitOnePhase,  // single-participant commit of an ACTIVE branch
  kAbort,           // an ABORT decision or an abort before the vote
};
const char* BranchCallName(BranchCall c);

// The reply codes of the participant service (mirror of participant.thrift's
// ParticipantCode, so that this file needs no Thrift).
enum class ReplyCode : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kWrongState = 3,
  kSqlError = 4,
  kLockTimeout = 5,
  kFenced = 6,
  kPrecommitted = 7,
  kUnavailable = 8,
  kAlreadyExists = 9,
};
const char* ReplyCodeName(ReplyCode c);

// What to do with a call.
struct CallStep {
  enum class Kind : uint8_t {
    kProceed,  // perform the action; on success the branch is in `next`
    kRepeat,   // already done: reply OK with the current state, change nothing
    kRefuse,   // reply `code` with the current state, change nothing
  };
  Kind kind = Kind::kRefuse;
  BranchState next = BranchState::kNone;    // kProceed
  bool journal = false;                     // kProceed: `next` must be durable before the reply
  ReplyCode code = ReplyCode::kWrongState;  // kRefuse

  static CallStep Proceed(BranchState next, bool journal) {
    return {Kind::kProceed, next, journal, ReplyCode::kOk};
  }
  static CallStep Repeat() { return {Kind::kRepeat, BranchState::kNone, false, ReplyCode::kOk}; }
  static CallStep Refuse(ReplyCode code) {
    return {Kind::kRefuse, BranchState::kNone, false, code};
  }
};

// What a timeout does to a branch in a state.
enum class TimeoutAction : uint8_t {
  kNone,     // COMMITTED, ABORTED, READ_ONLY, OUTCOME_UNKNOWN, NONE: nothing
  kAbort,    // ACTIVE: abort (idle timeout or deadline); it then votes NO
  kInquire,  // PREPARED, FENCED: ask the coordinator, then peers; never abort alone
  kCommit,   // PRECOMMITTED (3PC): commit by itself
};

// What cooperative termination concludes (DESIGN §3 for 2PC, §4 for 3PC).
struct TerminationStep {
  enum class Kind : uint8_t {
    kCommit,     // a peer committed (or, 3PC, precommitted): commit, tell everyone
    kAbort,      // a peer aborted, or (3PC) self and every peer are FENCED: abort
    kAbortPeer,  // peer `peer` has not voted: abort it, then ask again
    kFence,      // 3PC: fence self (if PREPARED) and every PREPARED peer, then ask again
    kWait,       // stay prepared and retry later
  };
  Kind kind = Kind::kWait;
  size_t peer = 0;  // kAbortPeer: index into the peers vector
};

class BranchStateMachine {
 public:
  // `current` is kNone when the agent has no record of the branch. `protocol` is the
  // branch's protocol (ignored for kNone).
  static CallStep OnCall(BranchState current, Protocol protocol, BranchCall call);

  static TimeoutAction OnTimeout(BranchState current, Protocol protocol);

  // `self` is PREPARED or FENCED (else kWait). `peers` holds the OTHER branches' states:
  // std::nullopt when the peer could not be reached, kNone when it has no record.
  // READ_ONLY peers are evidence of nothing (and skipped by the 3PC "all fenced" check).
  static TerminationStep Terminate(Protocol protocol, BranchState self,
                                   const std::vector<std::optional<BranchState>>& peers);

  // True for PREPARED, PRECOMMITTED, FENCED: voted YES and undecided.
  static bool InDoubt(BranchState s) {
    return s == BranchState::kPrepared || s == BranchState::kPrecommitted ||
           s == BranchState::kFenced;
  }
  static bool Decided(BranchState s) {
    return s == BranchState::kCommitted || s == BranchState::kAborted;
  }
  // Decided, or READ_ONLY: finished here; kept for a retention period, then forgotten.
  static bool Finished(BranchState s) { return Decided(s) || s == BranchState::kReadOnly; }
};

}  // namespace verdict::participant
