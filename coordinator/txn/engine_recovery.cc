// ProtocolEngine, leader change and everything answered from the log: adoption of decided
// transactions without END and of PRECOMMIT intents, presumed abort for gtids nobody
// drives (proposed and applied before anyone hears it), inquiries and operator resolve.
#include "common/panic.h"
#include "coordinator/txn/engine.h"

namespace verdict::coordinator::txn {

void ProtocolEngine::AdoptAll() {
  // DESIGN §3 "Leader change": resume phase two for every decided transaction without
  // END; re-send PRECOMMIT for every intent without decision (§4.4: never presume abort
  // for those); every other transaction of an earlier leader is unknown here and presumed
  // aborted when someone asks (ProposePresumedAbort).
  for (const auto& [gtid, rec] : table_.records()) {
    if (!rec.ended) Adopt(gtid, rec);
  }
}

ActiveTxn* ProtocolEngine::Adopt(const std::string& gtid, const TxnRecord& rec) {
  if (rec.ended || (rec.decision && rec.basis == DecideBasis::kLegacy)) return nullptr;
  ActiveTxn& t = txns_[gtid];
  std::vector<RequestToken> waiters = std::move(t.waiters);
  std::vector<RequestToken> inquirers = std::move(t.inquirers);
  t = ActiveTxn{};
  t.gtid = gtid;
  t.waiters = std::move(waiters);
  t.inquirers = std::move(inquirers);
  Gtid id;
  if (ParseGtid(gtid, &id)) t.id = id;
  // Not begun by this leadership (or begun, then handed to the log): never collects votes.
  t.own = false;
  t.protocol = rec.precommit ? Protocol::k3PC : Protocol::k2PC;
  t.begun_ms = now_;
  t.deadline_ms = now_ + config_.adopted_precommit_fence_ms;
  for (const BranchRef& ref : rec.participants) {
    if (ref.branch.empty()) continue;
    BranchSlot& s = t.branches[ref];
    s.ref = ref;
    // COMMIT and intent records list YES voters. A presumed (or heuristic) ABORT lists the
    // branches that MAY hold work, some perhaps read-only: their votes are unknown.
    const bool maybe_voters =
        rec.decision == Outcome::kAbort &&
        (rec.basis == DecideBasis::kPresumedAbort || rec.basis == DecideBasis::kHeuristic);
    s.vote = maybe_voters ? Vote::kNone : Vote::kYes;
  }
  ++stats_.adopted;
  if (rec.decision) {
    EnterDecided(t, *rec.decision);
  } else {
    VERDICT_CHECK(rec.precommit);
    t.phase = Phase::kProposingPrecommit;  // so that the applied intent is acted on:
    OnPrecommitApplied(t);                 // PRECOMMIT again, fencing after a while
  }
  return &t;
}

ActiveTxn& ProtocolEngine::NewUnknown(const std::string& gtid) {
  ActiveTxn& t = txns_[gtid];
  t = ActiveTxn{};
  t.gtid = gtid;
  Gtid id;
  if (ParseGtid(gtid, &id)) t.id = id;
  t.own = false;
  t.begun_ms = now_;
  t.deadline_ms = now_;
  return t;
}

void ProtocolEngine::ProposePresumedAbort(ActiveTxn& t) {
  // Rule (DESIGN §3, leader change): an "aborted" answer about a gtid no leader is driving
  // is itself proposed and applied as ABORT first, so that an older leader's COMMIT entry
  // can never win later. Only from states where nothing else was proposed by us.
  VERDICT_CHECK(t.phase == Phase::kActive || t.phase == Phase::kAbortedUnlogged);
  VERDICT_CHECK(!t.own || t.phase == Phase::kAbortedUnlogged);
  std::vector<BranchRef> may_hold_work;
  for (const auto& [ref, s] : t.branches) {
    if (s.vote == Vote::kNone || s.vote == Vote::kYes) may_hold_work.push_back(ref);
  }
  t.abort_basis = DecideBasis::kPresumedAbort;
  if (t.reason.empty()) t.reason = "presumed abort";
  ++stats_.presumed_abort_proposals;
  Propose(t, Phase::kProposingAbort,
          DecideCmd{
              t.gtid, Outcome::kAbort, DecideBasis::kPresumedAbort, std::move(may_hold_work), {}});
}

void ProtocolEngine::AnswerFromTable(std::string_view gtid, RequestToken token, bool inquiry,
                                     const BranchRef* asker) {
  std::string g(gtid);
  auto reply = [&](InquiryStatus is, ClientOutcome co, std::string reason) {
    if (inquiry) {
      out_.inquiry_replies.push_back({token, g, is});
    } else {
      ReplyClient(token, g, co, std::move(reason));
    }
  };
  if (g.empty()) {
    reply(InquiryStatus::kUnknown, ClientOutcome::kUnknown, "empty gtid");
    return;
  }
  // Outcomes this leadership established without the log. A client may hear an unlogged
  // abort (its normal path); an agent hears only COMMITs (one-phase, read-only) from here.
  auto recent = recent_.find(g);
  if (recent != recent_.end() && (!inquiry || recent->second.first == ClientOutcome::kCommitted)) {
    reply(InquiryStatus::kCommitted, recent->second.first, recent->second.second);
    return;
  }
  GtidLookup l = table_.Find(g);
  switch (l.state) {
    case GtidState::kDecided:
      if (*l.record->decision == Outcome::kCommit) {
        reply(InquiryStatus::kCommitted, ClientOutcome::kCommitted, "");
      } else {
        reply(InquiryStatus::kAborted, ClientOutcome::kAborted,
              std::string("decided ABORT (") + DecideBasisName(l.record->basis) + ")");
      }
      return;
    case GtidState::kEndedCommit:
      reply(InquiryStatus::kCommitted, ClientOutcome::kCommitted, "");
      return;
    case GtidState::kIntent: {
      // Normally adopted already; take it over now if not.
      ActiveTxn* t = Adopt(g, *l.record);
      if (t != nullptr && !inquiry) {
        t->waiters.push_back(token);
      } else {
        reply(InquiryStatus::kPrecommitIntent, ClientOutcome::kUnknown, "PRECOMMIT applied");
      }
      return;
    }
    case GtidState::kBeyondMemory: {
      // May be a forgotten COMMIT: presuming abort could contradict it. Never guess.
      ++stats_.hazards;
      out_.hazards.push_back({HazardKind::kForgottenGtid, g, asker ? *asker : BranchRef{},
                              "asked about a gtid below the table's memory horizon; "
                              "resolve by hand if a branch is still prepared"});
      reply(InquiryStatus::kUnknown, ClientOutcome::kUnknown, "gtid beyond the table's memory");
      return;
    }
    case GtidState::kUnknown:
      break;
  }
  Gtid id;
  if (ParseGtid(g, &id) && id.term > term_) {
    reply(InquiryStatus::kUnknown, ClientOutcome::kUnknown, "gtid from a later term");
    return;
  }
  // Unknown: begun by an earlier leader, or by us and finished without a log entry and
  // forgotten, or never begun.
  if (!inquiry) {
    // A client is told UNKNOWN, and nothing is logged: the transaction can no longer
    // commit through the log (no leader drives another leadership's gtid to commit), but a
    // single-branch one may already have committed by one-phase commit, and an empty one
    // was answered COMMITTED — neither left a log entry. Logging a presumed ABORT here
    // could contradict them. Prepared branches settle it through their inquiries below.
    reply(InquiryStatus::kUnknown, ClientOutcome::kUnknown,
          "not begun by this leader and no decision in the log: it cannot commit any more, "
          "but a single-branch transaction may have committed by one-phase commit; its "
          "prepared branches will be aborted when they inquire");
    return;
  }
  // An agent holding a prepared branch asks: presumed abort — through the log. (A prepared
  // branch means the transaction was not a one-phase commit.)
  ActiveTxn& t = NewUnknown(g);
  if (asker) AddAsker(t, *asker);
  t.inquirers.push_back(token);
  ProposePresumedAbort(t);
}

void ProtocolEngine::Resolve(RequestToken token, std::string_view gtid, Outcome outcome,
                             const HeuristicInfo& info) {
  auto refuse = [&](Status s) { out_.admin_replies.push_back({token, std::move(s)}); };
  if (!leader_) return refuse(Status::NotLeader("not the leader"));
  if (gtid.empty() || info.who.empty()) {
    return refuse(Status::InvalidArgument("gtid and who are required"));
  }
  std::string g(gtid);
  GtidLookup l = table_.Find(g);
  ActiveTxn* t = Find(g);
  if (l.state == GtidState::kDecided || l.state == GtidState::kEndedCommit) {
    return refuse(Status::FailedPrecondition("already decided"));
  }
  DecideCmd d{g, outcome, DecideBasis::kHeuristic, {}, info};
  if (l.state == GtidState::kIntent) {
    if (outcome == Outcome::kAbort) {
      // Some branch may be PRECOMMITTED and commit by itself: an abort here is exactly the
      // violation 3PC exists to prevent. The engine fences and aborts when it safely can.
      return refuse(Status::FailedPrecondition(
          "PRECOMMIT is applied: a branch may commit on its own; resolve --commit, or let "
          "the coordinator fence every branch"));
    }
    if (t == nullptr) t = Adopt(g, *l.record);
    if (t == nullptr || (t->phase != Phase::kPrecommitting && t->phase != Phase::kFencing)) {
      return refuse(Status::FailedPrecondition("a decision is being proposed; retry"));
    }
    d.participants = l.record->participants;
    t->resolvers.push_back(token);
    Propose(*t, Phase::kProposingCommit, d);
    return;
  }
  if (t != nullptr) {
    return refuse(Status::FailedPrecondition(std::string("the leader is driving it (") +
                                             PhaseName(t->phase) + "): use Commit or Abort"));
  }
  // Unknown, or beyond the table's memory: the operator takes the risk, and the record
  // says who, when and why, forever.
  ActiveTxn& n = NewUnknown(g);
  n.resolvers.push_back(token);
  n.abort_basis = DecideBasis::kHeuristic;
  Propose(n, outcome == Outcome::kCommit ? Phase::kProposingCommit : Phase::kProposingAbort, d);
}

}  // namespace verdict::coordinator::txn
