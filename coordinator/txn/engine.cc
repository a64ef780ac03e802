// ProtocolEngine: construction, leadership, the clock, client/agent entry points, reply and
// apply dispatch, and the plumbing the protocol files share (engine_2pc.cc, engine_3pc.cc,
// engine_recovery.cc).
#include "coordinator/txn/engine.h"

#include <algorithm>

#include "common/panic.h"

namespace verdict::coordinator::txn {

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kActive:
      return "ACTIVE";
    case Phase::kPreparing:
      return "PREPARING";
    case Phase::kOnePhase:
      return "ONE_PHASE";
    case Phase::kProposingPrecommit:
      return "PROPOSING_PRECOMMIT";
    case Phase::kPrecommitting:
      return "PRECOMMITTING";
    case Phase::kFencing:
      return "FENCING";
    case Phase::kProposingCommit:
      return "PROPOSING_COMMIT";
    case Phase::kProposingAbort:
      return "PROPOSING_ABORT";
    case Phase::kPhaseTwo:
      return "PHASE_TWO";
    case Phase::kEnding:
      return "ENDING";
    case Phase::kAbortedUnlogged:
      return "ABORTED_UNLOGGED";
  }
  return "?";
}

const char* MessageKindName(MessageKind k) {
  switch (k) {
    case MessageKind::kPrepare:
      return "PREPARE";
    case MessageKind::kPrecommit:
      return "PRECOMMIT";
    case MessageKind::kFence:
      return "FENCE";
    case MessageKind::kCommit:
      return "COMMIT";
    case MessageKind::kCommitOnePhase:
      return "COMMIT_ONE_PHASE";
    case MessageKind::kAbort:
      return "ABORT";
  }
  return "?";
}

const char* VoteName(Vote v) {
  switch (v) {
    case Vote::kNone:
      return "NONE";
    case Vote::kYes:
      return "YES";
    case Vote::kNo:
      return "NO";
    case Vote::kReadOnly:
      return "READ_ONLY";
  }
  return "?";
}

const char* ClientOutcomeName(ClientOutcome o) {
  switch (o) {
    case ClientOutcome::kCommitted:
      return "COMMITTED";
    case ClientOutcome::kAborted:
      return "ABORTED";
    case ClientOutcome::kUnknown:
      return "UNKNOWN";
    case ClientOutcome::kNotLeader:
      return "NOT_LEADER";
  }
  return "?";
}

const char* InquiryStatusName(InquiryStatus s) {
  switch (s) {
    case InquiryStatus::kCommitted:
      return "COMMITTED";
    case InquiryStatus::kAborted:
      return "ABORTED";
    case InquiryStatus::kInProgress:
      return "IN_PROGRESS";
    case InquiryStatus::kPrecommitIntent:
      return "PRECOMMIT_INTENT";
    case InquiryStatus::kUnknown:
      return "UNKNOWN";
    case InquiryStatus::kNotLeader:
      return "NOT_LEADER";
  }
  return "?";
}

const char* HazardKindName(HazardKind k) {
  switch (k) {
    case HazardKind::kCommitUnknownBranch:
      return "commit-unknown-branch";
    case HazardKind::kCommittedButAborted:
      return "committed-but-branch-aborted";
    case HazardKind::kAbortedButCommitted:
      return "aborted-but-branch-committed";
    case HazardKind::kForgottenGtid:
      return "forgotten-gtid";
  }
  return "?";
}

ProtocolEngine::ProtocolEngine(const EngineConfig& config, const TxnTable& table)
    : config_(config), table_(table) {
  if (config_.node_id == 0) VERDICT_PANIC("ProtocolEngine: node_id must be >= 1");
  if (config_.retry_initial_ms <= 0 || config_.retry_max_ms < config_.retry_initial_ms) {
    VERDICT_PANIC("ProtocolEngine: bad retry backoff configuration");
  }
}

ProtocolEngine::~ProtocolEngine() = default;

// ---------------------------------------------------------------------------------------
// Leadership and time.

void ProtocolEngine::OnLeadershipChanged(bool is_leader, uint64_t term) {
  if (!is_leader) {
    if (leader_) StepDown();
    term_ = std::max(term_, term);
    return;
  }
  if (leader_ && term == term_) return;
  if (leader_) StepDown();
  leader_ = true;
  term_ = term;
  if (term != seq_term_) {  // (term, node) is new: gtids stay unique
    seq_term_ = term;
    next_seq_ = 1;
  }
  AdoptAll();
  Sweep();
}

void ProtocolEngine::StepDown() {
  for (auto& [gtid, t] : txns_) {
    // A proposal may still be applied by the next leader: the outcome is unknown here.
    ReplyClients(t, ClientOutcome::kUnknown, "leadership lost; ask the new leader");
    for (RequestToken tok : t.inquirers) {
      out_.inquiry_replies.push_back({tok, gtid, InquiryStatus::kNotLeader});
    }
    for (RequestToken tok : t.resolvers) {
      out_.admin_replies.push_back({tok, Status::NotLeader("leadership lost")});
    }
  }
  for (auto& [name, reg] : registrations_) {
    for (RequestToken tok : reg.tokens) {
      out_.admin_replies.push_back({tok, Status::NotLeader("leadership lost")});
    }
  }
  txns_.clear();
  doomed_.clear();
  registrations_.clear();
  end_batch_.clear();
  leader_ = false;
}

void ProtocolEngine::Tick(int64_t now_ms) {
  now_ = std::max(now_, now_ms);
  if (!leader_) return;
  for (auto& [gtid, t] : txns_) {
    if (!t.erase) TickTxn(t);
  }
  for (auto& [name, reg] : registrations_) {
    if (now_ - reg.proposed_ms >= config_.proposal_retry_ms) {
      out_.proposals.push_back(reg.proposal);
      reg.proposed_ms = now_;
    }
  }
  FlushEnds(false);
  Sweep();
}

// ---------------------------------------------------------------------------------------
// Client and agent entry points.

Status ProtocolEngine::Begin(Protocol protocol, int64_t deadline_ms, std::string* gtid) {
  if (!leader_) return Status::NotLeader("not the leader");
  if (protocol != Protocol::k2PC && protocol != Protocol::k3PC) {
    return Status::InvalidArgument("unknown protocol");
  }
  if (deadline_ms <= 0) deadline_ms = config_.default_deadline_ms;
  deadline_ms = std::min(deadline_ms, config_.max_deadline_ms);
  *gtid = FormatGtid({term_, config_.node_id, next_seq_++});
  ActiveTxn& t = txns_[*gtid];
  t.gtid = *gtid;
  t.id = Gtid{term_, config_.node_id, next_seq_ - 1};
  t.protocol = protocol;
  t.own = true;
  t.begun_ms = now_;
  t.deadline_ms = now_ + deadline_ms;
  ++stats_.begun;
  return Status::OK();
}

Status ProtocolEngine::RegisterBranch(std::string_view gtid, const std::string& participant,
                                      const std::string& branch, bool read_only_hint) {
  if (!leader_) return Status::NotLeader("not the leader");
  if (participant.empty() || branch.empty()) {
    return Status::InvalidArgument("participant and branch must be non-empty");
  }
  ActiveTxn* t = Find(gtid);
  // Branches join only transactions this leadership began: an older leader's gtid is
  // unknown here (presumed abort), and joining it could resurrect it.
  if (t == nullptr || !t->own) {
    return Status::NotFound("unknown transaction " + std::string(gtid) +
                            " (finished, aborted, or begun by an earlier leader)");
  }
  if (t->phase != Phase::kActive) {
    return Status::FailedPrecondition("commit or abort already requested");
  }
  if (table_.FindParticipant(participant) == nullptr) {
    return Status::NotFound("participant " + participant + " is not registered");
  }
  BranchRef ref{participant, branch};
  if (t->branches.count(ref)) return Status::OK();
  if (t->branches.size() >= config_.max_branches) {
    return Status::FailedPrecondition("too many branches");
  }
  BranchSlot& slot = t->branches[ref];
  slot.ref = ref;
  slot.read_only_hint = read_only_hint;
  return Status::OK();
}

void ProtocolEngine::Commit(RequestToken token, std::string_view gtid) {
  if (!leader_) {
    ReplyClient(token, gtid, ClientOutcome::kNotLeader, "not the leader");
    return;
  }
  ActiveTxn* t = Find(gtid);
  if (t == nullptr) {
    AnswerFromTable(gtid, token, /*inquiry=*/false, nullptr);
  } else if (t->phase == Phase::kActive && t->own) {
    t->waiters.push_back(token);
    if (now_ >= t->deadline_ms) {
      AbortUnlogged(*t, "deadline passed");
    } else {
      StartCommit(*t);
    }
  } else if (t->outcome && (t->phase == Phase::kPhaseTwo || t->phase == Phase::kEnding ||
                            t->phase == Phase::kAbortedUnlogged)) {
    ReplyClient(
        token, gtid,
        *t->outcome == Outcome::kCommit ? ClientOutcome::kCommitted : ClientOutcome::kAborted,
        t->reason);
  } else {
    t->waiters.push_back(token);
  }
  Sweep();
}

void ProtocolEngine::Abort(RequestToken token, std::string_view gtid) {
  if (!leader_) {
    ReplyClient(token, gtid, ClientOutcome::kNotLeader, "not the leader");
    return;
  }
  ActiveTxn* t = Find(gtid);
  if (t == nullptr) {
    AnswerFromTable(gtid, token, /*inquiry=*/false, nullptr);
    Sweep();
    return;
  }
  switch (t->phase) {
    case Phase::kActive:
    case Phase::kPreparing:
      // Nothing proposed yet: the presumed abort needs no log entry.
      t->waiters.push_back(token);
      if (t->own) {
        AbortUnlogged(*t, "aborted by the client");
      }
      break;
    case Phase::kPrecommitting:
      // PRECOMMIT is applied: abort only by fencing every branch (DESIGN §4.3).
      t->waiters.push_back(token);
      StartFencing(*t, "aborted by the client");
      break;
    case Phase::kProposingPrecommit:
      t->waiters.push_back(token);
      t->abort_requested = true;  // fence once the intent is applied
      break;
    case Phase::kPhaseTwo:
    case Phase::kEnding:
    case Phase::kAbortedUnlogged:
      ReplyClient(
          token, gtid,
          *t->outcome == Outcome::kCommit ? ClientOutcome::kCommitted : ClientOutcome::kAborted,
          *t->outcome == Outcome::kCommit ? "already committed" : t->reason);
      break;
    default:  // a decision or a one-phase commit is under way: answer with its outcome
      t->waiters.push_back(token);
      break;
  }
  Sweep();
}

void ProtocolEngine::Inquire(RequestToken token, std::string_view gtid, const BranchRef& asker) {
  if (!leader_) {
    out_.inquiry_replies.push_back({token, std::string(gtid), InquiryStatus::kNotLeader});
    return;
  }
  ActiveTxn* t = Find(gtid);
  if (t == nullptr) {
    AnswerFromTable(gtid, token, /*inquiry=*/true, &asker);
    Sweep();
    return;
  }
  InquiryStatus status = InquiryStatus::kInProgress;
  switch (t->phase) {
    case Phase::kPhaseTwo:
    case Phase::kEnding:
      status =
          *t->outcome == Outcome::kCommit ? InquiryStatus::kCommitted : InquiryStatus::kAborted;
      break;
    case Phase::kAbortedUnlogged:
      // This leader gave up on it without a log entry. The answer is ABORT, but an answer
      // to an agent goes through the log first (DESIGN §3): propose it, answer once applied.
      AddAsker(*t, asker);
      t->inquirers.push_back(token);
      ProposePresumedAbort(*t);
      Sweep();
      return;
    case Phase::kProposingAbort:
      if (t->abort_basis != DecideBasis::kFenced) {  // presumed or heuristic: wait for it
        AddAsker(*t, asker);
        t->inquirers.push_back(token);
        return;
      }
      status = InquiryStatus::kPrecommitIntent;
      break;
    case Phase::kPrecommitting:
    case Phase::kFencing:
      status = InquiryStatus::kPrecommitIntent;
      break;
    case Phase::kProposingCommit:
      status = t->protocol == Protocol::k3PC ? InquiryStatus::kPrecommitIntent
                                             : InquiryStatus::kInProgress;
      break;
    default:
      status = InquiryStatus::kInProgress;
      break;
  }
  out_.inquiry_replies.push_back({token, std::string(gtid), status});
}

void ProtocolEngine::RegisterParticipant(RequestToken token, const RegisterParticipantCmd& reg) {
  if (!leader_) {
    out_.admin_replies.push_back({token, Status::NotLeader("not the leader")});
    return;
  }
  if (reg.name.empty() || reg.address.empty()) {
    out_.admin_replies.push_back({token, Status::InvalidArgument("empty name or address")});
    return;
  }
  PendingRegistration& p = registrations_[reg.name];
  p.tokens.push_back(token);
  p.proposal = EncodeCommand(reg);
  p.proposed_ms = now_;
  out_.proposals.push_back(p.proposal);
}

// ---------------------------------------------------------------------------------------
// Replies and applied entries.

void ProtocolEngine::OnReply(const ParticipantReply& r) {
  if (!leader_) return;
  ActiveTxn* t = Find(r.gtid);
  BranchSlot* slot = t ? FindSlot(*t, r.participant, r.branch) : nullptr;
  if (slot == nullptr) {
    ++stats_.stray_replies;  // unknown gtid or branch, or a transaction already finished
    return;
  }
  switch (r.kind) {
    case MessageKind::kPrepare: {
      // Votes count only while this leadership collects them (DESIGN §3.5): a late vote,
      // after a decision or an abort, changes nothing.
      if (t->phase != Phase::kPreparing) break;
      Vote v = Vote::kNone;
      switch (r.code) {
        case ParticipantCode::kOk:
          v = r.vote;
          break;
        case ParticipantCode::kWrongState:
          if (r.state == BranchStatus::kPrepared || r.state == BranchStatus::kPrecommitted ||
              r.state == BranchStatus::kFenced) {
            v = Vote::kYes;  // already prepared: the earlier YES stands
          } else if (r.state == BranchStatus::kCommitted) {
            v = Vote::kReadOnly;  // finished with nothing to commit (or already committed)
          } else {
            v = Vote::kNo;
          }
          break;
        case ParticipantCode::kUnavailable:
          break;  // no vote yet: PREPARE is re-sent
        default:  // NOT_FOUND, SQL_ERROR, LOCK_TIMEOUT, ...: the branch cannot vote YES
          v = Vote::kNo;
          break;
      }
      if (v != Vote::kNone) OnVote(*t, *slot, v, r.message);
      break;
    }
    case MessageKind::kCommitOnePhase:
      if (t->phase == Phase::kOnePhase) OnOnePhaseReply(*t, r);
      break;
    case MessageKind::kPrecommit:
      if (t->phase == Phase::kPrecommitting || t->phase == Phase::kFencing) {
        OnPrecommitReply(*t, *slot, r);
      }
      break;
    case MessageKind::kFence:
      if (t->phase == Phase::kPrecommitting || t->phase == Phase::kFencing) {
        OnFenceReply(*t, *slot, r);
      }
      break;
    case MessageKind::kCommit:
    case MessageKind::kAbort:
      if (t->phase == Phase::kPhaseTwo || t->phase == Phase::kAbortedUnlogged) {
        OnPhaseTwoReply(*t, *slot, r);
      }
      break;
  }
  Sweep();
}

void ProtocolEngine::OnApplied(const TxnCommand& cmd, const ApplyResult& result) {
  if (!leader_) return;  // followers keep no volatile state; the table is the truth
  using C = ApplyResult::Code;
  if (const auto* p = std::get_if<PrecommitCmd>(&cmd)) {
    ActiveTxn* t = Find(p->gtid);
    if (result.code == C::kPrecommitAccepted) {
      if (t == nullptr) {
        GtidLookup l = table_.Find(p->gtid);
        if (l.record) Adopt(p->gtid, *l.record);  // e.g. an earlier leader's entry
      } else if (t->phase == Phase::kProposingPrecommit) {
        OnPrecommitApplied(*t);
      }
    } else if (result.code == C::kPrecommitRejected && t != nullptr &&
               t->phase == Phase::kProposingPrecommit) {
      EnterDecided(*t, *result.decision);  // another decision came first: follow the log
    }
  } else if (const auto* d = std::get_if<DecideCmd>(&cmd)) {
    ActiveTxn* t = Find(d->gtid);
    GtidLookup l = table_.Find(d->gtid);
    if (t != nullptr && !t->resolvers.empty()) {
      bool ours = result.code == C::kDecided && d->basis == DecideBasis::kHeuristic;
      for (RequestToken tok : t->resolvers) {
        out_.admin_replies.push_back(
            {tok, ours ? Status::OK()
                       : Status::FailedPrecondition(
                             result.decision
                                 ? std::string("already decided ") + OutcomeName(*result.decision)
                                 : std::string("refused: PRECOMMIT is applied"))});
      }
      t->resolvers.clear();
    }
    if (result.decision) {
      if (t == nullptr) {
        if (l.record) Adopt(d->gtid, *l.record);
      } else {
        EnterDecided(*t, *result.decision);
      }
    } else if (result.code == C::kDecideRejected) {
      // Our presumed abort lost to an applied PRECOMMIT: never presume abort after it.
      // Finish what the log says instead (DESIGN §4.4).
      if (t != nullptr) ReplyInquirers(*t, InquiryStatus::kPrecommitIntent);
      if (l.record && (t == nullptr || t->phase == Phase::kProposingAbort)) {
        Adopt(d->gtid, *l.record);  // keeps waiting clients: they hear the final outcome
      }
    }
  } else if (const auto* e = std::get_if<EndCmd>(&cmd)) {
    for (const std::string& g : e->gtids) {
      ActiveTxn* t = Find(g);
      if (t != nullptr && t->phase == Phase::kEnding) Erase(*t);
    }
  } else {
    const auto& reg = std::get<RegisterParticipantCmd>(cmd);
    auto it = registrations_.find(reg.name);
    if (it != registrations_.end() && it->second.proposal == EncodeCommand(reg)) {
      for (RequestToken tok : it->second.tokens) out_.admin_replies.push_back({tok, Status::OK()});
      registrations_.erase(it);
    }
  }
  Sweep();
}

EngineOutput ProtocolEngine::TakeOutput() {
  EngineOutput out = std::move(out_);
  out_ = EngineOutput{};
  return out;
}

// ---------------------------------------------------------------------------------------
// Queries.

std::optional<TxnView> ProtocolEngine::Describe(std::string_view gtid) const {
  auto it = txns_.find(gtid);
  if (it == txns_.end()) return std::nullopt;
  const ActiveTxn& t = it->second;
  TxnView v;
  v.gtid = t.gtid;
  v.protocol = t.protocol;
  v.phase = PhaseName(t.phase);
  v.own = t.own;
  v.age_ms = now_ - t.begun_ms;
  v.deadline_in_ms = t.deadline_ms - now_;
  v.outcome = t.outcome;
  v.reason = t.reason;
  for (const auto& [ref, s] : t.branches) {
    v.branches.push_back({ref, s.vote, s.precommit_acked, s.fenced, s.target, s.done, s.attempts});
  }
  return v;
}

std::vector<TxnView> ProtocolEngine::List() const {
  std::vector<TxnView> out;
  for (const auto& [gtid, t] : txns_) {
    if (!t.erase) out.push_back(*Describe(gtid));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Plumbing.

ActiveTxn* ProtocolEngine::Find(std::string_view gtid) {
  auto it = txns_.find(gtid);
  return it == txns_.end() || it->second.erase ? nullptr : &it->second;
}

BranchSlot* ProtocolEngine::FindSlot(ActiveTxn& t, const std::string& participant,
                                     const std::string& branch) {
  auto it = t.branches.find(BranchRef{participant, branch});
  return it == t.branches.end() ? nullptr : &it->second;
}

void ProtocolEngine::AddAsker(ActiveTxn& t, const BranchRef& asker) {
  if (asker.participant.empty() || asker.branch.empty()) return;
  BranchSlot& slot = t.branches[asker];
  slot.ref = asker;
}

PeerBranch ProtocolEngine::Peer(const BranchRef& ref) const {
  const ParticipantInfo* p = table_.FindParticipant(ref.participant);
  return PeerBranch{ref.participant, p ? p->address : std::string(), ref.branch};
}

std::optional<MessageKind> ProtocolEngine::Owed(const ActiveTxn& t, const BranchSlot& s) const {
  switch (t.phase) {
    case Phase::kPreparing:
      if (s.vote == Vote::kNone) return MessageKind::kPrepare;
      break;
    case Phase::kOnePhase:
      return MessageKind::kCommitOnePhase;
    case Phase::kPrecommitting:
      // Only branches in the applied intent (YES voters) hear PRECOMMIT; a read-only
      // branch is finished (and reports COMMITTED, which is no evidence here).
      if (s.vote == Vote::kYes && !s.precommit_acked) return MessageKind::kPrecommit;
      break;
    case Phase::kFencing:
      if (s.vote == Vote::kYes && !s.fenced) return MessageKind::kFence;
      break;
    case Phase::kPhaseTwo:
      if (s.target && !s.done) {
        return *t.outcome == Outcome::kCommit ? MessageKind::kCommit : MessageKind::kAbort;
      }
      break;
    case Phase::kAbortedUnlogged:
      if (s.target && !s.done) return MessageKind::kAbort;
      break;
    default:
      break;
  }
  return std::nullopt;
}

void ProtocolEngine::Pump(ActiveTxn& t, BranchSlot& slot, bool force) {
  std::optional<MessageKind> kind = Owed(t, slot);
  if (!kind || (!force && slot.next_send_ms > now_)) return;
  ParticipantMessage m;
  m.kind = *kind;
  m.gtid = t.gtid;
  m.protocol = t.protocol;
  m.to = Peer(slot.ref);
  m.attempt = slot.attempts++;
  if (*kind == MessageKind::kPrepare) {
    for (const auto& [ref, s] : t.branches) m.participants.push_back(Peer(ref));
  }
  ++stats_.messages;
  if (m.attempt > 0) ++stats_.resends;
  out_.messages.push_back(std::move(m));
  if (slot.backoff_ms <= 0) slot.backoff_ms = config_.retry_initial_ms;
  slot.next_send_ms = now_ + slot.backoff_ms;
  slot.backoff_ms = std::min(slot.backoff_ms * 2, config_.retry_max_ms);
}

void ProtocolEngine::PumpAll(ActiveTxn& t, bool force) {
  for (auto& [ref, slot] : t.branches) Pump(t, slot, force);
}

void ProtocolEngine::ResetBackoff(ActiveTxn& t) {
  for (auto& [ref, slot] : t.branches) {
    slot.backoff_ms = config_.retry_initial_ms;
    slot.attempts = 0;
    slot.next_send_ms = now_;
  }
}

void ProtocolEngine::Propose(ActiveTxn& t, Phase phase, const TxnCommand& cmd) {
  t.phase = phase;
  t.proposal = EncodeCommand(cmd);
  t.proposed_ms = now_;
  out_.proposals.push_back(t.proposal);
}

void ProtocolEngine::ReplyClients(ActiveTxn& t, ClientOutcome outcome, const std::string& reason) {
  for (RequestToken tok : t.waiters) ReplyClient(tok, t.gtid, outcome, reason);
  t.waiters.clear();
}

void ProtocolEngine::ReplyClient(RequestToken token, std::string_view gtid, ClientOutcome outcome,
                                 std::string reason) {
  out_.client_replies.push_back({token, std::string(gtid), outcome, std::move(reason)});
}

void ProtocolEngine::ReplyInquirers(ActiveTxn& t, InquiryStatus status) {
  for (RequestToken tok : t.inquirers) out_.inquiry_replies.push_back({tok, t.gtid, status});
  t.inquirers.clear();
}

void ProtocolEngine::Hazard(HazardKind kind, const ActiveTxn& t, const BranchRef& b,
                            std::string message) {
  ++stats_.hazards;
  out_.hazards.push_back({kind, t.gtid, b, std::move(message)});
}

void ProtocolEngine::Remember(const std::string& gtid, ClientOutcome outcome,
                              const std::string& reason) {
  if (config_.recent_outcomes == 0) return;
  if (recent_.emplace(gtid, std::make_pair(outcome, reason)).second) recent_order_.push_back(gtid);
  while (recent_order_.size() > config_.recent_outcomes) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
}

void ProtocolEngine::Erase(ActiveTxn& t) {
  if (t.erase) return;
  t.erase = true;
  doomed_.push_back(t.gtid);
}

void ProtocolEngine::Sweep() {
  for (const std::string& g : doomed_) {
    auto it = txns_.find(g);
    if (it != txns_.end() && it->second.erase) txns_.erase(it);
  }
  doomed_.clear();
}

}  // namespace verdict::coordinator::txn
