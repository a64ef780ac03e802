#include "participant/branch_state_machine.h"

namespace verdict::participant {

const char* BranchStateName(BranchState s) {
  switch (s) {
    case BranchState::kActive:
      return "ACTIVE";
    case BranchState::kPrepared:
      return "PREPARED";
    case BranchState::kPrecommitted:
      return "PRECOMMITTED";
    case BranchState::kFenced:
      return "FENCED";
    case BranchState::kCommitted:
      return "COMMITTED";
    case BranchState::kAborted:
      return "ABORTED";
    case BranchState::kNone:
      return "NONE";
    case BranchState::kReadOnly:
      return "READ_ONLY";
    case BranchState::kOutcomeUnknown:
      return "OUTCOME_UNKNOWN";
  }
  return "?";
}

const char* BranchCallName(BranchCall c) {
  switch (c) {
    case BranchCall::kOpen:
      return "OPEN";
    case BranchCall::kExecute:
      return "EXECUTE";
    case BranchCall::kPrepare:
      return "PREPARE";
    case BranchCall::kPrecommit:
      return "PRECOMMIT";
    case BranchCall::kFence:
      return "FENCE";
    case BranchCall::kCommit:
      return "COMMIT";
    case BranchCall::kCommitOnePhase:
      return "COMMIT_ONE_PHASE";
    case BranchCall::kAbort:
      return "ABORT";
  }
  return "?";
}

const char* ReplyCodeName(ReplyCode c) {
  switch (c) {
    case ReplyCode::kOk:
      return "OK";
    case ReplyCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case ReplyCode::kNotFound:
      return "NOT_FOUND";
    case ReplyCode::kWrongState:
      return "WRONG_STATE";
    case ReplyCode::kSqlError:
      return "SQL_ERROR";
    case ReplyCode::kLockTimeout:
      return "LOCK_TIMEOUT";
    case ReplyCode::kFenced:
      return "FENCED";
    case ReplyCode::kPrecommitted:
      return "PRECOMMITTED";
    case ReplyCode::kUnavailable:
      return "UNAVAILABLE";
    case ReplyCode::kAlreadyExists:
      return "ALREADY_EXISTS";
  }
  return "?";
}

namespace {

using S = BranchState;
using C = BranchCall;

CallStep OnNone(C call) {
  switch (call) {
    case C::kOpen:
      return CallStep::Proceed(S::kActive, false);
    case C::kAbort:
      // Presumed abort: OK. The agent journals an ABORTED tombstone so that the branch can
      // never be opened and voted YES later (a terminating peer relies on this).
      return CallStep::Proceed(S::kAborted, true);
    default:
      // Execute/prepare of an unknown branch, and COMMIT of one (heuristic hazard).
      return CallStep::Refuse(ReplyCode::kNotFound);
  }
}

CallStep OnActive(C call) {
  switch (call) {
    case C::kOpen:
      return CallStep::Repeat();
    case C::kExecute:
      return CallStep::Proceed(S::kActive, false);
    case C::kPrepare:
      // The agent may instead end in ABORTED (NO) or READ_ONLY (journaled too).
      return CallStep::Proceed(S::kPrepared, true);
    case C::kCommitOnePhase:
      // The agent may instead end in ABORTED (the RM rolled back) or OUTCOME_UNKNOWN (the
      // RM could not tell: never reported as either outcome).
      return CallStep::Proceed(S::kCommitted, false);
    case C::kAbort:
      // Not voted: nothing durable to undo; a crash aborts it anyway.
      return CallStep::Proceed(S::kAborted, false);
    case C::kPrecommit:
    case C::kFence:
    case C::kCommit:  // commit before prepare
      return CallStep::Refuse(ReplyCode::kWrongState);
  }
  return CallStep::Refuse(ReplyCode::kWrongState);
}

// PREPARED, PRECOMMITTED, FENCED.
CallStep OnInDoubt(S current, Protocol protocol, C call) {
  const bool three = protocol == Protocol::k3PC;
  switch (call) {
    case C::kOpen:
      return CallStep::Refuse(ReplyCode::kAlreadyExists);
    case C::kExecute:
      return CallStep::Refuse(ReplyCode::kWrongState);
    case C::kPrepare:
      return CallStep::Repeat();  // voted YES already
    case C::kPrecommit:
      if (!three) return CallStep::Refuse(ReplyCode::kWrongState);
      if (current == S::kPrepared) return CallStep::Proceed(S::kPrecommitted, true);
      if (current == S::kPrecommitted) return CallStep::Repeat();
      return CallStep::Refuse(ReplyCode::kFenced);  // FENCED refuses PRECOMMIT
    case C::kFence:
      if (!three) return CallStep::Refuse(ReplyCode::kWrongState);
      if (current == S::kPrepared) return CallStep::Proceed(S::kFenced, true);
      if (current == S::kFenced) return CallStep::Repeat();
      return CallStep::Refuse(ReplyCode::kPrecommitted);  // PRECOMMITTED refuses FENCE
    case C::kCommit:
    case C::kCommitOnePhase:
      return CallStep::Proceed(S::kCommitted, true);
    case C::kAbort:
      return CallStep::Proceed(S::kAborted, true);
  }
  return CallStep::Refuse(ReplyCode::kWrongState);
}

CallStep OnCommitted(C call) {
  switch (call) {
    case C::kOpen:
      return CallStep::Refuse(ReplyCode::kAlreadyExists);
    case C::kPrepare:    // the YES vote is repeated
    case C::kPrecommit:  // a late PRECOMMIT: ack (DESIGN §4 model)
    case C::kCommit:
    case C::kCommitOnePhase:
      return CallStep::Repeat();
    case C::kExecute:
    case C::kFence:
    case C::kAbort:  // abort after commit: heuristic hazard, never applied
      return CallStep::Refuse(ReplyCode::kWrongState);
  }
  return CallStep::Refuse(ReplyCode::kWrongState);
}

CallStep OnAborted(C call) {
  switch (call) {
    case C::kOpen:
      return CallStep::Refuse(ReplyCode::kAlreadyExists);
    case C::kAbort:
      return CallStep::Repeat();
    default:
      // Execute after abort; prepare after abort (votes NO); precommit, fence and commit
      // of an aborted branch (the caller sees state ABORTED).
      return CallStep::Refuse(ReplyCode::kWrongState);
  }
}

// READ_ONLY: voted READ_ONLY and left the transaction without learning its outcome. It
// repeats its vote, accepts either decision without changing (it holds nothing to commit
// or roll back, and must not turn into evidence for a terminating peer), trivially keeps
// the FENCE promise, and never accepts PRECOMMIT: DESIGN §4's safety argument may then
// leave it out of "every branch FENCED".
CallStep OnReadOnly(C call) {
  switch (call) {
    case C::kOpen:
      return CallStep::Refuse(ReplyCode::kAlreadyExists);
    case C::kPrepare:  // the READ_ONLY vote is repeated
    case C::kFence:    // it can never become PRECOMMITTED: the promise holds already
    case C::kCommit:
    case C::kCommitOnePhase:
    case C::kAbort:
      return CallStep::Repeat();
    case C::kExecute:
    case C::kPrecommit:  // never: a PRECOMMIT ack would let the coordinator COMMIT
      return CallStep::Refuse(ReplyCode::kWrongState);
  }
  return CallStep::Refuse(ReplyCode::kWrongState);
}

// OUTCOME_UNKNOWN: a one-phase commit the RM could not confirm or deny. Everything but
// Open answers UNAVAILABLE (in doubt; ask again later); nothing changes.
CallStep OnOutcomeUnknown(C call) {
  if (call == C::kOpen) return CallStep::Refuse(ReplyCode::kAlreadyExists);
  return CallStep::Refuse(ReplyCode::kUnavailable);
}

}  // namespace

CallStep BranchStateMachine::OnCall(BranchState current, Protocol protocol, BranchCall call) {
  switch (current) {
    case S::kNone:
      return OnNone(call);
    case S::kActive:
      return OnActive(call);
    case S::kPrepared:
    case S::kPrecommitted:
    case S::kFenced:
      return OnInDoubt(current, protocol, call);
    case S::kCommitted:
      return OnCommitted(call);
    case S::kAborted:
      return OnAborted(call);
    case S::kReadOnly:
      return OnReadOnly(call);
    case S::kOutcomeUnknown:
      return OnOutcomeUnknown(call);
  }
  return CallStep::Refuse(ReplyCode::kWrongState);
}

TimeoutAction BranchStateMachine::OnTimeout(BranchState current, Protocol protocol) {
  switch (current) {
    case S::kActive:
      return TimeoutAction::kAbort;
    case S::kPrepared:
    case S::kFenced:
      return TimeoutAction::kInquire;
    case S::kPrecommitted:
      return protocol == Protocol::k3PC ? TimeoutAction::kCommit : TimeoutAction::kInquire;
    default:
      return TimeoutAction::kNone;
  }
}

TerminationStep BranchStateMachine::Terminate(
    Protocol protocol, BranchState self, const std::vector<std::optional<BranchState>>& peers) {
  using K = TerminationStep::Kind;
  const bool three = protocol == Protocol::k3PC;
  if (self != S::kPrepared && self != S::kFenced) return {K::kWait, 0};
  // A READ_ONLY peer left before the outcome: it is evidence of nothing (it is neither
  // COMMITTED nor ABORTED, and has voted, so it is never aborted as unvoted). Below it
  // only counts in the 3PC "all fenced" check, where it is skipped: it never accepts
  // PRECOMMIT (OnReadOnly), so it can never make a COMMIT possible.
  // Conclusive evidence first: a decision (or, 3PC, a precommit) anywhere.
  for (const auto& p : peers) {
    if (p == S::kCommitted || (three && p == S::kPrecommitted)) return {K::kCommit, 0};
  }
  for (const auto& p : peers) {
    if (p == S::kAborted) return {K::kAbort, 0};
  }
  // A peer that has not voted can be aborted; then everyone may abort.
  for (size_t i = 0; i < peers.size(); ++i) {
    if (peers[i] == S::kActive || peers[i] == S::kNone) return {K::kAbortPeer, i};
  }
  // 2PC: every reachable peer is prepared and uncertain: stay prepared (DESIGN §3).
  if (!three) return {K::kWait, 0};
  for (const auto& p : peers) {
    if (!p.has_value()) return {K::kWait, 0};  // an unreachable peer: stay and retry
  }
  bool all_fenced = self == S::kFenced;
  for (const auto& p : peers) {
    all_fenced = all_fenced && (p == S::kFenced || p == S::kReadOnly);
  }
  if (all_fenced) return {K::kAbort, 0};
  return {K::kFence, 0};
}

}  // namespace verdict::participant
