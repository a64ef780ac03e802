// ProtocolEngine, two-phase commit with presumed abort (DESIGN §3): prepare and votes, the
// decision, phase two with retries, END batching, unlogged aborts, one-phase commit, and
// the per-transaction timers.
#include <algorithm>

#include "common/panic.h"
#include "coordinator/txn/engine.h"

namespace verdict::coordinator::txn {

namespace {
std::string Who(const BranchRef& b) { return b.participant + "/" + b.branch; }
}  // namespace

void ProtocolEngine::StartCommit(ActiveTxn& t) {
  if (t.branches.empty()) {
    // Nothing was done anywhere: committed, with nothing to log or send.
    t.outcome = Outcome::kCommit;
    ReplyClients(t, ClientOutcome::kCommitted, "");
    Remember(t.gtid, ClientOutcome::kCommitted, "");
    ++stats_.committed;
    Erase(t);
    return;
  }
  ResetBackoff(t);
  if (t.branches.size() == 1) {
    // One participant: one-phase commit, no prepare round and no decision entry. The
    // participant decides; its reply is the outcome.
    t.phase = Phase::kOnePhase;
    ++stats_.one_phase;
  } else {
    t.phase = Phase::kPreparing;  // parallel PREPARE to every branch
    t.vote_deadline_ms = std::min(t.deadline_ms, now_ + config_.vote_timeout_ms);
  }
  PumpAll(t, /*force=*/true);
}

void ProtocolEngine::OnVote(ActiveTxn& t, BranchSlot& slot, Vote vote, const std::string& why) {
  // Rule (DESIGN §3.5): only the leadership that began a gtid collects its votes. Votes
  // reach OnVote only in kPreparing, which only StartCommit of an own transaction enters.
  VERDICT_CHECK(t.own && t.id && t.id->term == term_);
  if (slot.vote != Vote::kNone) return;  // duplicate: a branch's first vote is final
  slot.vote = vote;
  if (vote == Vote::kNo) {
    AbortUnlogged(t, Who(slot.ref) + " voted NO" + (why.empty() ? "" : ": " + why));
    return;
  }
  for (const auto& [ref, s] : t.branches) {
    if (s.vote == Vote::kNone) return;
  }
  AllVoted(t);
}

void ProtocolEngine::AllVoted(ActiveTxn& t) {
  std::vector<BranchRef> yes;
  for (const auto& [ref, s] : t.branches) {
    if (s.vote == Vote::kYes) yes.push_back(ref);
  }
  if (yes.empty()) {
    // Every branch voted READ_ONLY: they all finished; nothing to decide or send.
    t.outcome = Outcome::kCommit;
    ReplyClients(t, ClientOutcome::kCommitted, "");
    Remember(t.gtid, ClientOutcome::kCommitted, "");
    ++stats_.read_only;
    ++stats_.committed;
    Erase(t);
    return;
  }
  // Rule (presumed abort): a transaction this leader aborted without a log entry never
  // gets here — kAbortedUnlogged has no way back to kPreparing.
  VERDICT_CHECK(t.phase == Phase::kPreparing);
  if (t.protocol == Protocol::k3PC) {
    ProposePrecommit(t);
    return;
  }
  // 2PC: all YES -> COMMIT through the log; the client hears of it once it is applied.
  Propose(t, Phase::kProposingCommit,
          DecideCmd{t.gtid, Outcome::kCommit, DecideBasis::kVotes, std::move(yes), {}});
}

void ProtocolEngine::AbortUnlogged(ActiveTxn& t, const std::string& reason) {
  // Presumed abort without a log entry is allowed only before this leader proposed
  // anything for the gtid: after a proposal, that proposal may still be applied.
  VERDICT_CHECK(t.phase == Phase::kActive || t.phase == Phase::kPreparing);
  t.phase = Phase::kAbortedUnlogged;
  t.outcome = Outcome::kAbort;
  t.reason = reason;
  ++stats_.unlogged_aborts;
  ++stats_.aborted;
  // Every branch that may hold work hears ABORT: unvoted ones (a PREPARE may still land)
  // and YES voters. NO and READ_ONLY voters have already finished.
  for (auto& [ref, s] : t.branches) {
    s.target = s.vote == Vote::kNone || s.vote == Vote::kYes;
    s.done = false;
  }
  ReplyClients(t, ClientOutcome::kAborted, reason);
  ResetBackoff(t);
  PumpAll(t, /*force=*/true);
  MaybeFinished(t);
}

void ProtocolEngine::EnterDecided(ActiveTxn& t, Outcome outcome) {
  if (t.phase == Phase::kPhaseTwo || t.phase == Phase::kEnding) return;  // already
  GtidLookup l = table_.Find(t.gtid);
  // Acts on applied state only: the table holds this decision now (or remembers an ended
  // COMMIT).
  VERDICT_CHECK((l.state == GtidState::kDecided && *l.record->decision == outcome) ||
                (l.state == GtidState::kEndedCommit && outcome == Outcome::kCommit));
  t.outcome = outcome;
  t.phase = Phase::kPhaseTwo;
  (outcome == Outcome::kCommit ? stats_.committed : stats_.aborted)++;
  if (outcome == Outcome::kAbort && t.reason.empty() && l.record) {
    t.reason = std::string("decided ABORT (") + DecideBasisName(l.record->basis) + ")";
  }
  ReplyClients(t, outcome == Outcome::kCommit ? ClientOutcome::kCommitted : ClientOutcome::kAborted,
               outcome == Outcome::kCommit ? "" : t.reason);
  ReplyInquirers(t,
                 outcome == Outcome::kCommit ? InquiryStatus::kCommitted : InquiryStatus::kAborted);
  if (l.record == nullptr) {  // already ended: phase two is over
    Erase(t);
    return;
  }
  // Phase two reaches the branches the decision names; an ABORT also reaches every branch
  // of ours that may hold work (unvoted or YES).
  for (auto& [ref, s] : t.branches) {
    s.target = outcome == Outcome::kAbort && (s.vote == Vote::kNone || s.vote == Vote::kYes);
    s.done = false;
  }
  for (const BranchRef& ref : l.record->participants) {
    if (ref.branch.empty()) continue;  // legacy names: not addressable
    BranchSlot& s = t.branches[ref];
    s.ref = ref;
    s.target = true;
  }
  ResetBackoff(t);
  PumpAll(t, /*force=*/true);
  MaybeFinished(t);
}

void ProtocolEngine::OnPhaseTwoReply(ActiveTxn& t, BranchSlot& slot, const ParticipantReply& r) {
  if (!slot.target || slot.done) return;  // duplicate ack, or not ours to finish
  const bool commit = t.phase == Phase::kPhaseTwo && *t.outcome == Outcome::kCommit;
  if ((r.kind == MessageKind::kCommit) != commit) {
    ++stats_.stray_replies;
    return;
  }
  using PC = ParticipantCode;
  using BS = BranchStatus;
  if (commit) {
    if (r.code == PC::kOk || (r.code == PC::kWrongState && r.state == BS::kCommitted)) {
      slot.done = true;
    } else if (r.code == PC::kNotFound ||
               (r.code == PC::kWrongState && (r.state == BS::kNone || r.state == BS::kActive))) {
      // DESIGN §2.4: COMMIT to a branch that says it never existed (or never prepared).
      Hazard(HazardKind::kCommitUnknownBranch, t, slot.ref,
             "COMMIT answered " +
                 std::string(r.code == PC::kNotFound ? "NOT_FOUND" : "unprepared") + ": " +
                 r.message);
      slot.done = true;
    } else if (r.code == PC::kWrongState && r.state == BS::kAborted) {
      Hazard(HazardKind::kCommittedButAborted, t, slot.ref, "decision COMMIT, branch ABORTED");
      slot.done = true;
    }
  } else {
    if (r.code == PC::kOk || r.code == PC::kNotFound ||
        (r.code == PC::kWrongState && r.state == BS::kAborted)) {
      slot.done = true;  // unknown on abort is success (presumed abort)
    } else if (r.code == PC::kWrongState && r.state == BS::kCommitted) {
      // A branch whose vote we never saw and that is COMMITTED voted READ_ONLY (the vote
      // was lost): it wrote nothing, nothing is inconsistent. A YES voter is a hazard.
      if (slot.vote == Vote::kYes) {
        Hazard(HazardKind::kAbortedButCommitted, t, slot.ref, "decision ABORT, branch COMMITTED");
      } else {
        slot.vote = Vote::kReadOnly;
      }
      slot.done = true;
    }
  }
  // Anything else (UNAVAILABLE, ...): the message is re-sent with backoff.
  MaybeFinished(t);
}

void ProtocolEngine::OnOnePhaseReply(ActiveTxn& t, const ParticipantReply& r) {
  using PC = ParticipantCode;
  using BS = BranchStatus;
  std::optional<Outcome> o;
  if ((r.code == PC::kOk && r.state != BS::kAborted) ||
      (r.code == PC::kWrongState && r.state == BS::kCommitted)) {
    o = Outcome::kCommit;
  } else if (r.code == PC::kOk || r.code == PC::kNotFound || r.code == PC::kSqlError ||
             r.code == PC::kLockTimeout || r.code == PC::kInvalidArgument ||
             r.code == PC::kAlreadyExists ||
             (r.code == PC::kWrongState && (r.state == BS::kAborted || r.state == BS::kNone))) {
    o = Outcome::kAbort;
  }
  if (!o) return;  // UNAVAILABLE and the like: re-sent
  t.outcome = o;
  ClientOutcome co = *o == Outcome::kCommit ? ClientOutcome::kCommitted : ClientOutcome::kAborted;
  t.reason = *o == Outcome::kCommit ? "" : "one-phase commit failed: " + r.message;
  (*o == Outcome::kCommit ? stats_.committed : stats_.aborted)++;
  ReplyClients(t, co, t.reason);
  Remember(t.gtid, co, t.reason);
  Erase(t);
}

void ProtocolEngine::MaybeFinished(ActiveTxn& t) {
  if (t.phase != Phase::kPhaseTwo && t.phase != Phase::kAbortedUnlogged) return;
  for (const auto& [ref, s] : t.branches) {
    if (s.target && !s.done) return;
  }
  if (t.phase == Phase::kAbortedUnlogged) {
    Remember(t.gtid, ClientOutcome::kAborted, t.reason);  // nothing in the log to END
    Erase(t);
    return;
  }
  // Every target acknowledged: the table may forget it (END, batched and lazy).
  t.phase = Phase::kEnding;
  t.end_batched_ms = now_;
  if (end_batch_.empty()) end_batch_since_ = now_;
  end_batch_.push_back(t.gtid);
  if (end_batch_.size() >= config_.end_batch_max) FlushEnds(/*force=*/true);
}

void ProtocolEngine::FlushEnds(bool force) {
  if (end_batch_.empty()) return;
  if (!force && end_batch_.size() < config_.end_batch_max &&
      now_ - end_batch_since_ < config_.end_batch_delay_ms) {
    return;
  }
  for (size_t i = 0; i < end_batch_.size(); i += config_.end_batch_max) {
    size_t n = std::min(config_.end_batch_max, end_batch_.size() - i);
    EndCmd e;
    e.gtids.assign(end_batch_.begin() + i, end_batch_.begin() + i + n);
    out_.proposals.push_back(EncodeCommand(e));
    ++stats_.ends_proposed;
  }
  end_batch_.clear();
}

void ProtocolEngine::TickTxn(ActiveTxn& t) {
  switch (t.phase) {
    case Phase::kActive:
      if (t.own && now_ >= t.deadline_ms) AbortUnlogged(t, "deadline passed");
      return;
    case Phase::kPreparing:
      if (now_ >= t.deadline_ms) {
        AbortUnlogged(t, "deadline passed");
        return;
      }
      if (now_ >= t.vote_deadline_ms) {
        std::string missing;
        for (const auto& [ref, s] : t.branches) {
          if (s.vote == Vote::kNone) missing += (missing.empty() ? "" : ", ") + Who(ref);
        }
        AbortUnlogged(t, "vote timeout (" + missing + ")");
        return;
      }
      break;
    case Phase::kOnePhase:
      // The participant decides a one-phase commit; without its reply the outcome is
      // unknown. Past the deadline the client hears UNKNOWN; the engine keeps asking.
      if (now_ >= t.deadline_ms && !t.unknown_sent) {
        t.unknown_sent = true;
        ReplyClients(t, ClientOutcome::kUnknown, "no answer to the one-phase commit");
      }
      break;
    case Phase::kPrecommitting:
      if (now_ >= t.deadline_ms) {
        StartFencing(t, "deadline passed after PRECOMMIT");
        return;
      }
      break;
    case Phase::kProposingPrecommit:
    case Phase::kProposingCommit:
    case Phase::kProposingAbort:
      // A proposal is lost only with leadership, which the driver reports; re-proposing
      // anyway is harmless (first decision wins, a repeated intent is a no-op).
      if (now_ - t.proposed_ms >= config_.proposal_retry_ms) {
        out_.proposals.push_back(t.proposal);
        t.proposed_ms = now_;
      }
      return;
    case Phase::kEnding:
      if (now_ - t.end_batched_ms >= config_.proposal_retry_ms) {
        t.end_batched_ms = now_;
        if (end_batch_.empty()) end_batch_since_ = now_;
        end_batch_.push_back(t.gtid);
      }
      return;
    default:
      break;
  }
  PumpAll(t, /*force=*/false);
}

}  // namespace verdict::coordinator::txn
