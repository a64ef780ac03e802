// RaftNode's transaction side: the calls that reach the protocol engine (each runs on the
// event loop and waits for the engine's answer), and the event loop's driving of the
// engine per engine.h's contract: leadership kept in step with Raft, its output drained
// into Raft proposals, participant calls and answers, and coordinator failpoints.
#include <spdlog/spdlog.h>

#include <chrono>
#include <variant>

#include "common/failpoint.h"
#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

namespace {

using Ms = std::chrono::milliseconds;

CallResult Result(CallResult::Code code, std::string message = "") {
  CallResult r;
  r.code = code;
  r.message = std::move(message);
  return r;
}

CallResult Stopping() { return Result(CallResult::Code::kUnavailable, "node stopping"); }

CallResult NoAnswer(int64_t ms) {
  return Result(CallResult::Code::kUnknown,
                "no answer within " + std::to_string(ms) +
                    " ms; the call may still take "
                    "effect: retry (calls are idempotent) or ask GetTxn");
}

int64_t UnixMs() {
  return std::chrono::duration_cast<Ms>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int64_t RaftNode::NowMs() const {
  return std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - epoch_).count();
}

bool RaftNode::RunOnLoop(std::function<void()> task) {
  return Push([&](Inbox& in) { in.tasks.push_back(std::move(task)); });
}

// ---------------------------------------------------------------------------------------
// Calls from RPC threads.

CallResult RaftNode::Begin(txn::Protocol protocol, int64_t deadline_ms, std::string* gtid,
                           int64_t* deadline_in_force_ms) {
  struct Out {
    CallResult result;
    std::string gtid;
    int64_t deadline_ms = 0;
  };
  auto slot = std::make_shared<OneShot<Out>>();
  bool queued = RunOnLoop([this, slot, protocol, deadline_ms] {
    Out o;
    Status s = engine_->Begin(protocol, deadline_ms, &o.gtid);
    if (s.ok()) {
      o.result.code = CallResult::Code::kOk;
      if (auto view = engine_->Describe(o.gtid)) o.deadline_ms = view->deadline_in_ms;
    } else {
      o.result = FromEngineStatus(s);
    }
    slot->Set(std::move(o));
  });
  if (!queued) return Stopping();
  Out o;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &o)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  *gtid = std::move(o.gtid);
  *deadline_in_force_ms = o.deadline_ms;
  return o.result;
}

CallResult RaftNode::RegisterBranch(const std::string& gtid, const std::string& participant,
                                    const std::string& branch, bool read_only) {
  auto slot = std::make_shared<Completion>();
  bool queued = RunOnLoop([=, this] {
    Status s = engine_->RegisterBranch(gtid, participant, branch, read_only);
    slot->Set(s.ok() ? Result(CallResult::Code::kOk) : FromEngineStatus(s));
  });
  if (!queued) return Stopping();
  CallResult r;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &r)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  return r;
}

CallResult RaftNode::Finish(bool commit, const std::string& gtid, txn::ClientReply* reply) {
  auto slot = std::make_shared<OneShot<txn::ClientReply>>();
  bool queued = RunOnLoop([=, this] {
    txn::RequestToken token = next_token_++;
    client_waiters_.emplace(token, slot);
    if (commit) {
      engine_->Commit(token, gtid);
    } else {
      engine_->Abort(token, gtid);
    }
  });
  if (!queued) return Stopping();
  // Votes may take the vote timeout; the decision then needs its entry applied.
  int64_t wait_ms = options_.vote_timeout_ms + 2 * int64_t{options_.request_timeout_ms};
  if (!slot->Wait(Ms(wait_ms), reply)) {
    reply->gtid = gtid;
    reply->outcome = txn::ClientOutcome::kUnknown;
    reply->reason = "no outcome within " + std::to_string(wait_ms) + " ms; ask again";
  }
  if (reply->outcome == txn::ClientOutcome::kNotLeader) return GetStatusNotLeader();
  return Result(CallResult::Code::kOk);
}

CallResult RaftNode::Inquire(const std::string& gtid, const txn::BranchRef& asker,
                             txn::InquiryStatus* status) {
  auto slot = std::make_shared<OneShot<txn::InquiryReply>>();
  bool queued = RunOnLoop([=, this] {
    txn::RequestToken token = next_token_++;
    inquiry_waiters_.emplace(token, slot);
    engine_->Inquire(token, gtid, asker);
  });
  if (!queued) return Stopping();
  txn::InquiryReply reply;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &reply)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  if (reply.status == txn::InquiryStatus::kNotLeader) return GetStatusNotLeader();
  *status = reply.status;
  return Result(CallResult::Code::kOk);
}

CallResult RaftNode::RegisterParticipant(const txn::RegisterParticipantCmd& cmd) {
  auto slot = std::make_shared<OneShot<txn::AdminReply>>();
  bool queued = RunOnLoop([=, this] {
    txn::RequestToken token = next_token_++;
    admin_waiters_.emplace(token, slot);
    engine_->RegisterParticipant(token, cmd);
  });
  if (!queued) return Stopping();
  txn::AdminReply reply;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &reply)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  return reply.status.ok() ? Result(CallResult::Code::kOk) : FromEngineStatus(reply.status);
}

CallResult RaftNode::Resolve(const std::string& gtid, txn::Outcome outcome,
                             const txn::HeuristicInfo& info,
                             std::optional<txn::Outcome>* decision) {
  auto slot = std::make_shared<OneShot<txn::AdminReply>>();
  bool queued = RunOnLoop([=, this] {
    txn::RequestToken token = next_token_++;
    admin_waiters_.emplace(token, slot);
    engine_->Resolve(token, gtid, outcome, info);
  });
  if (!queued) return Stopping();
  txn::AdminReply reply;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &reply)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  {
    std::shared_lock<std::shared_mutex> lock(table_mu_);
    txn::GtidLookup l = table_.Find(gtid);
    if (l.record && l.record->decision) {
      *decision = l.record->decision;
    } else if (l.state == txn::GtidState::kEndedCommit) {
      *decision = txn::Outcome::kCommit;
    }
  }
  return reply.status.ok() ? Result(CallResult::Code::kOk) : FromEngineStatus(reply.status);
}

CallResult RaftNode::GetTxn(const std::string& gtid, TxnReport* report) {
  auto slot = std::make_shared<OneShot<std::pair<CallResult, TxnReport>>>();
  bool queued = RunOnLoop([=, this] {
    std::pair<CallResult, TxnReport> out;
    if (!engine_->is_leader()) {
      out.first = NotLeaderResult();
    } else {
      out.second = ReportOf(gtid, engine_->Describe(gtid));
      bool known = out.second.view || out.second.state != txn::GtidState::kUnknown;
      out.first = known ? Result(CallResult::Code::kOk)
                        : Result(CallResult::Code::kNotFound, "no transaction " + gtid);
    }
    slot->Set(std::move(out));
  });
  if (!queued) return Stopping();
  std::pair<CallResult, TxnReport> out;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &out)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  *report = std::move(out.second);
  return out.first;
}

CallResult RaftNode::ListTxns(size_t limit, std::vector<TxnReport>* reports, bool* truncated) {
  struct Out {
    CallResult result;
    std::vector<TxnReport> reports;
    bool truncated = false;
  };
  auto slot = std::make_shared<OneShot<Out>>();
  bool queued = RunOnLoop([=, this] {
    Out o;
    if (!engine_->is_leader()) {
      o.result = NotLeaderResult();
      slot->Set(std::move(o));
      return;
    }
    o.result.code = CallResult::Code::kOk;
    std::map<std::string, std::optional<txn::TxnView>> all;
    for (txn::TxnView& v : engine_->List()) {
      std::string gtid = v.gtid;
      all.emplace(std::move(gtid), std::move(v));
    }
    for (const auto& [gtid, rec] : table_.records()) {
      if (rec.decision && rec.basis == txn::DecideBasis::kLegacy) continue;  // Decide RPC
      all.emplace(gtid, std::nullopt);
    }
    for (auto& [gtid, view] : all) {
      if (o.reports.size() >= limit) {
        o.truncated = true;
        break;
      }
      o.reports.push_back(ReportOf(gtid, std::move(view)));
    }
    slot->Set(std::move(o));
  });
  if (!queued) return Stopping();
  Out o;
  if (!slot->Wait(Ms(options_.request_timeout_ms), &o)) {
    return NoAnswer(options_.request_timeout_ms);
  }
  *reports = std::move(o.reports);
  *truncated = o.truncated;
  return o.result;
}

std::vector<ParticipantReport> RaftNode::ListParticipants() const {
  std::shared_lock<std::shared_mutex> lock(table_mu_);
  std::vector<ParticipantReport> out;
  for (const auto& [name, info] : table_.participants()) {
    out.push_back({name, info.address, info.backend});
  }
  return out;
}

std::vector<HazardReport> RaftNode::Hazards(uint64_t* total) const {
  std::lock_guard<std::mutex> lock(hazards_mu_);
  *total = hazards_total_;
  return {hazards_.begin(), hazards_.end()};
}

CallResult RaftNode::FromEngineStatus(const Status& s) const {
  switch (s.code()) {
    case Status::Code::kOk:
      return Result(CallResult::Code::kOk);
    case Status::Code::kNotLeader:
      return GetStatusNotLeader();
    case Status::Code::kNotFound:
      return Result(CallResult::Code::kNotFound, s.message());
    case Status::Code::kInvalidArgument:
      return Result(CallResult::Code::kInvalidArgument, s.message());
    case Status::Code::kFailedPrecondition:
      return Result(CallResult::Code::kWrongState, s.message());
    case Status::Code::kUnavailable:
      return Result(CallResult::Code::kUnavailable, s.message());
    default:
      return Result(CallResult::Code::kUnknown, s.ToString());
  }
}

CallResult RaftNode::GetStatusNotLeader() const {
  NodeStatus st = GetStatus();
  CallResult r;
  r.code = CallResult::Code::kNotLeader;
  r.leader = st.leader;
  r.leader_address = st.leader_address;
  r.message = st.leader == raft::kNoNode ? "no known leader" : "not the leader";
  return r;
}

// ---------------------------------------------------------------------------------------
// On the event loop.

TxnReport RaftNode::ReportOf(const std::string& gtid, std::optional<txn::TxnView> view) const {
  TxnReport r;
  r.gtid = gtid;
  r.view = std::move(view);
  txn::GtidLookup l = table_.Find(gtid);
  r.state = l.state;
  if (l.record) r.record = *l.record;
  auto add_address = [&](const std::string& participant) {
    if (const txn::ParticipantInfo* p = table_.FindParticipant(participant)) {
      r.addresses.emplace(participant, p->address);
    }
  };
  if (r.view) {
    for (const txn::TxnView::Branch& b : r.view->branches) add_address(b.ref.participant);
  }
  if (r.record) {
    for (const txn::BranchRef& b : r.record->participants) add_address(b.participant);
  }
  return r;
}

void RaftNode::SyncLeadership() {
  bool leader = raft_->role() == raft::Role::kLeader;
  if (leader == engine_->is_leader() && (!leader || raft_->term() == engine_->term())) return;
  engine_->OnLeadershipChanged(leader, raft_->term());
  if (leader) {
    spdlog::info("leading term {}: {} transactions to finish from the log", raft_->term(),
                 engine_->List().size());
  }
}

void RaftNode::PumpEngine() {
  while (true) {
    while (raft_->HasReady()) {
      HandleReady(raft_->GetReady());
      SyncLeadership();
    }
    if (!engine_->HasOutput()) break;
    HandleEngineOutput(engine_->TakeOutput());
  }
  PublishEngineStats();
}

void RaftNode::HandleEngineOutput(txn::EngineOutput out) {
  const bool failpoints = FailpointsEnabled();
  for (std::string& p : out.proposals) {
    if (failpoints) {
      txn::TxnCommand cmd;
      if (txn::DecodeCommand(p, &cmd).ok()) {
        if (std::holds_alternative<txn::PrecommitCmd>(cmd)) {
          Failpoint("coord_before_precommit_propose");
        } else if (const auto* d = std::get_if<txn::DecideCmd>(&cmd)) {
          if (d->basis == txn::DecideBasis::kVotes || d->basis == txn::DecideBasis::kPrecommitAck) {
            Failpoint("coord_before_decide_propose");
          }
        }
      }
    }
    raft::Index index = 0;
    raft::Term term = 0;
    Status s = raft_->Propose(std::move(p), &index, &term);
    if (!s.ok()) {
      // Not the leader after all (or transferring): the engine drops its volatile state;
      // what it proposed earlier may still be applied, and it answers from the log then.
      metrics_.proposals_not_leader.fetch_add(1, std::memory_order_relaxed);
      engine_->OnLeadershipChanged(false, raft_->term());
      break;
    }
    metrics_.proposals.fetch_add(1, std::memory_order_relaxed);
  }
  if (!out.messages.empty()) {
    if (failpoints) {
      // Each site at most once per batch: a transaction's first messages of a phase go out
      // together, and a sleep action must pause the loop once, not once per branch.
      bool prepare = false, precommit = false, phase_two = false;
      for (const txn::ParticipantMessage& m : out.messages) {
        if (m.attempt != 0) continue;
        prepare |= m.kind == txn::MessageKind::kPrepare;
        precommit |= m.kind == txn::MessageKind::kPrecommit;
        phase_two |= (m.kind == txn::MessageKind::kCommit || m.kind == txn::MessageKind::kAbort) &&
                     table_.Find(m.gtid).state == txn::GtidState::kDecided;
      }
      if (prepare) Failpoint("coord_before_prepare_send");
      if (precommit) Failpoint("coord_before_precommit_send");
      if (phase_two) Failpoint("coord_before_phase_two_send");
    }
    participants_.Send(std::move(out.messages));
  }
  for (txn::ClientReply& r : out.client_replies) {
    auto it = client_waiters_.find(r.token);
    if (it == client_waiters_.end()) continue;
    it->second->Set(std::move(r));
    client_waiters_.erase(it);
  }
  for (txn::InquiryReply& r : out.inquiry_replies) {
    auto it = inquiry_waiters_.find(r.token);
    if (it == inquiry_waiters_.end()) continue;
    it->second->Set(std::move(r));
    inquiry_waiters_.erase(it);
  }
  for (txn::AdminReply& r : out.admin_replies) {
    auto it = admin_waiters_.find(r.token);
    if (it == admin_waiters_.end()) continue;
    it->second->Set(std::move(r));
    admin_waiters_.erase(it);
  }
  for (txn::HazardEvent& h : out.hazards) {
    spdlog::error("HEURISTIC HAZARD {} gtid {} branch {}/{}: {}", txn::HazardKindName(h.kind),
                  h.gtid, h.branch.participant, h.branch.branch, h.message);
    metrics_.heuristic_hazards.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(hazards_mu_);
    ++hazards_total_;
    hazards_.push_back(HazardReport{std::move(h), UnixMs()});
    if (hazards_.size() > kMaxHazards) hazards_.pop_front();
  }
}

void RaftNode::OnParticipantReply(const txn::ParticipantReply& reply) {
  if (FailpointsEnabled() && reply.code == txn::ParticipantCode::kOk &&
      (reply.kind == txn::MessageKind::kCommit || reply.kind == txn::MessageKind::kAbort) &&
      table_.Find(reply.gtid).state == txn::GtidState::kDecided) {
    Failpoint("coord_after_phase_two_ack");
  }
  engine_->OnReply(reply);
}

void RaftNode::PublishEngineStats() {
  const txn::EngineStats& st = engine_->stats();
  metrics_.txns_begun.store(st.begun, std::memory_order_relaxed);
  metrics_.txns_committed.store(st.committed, std::memory_order_relaxed);
  metrics_.txns_aborted.store(st.aborted, std::memory_order_relaxed);
}

}  // namespace verdict::coordinator::server
