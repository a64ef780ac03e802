// ProtocolEngine, three-phase commit (DESIGN §4): the logged PRECOMMIT intent, the
// precommit round, COMMIT on the first acknowledgement, and ABORT after PRECOMMIT only with
// every branch fenced.
//
// Why it is safe (the rules below, each checked where the state changes): COMMIT needs a
// branch known to be PRECOMMITTED; a PRECOMMITTED branch can never be fenced; an ABORT
// after PRECOMMIT needs every branch fenced (by us), and a fenced branch can never become
// PRECOMMITTED. PRECOMMIT is sent only once its intent is applied, so a new leader always
// finds it in the log and never presumes abort for it (the table refuses such an abort).
#include "common/panic.h"
#include "coordinator/txn/engine.h"

namespace verdict::coordinator::txn {

namespace {
std::string Who(const BranchRef& b) { return b.participant + "/" + b.branch; }

std::vector<BranchRef> IntentBranches(const ActiveTxn& t) {
  std::vector<BranchRef> out;
  for (const auto& [ref, s] : t.branches) {
    if (s.vote == Vote::kYes) out.push_back(ref);
  }
  return out;
}
}  // namespace

void ProtocolEngine::ProposePrecommit(ActiveTxn& t) {
  // Only the leadership that collected the votes proposes the intent (DESIGN §3.5).
  VERDICT_CHECK(t.own && t.id && t.id->term == term_ && t.phase == Phase::kPreparing);
  Propose(t, Phase::kProposingPrecommit, PrecommitCmd{t.gtid, IntentBranches(t)});
}

void ProtocolEngine::OnPrecommitApplied(ActiveTxn& t) {
  // Rule (DESIGN §4.1): PRECOMMIT reaches a participant only after the intent is APPLIED.
  // kPrecommitting, the only phase that owes PRECOMMIT, is entered here and in Adopt(),
  // both from an applied record.
  t.phase = Phase::kPrecommitting;
  ResetBackoff(t);
  if (t.abort_requested || now_ >= t.deadline_ms) {
    StartFencing(t, t.abort_requested ? "aborted by the client" : "deadline passed");
    return;
  }
  PumpAll(t, /*force=*/true);
}

void ProtocolEngine::OnPrecommitReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r) {
  if (slot.vote != Vote::kYes) {
    ++stats_.stray_replies;  // not in the intent (e.g. a read-only branch)
    return;
  }
  using PC = ParticipantCode;
  using BS = BranchStatus;
  if (r.code == PC::kOk || (r.code == PC::kWrongState && r.state == BS::kCommitted)) {
    // The branch is PRECOMMITTED (or already committed): it can never be fenced, so
    // nobody can abort any more. First acknowledgement -> COMMIT (DESIGN §4.2).
    slot.precommit_acked = true;
    ProposeCommitFromPrecommit(t);
  } else if (r.code == PC::kFenced) {
    // Rule (DESIGN §4.3): FENCED is not a decision. It means a participant is terminating;
    // the engine joins in and fences every branch itself. The abort still needs every
    // branch to confirm OUR fence.
    StartFencing(t, Who(slot.ref) + " is fenced");
  } else if (r.code == PC::kWrongState && r.state == BS::kAborted) {
    // A branch in the intent aborted: termination only does that once every branch was
    // fenced (or on an applied ABORT), so no branch is or will be PRECOMMITTED.
    ProposeFencedAbort(t, Who(slot.ref) + " aborted by cooperative termination");
  }
  // Else (UNAVAILABLE, ...): PRECOMMIT is re-sent with backoff.
}

void ProtocolEngine::OnFenceReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r) {
  if (slot.vote != Vote::kYes) {
    ++stats_.stray_replies;
    return;
  }
  using PC = ParticipantCode;
  using BS = BranchStatus;
  if (r.code == PC::kOk) {
    slot.fenced = true;
    for (const auto& [ref, s] : t.branches) {
      if (s.vote == Vote::kYes && !s.fenced) return;
    }
    // Rule (DESIGN §4.3): ABORT after PRECOMMIT only once EVERY branch is fenced.
    ProposeFencedAbort(t, "every branch fenced");
  } else if (r.code == PC::kPrecommitted ||
             (r.code == PC::kWrongState && r.state == BS::kCommitted)) {
    slot.precommit_acked = true;  // a PRECOMMITTED branch refuses FENCE: commit
    ProposeCommitFromPrecommit(t);
  } else if (r.code == PC::kWrongState && r.state == BS::kAborted) {
    ProposeFencedAbort(t, Who(slot.ref) + " aborted by cooperative termination");
  }
}

void ProtocolEngine::StartFencing(ActiveTxn& t, const std::string& why) {
  if (t.phase != Phase::kPrecommitting) return;  // already fencing, or deciding
  t.phase = Phase::kFencing;
  if (t.reason.empty()) t.reason = why;
  ResetBackoff(t);
  PumpAll(t, /*force=*/true);
}

void ProtocolEngine::ProposeCommitFromPrecommit(ActiveTxn& t) {
  // Rule (DESIGN §4.2): COMMIT needs an applied intent and a branch known PRECOMMITTED.
  // This holds for an adopted transaction of an older term too: the log says so (§4.4).
  VERDICT_CHECK(t.phase == Phase::kPrecommitting || t.phase == Phase::kFencing);
  VERDICT_CHECK(table_.Find(t.gtid).state == GtidState::kIntent);
  Propose(t, Phase::kProposingCommit,
          DecideCmd{t.gtid, Outcome::kCommit, DecideBasis::kPrecommitAck, IntentBranches(t), {}});
}

void ProtocolEngine::ProposeFencedAbort(ActiveTxn& t, const std::string& why) {
  VERDICT_CHECK(t.phase == Phase::kPrecommitting || t.phase == Phase::kFencing);
  t.reason = why;
  t.abort_basis = DecideBasis::kFenced;
  Propose(t, Phase::kProposingAbort,
          DecideCmd{t.gtid, Outcome::kAbort, DecideBasis::kFenced, IntentBranches(t), {}});
}

}  // namespace verdict::coordinator::txn
