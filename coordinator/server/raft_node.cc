#include "coordinator/server/raft_node.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <random>

#include "coordinator/server/fatal.h"
#include "coordinator/txn/gtid.h"

namespace verdict::coordinator::server {

Status RaftNode::Create(const NodeOptions& options, std::unique_ptr<storage::LogStorage> log,
                        storage::RecoveredState recovered, Metrics& metrics,
                        std::unique_ptr<RaftNode>* result) {
  std::unique_ptr<RaftNode> node(new RaftNode(options, std::move(log), metrics));
  if (recovered.snapshot) {
    const raft::Snapshot& snap = *recovered.snapshot;
    if (!snap.data) return Status::Corruption("recovered snapshot has no data");
    Status s = node->table_.Restore(*snap.data);
    if (!s.ok()) {
      return Status::Corruption("snapshot at index " + std::to_string(snap.meta.index) +
                                " cannot be restored: " + s.ToString());
    }
    node->applied_ = snap.meta.index;
    node->last_snapshot_index_ = snap.meta.index;
  }
  node->last_hard_state_ = recovered.hard_state;

  raft::Config config;
  config.id = options.id;
  config.initial_membership = options.cluster;
  config.election_ticks = options.election_ticks;
  config.heartbeat_ticks = options.heartbeat_ticks;
  config.pre_vote = true;
  config.check_quorum = true;
  config.seed = std::random_device{}() ^ (options.id << 32);
  raft::RestoredState restored;
  restored.hard_state = recovered.hard_state;
  restored.snapshot = std::move(recovered.snapshot);
  restored.entries = std::move(recovered.entries);
  node->raft_ = std::make_unique<raft::Raft>(config, std::move(restored));
  node->last_role_ = node->raft_->role();
  node->PublishStatus();
  *result = std::move(node);
  return Status::OK();
}

RaftNode::RaftNode(const NodeOptions& options, std::unique_ptr<storage::LogStorage> log,
                   Metrics& metrics)
    : options_(options),
      metrics_(metrics),
      router_(
          options.id,
          [&] {
            PeerSenderOptions o;
            o.max_frame_bytes = options.max_frame_bytes;
            return o;
          }(),
          metrics),
      storage_(std::move(log), router_, metrics,
               [this](std::vector<PersistedEvent>&& events) { OnPersisted(std::move(events)); }),
      participants_(
          [&] {
            ParticipantSenderOptions o;
            o.connections_per_agent = options.participant_connections;
            o.rpc_timeout_ms = options.participant_rpc_timeout_ms;
            return o;
          }(),
          metrics,
          [this](txn::ParticipantReply&& reply) {
            Push([&](Inbox& in) { in.replies.push_back(std::move(reply)); });
          }) {
  txn::EngineConfig config;
  config.node_id = options.id;
  config.default_deadline_ms = options.default_deadline_ms;
  config.max_deadline_ms = options.max_deadline_ms;
  config.vote_timeout_ms = options.vote_timeout_ms;
  config.retry_initial_ms = options.retry_initial_ms;
  config.retry_max_ms = options.retry_max_ms;
  config.proposal_retry_ms = std::max<int64_t>(options.request_timeout_ms, 1000);
  engine_ = std::make_unique<txn::ProtocolEngine>(config, table_);
  status_.id = options.id;
  status_.address = options.address();
}

RaftNode::~RaftNode() { Stop(); }

void RaftNode::Start() {
  started_ = true;
  router_.UpdatePeers(raft_->membership());
  last_membership_ = raft_->membership();
  storage_.Start();
  loop_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-loop");
    Run();
  });
}

void RaftNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  inbox_cv_.notify_all();
  if (loop_thread_.joinable()) loop_thread_.join();
  participants_.Stop();
  if (started_) storage_.Stop();  // writes and syncs what the core handed out
  router_.Stop();
}

CallResult RaftNode::Decide(txn::DecideCommand cmd) {
  std::vector<txn::DecideCommand> cmds;
  cmds.push_back(std::move(cmd));
  return std::move(DecideMany(std::move(cmds))[0]);
}

std::vector<CallResult> RaftNode::DecideMany(std::vector<txn::DecideCommand> cmds) {
  std::vector<std::shared_ptr<Completion>> done(cmds.size());
  for (auto& d : done) d = std::make_shared<Completion>();
  std::vector<CallResult> results(cmds.size());
  bool queued = Push([&](Inbox& in) {
    for (size_t i = 0; i < cmds.size(); ++i) {
      in.proposals.push_back(Proposal{std::move(cmds[i]), done[i]});
    }
  });
  if (!queued) {
    for (auto& r : results) {
      r.code = CallResult::Code::kUnavailable;
      r.message = "node stopping";
    }
    return results;
  }
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  for (size_t i = 0; i < done.size(); ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!done[i]->Wait(std::max(left, std::chrono::milliseconds(0)), &results[i])) {
      metrics_.proposals_timed_out.fetch_add(1, std::memory_order_relaxed);
      results[i].code = CallResult::Code::kUnknown;
      results[i].message = "decision not applied within " +
                           std::to_string(options_.request_timeout_ms) + " ms; retry";
    }
  }
  return results;
}

CallResult RaftNode::GetDecision(const std::string& gtid, bool linearizable) {
  metrics_.reads.fetch_add(1, std::memory_order_relaxed);
  if (!linearizable) {
    std::shared_lock<std::shared_mutex> lock(table_mu_);
    CallResult r;
    if (std::optional<txn::DecisionRecord> rec = DecisionOf(gtid)) {
      r.code = CallResult::Code::kOk;
      r.record = std::move(rec);
    } else if (table_.Find(gtid).state == txn::GtidState::kBeyondMemory) {
      r.code = CallResult::Code::kUnknown;
      r.message = "gtid is below the table's memory horizon: it may be a forgotten commit";
    } else {
      r.code = CallResult::Code::kNotFound;
    }
    return r;
  }
  auto done = std::make_shared<Completion>();
  auto timeout = std::chrono::milliseconds(options_.request_timeout_ms);
  if (!Push([&](Inbox& in) {
        in.reads.push_back(ReadRequest{gtid, done, std::chrono::steady_clock::now() + timeout});
      })) {
    return CallResult{CallResult::Code::kUnavailable, {}, raft::kNoNode, "", "node stopping"};
  }
  CallResult result;
  if (!done->Wait(timeout, &result)) {
    result.code = CallResult::Code::kUnknown;
    result.message =
        "read not confirmed within " + std::to_string(options_.request_timeout_ms) + " ms; retry";
  }
  return result;
}

void RaftNode::Deliver(std::vector<raft::Message>&& messages) {
  size_t n = messages.size();
  metrics_.messages_received.fetch_add(n, std::memory_order_relaxed);
  bool dropped = false;
  bool pushed = Push([&](Inbox& in) {
    if (in.messages.size() + n > kMaxInboxMessages) {
      dropped = true;
      return;
    }
    if (in.messages.empty()) {
      in.messages = std::move(messages);
    } else {
      for (auto& m : messages) in.messages.push_back(std::move(m));
    }
  });
  if (!pushed || dropped) metrics_.messages_dropped.fetch_add(n, std::memory_order_relaxed);
}

void RaftNode::OnPersisted(std::vector<PersistedEvent>&& events) {
  Push([&](Inbox& in) {
    for (const auto& ev : events) in.persisted.push_back(ev);
  });
}

NodeStatus RaftNode::GetStatus() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  return status_;
}

CallResult RaftNode::NotLeaderResult() const {
  CallResult r;
  r.code = CallResult::Code::kNotLeader;
  r.leader = raft_->leader();
  if (r.leader != raft::kNoNode) {
    auto it = raft_->membership().voters.find(r.leader);
    if (it != raft_->membership().voters.end()) r.leader_address = it->second;
  }
  r.message = r.leader == raft::kNoNode ? "no known leader" : "not the leader";
  return r;
}

void RaftNode::Run() {
  using Clock = std::chrono::steady_clock;
  const auto tick = std::chrono::milliseconds(options_.tick_ms);
  auto next_tick = Clock::now() + tick;
  int ticks_since_sweep = 0;
  Inbox work;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(inbox_mu_);
      inbox_cv_.wait_until(lock, next_tick, [this] { return stopping_ || !inbox_.Empty(); });
      if (stopping_) break;
      std::swap(work, inbox_);
    }
    auto now = Clock::now();
    size_t n_messages = work.messages.size(), n_proposals = work.proposals.size();
    for (const PersistedEvent& ev : work.persisted) {
      if (ev.snapshot_index) raft_->OnSnapshotPersisted(ev.snapshot_index);
      if (ev.entries_index) raft_->OnPersisted(ev.entries_index, ev.entries_term);
    }
    // Messages before the tick: after a stall, what peers sent meanwhile counts first.
    for (const raft::Message& m : work.messages) {
      if (m.to == options_.id) raft_->Step(m);
    }
    // At most one tick per pass: a loop that fell behind lets time slow down rather than
    // firing timeouts it could not have observed.
    if (now >= next_tick) {
      raft_->Tick();
      next_tick += tick;
      if (next_tick <= now) next_tick = now + tick;  // drop the ticks missed while busy
      ++ticks_since_sweep;
    }
    HandleProposals(work.proposals);
    HandleReads(work.reads);
    if (work.serialized) FinishCompaction(std::move(work.serialized));
    // Leadership first: engine calls and replies are judged against Raft's current role.
    SyncLeadership();
    for (auto& task : work.tasks) task();
    for (const txn::ParticipantReply& r : work.replies) OnParticipantReply(r);
    int64_t now_ms = NowMs();
    if (now_ms - last_engine_tick_ms_ >= kEngineTickMs) {
      engine_->Tick(now_ms);
      last_engine_tick_ms_ = now_ms;
    }
    work.persisted.clear();
    work.messages.clear();
    work.proposals.clear();
    work.reads.clear();
    work.tasks.clear();
    work.replies.clear();

    PumpEngine();  // Readys and the engine's output, until both are quiet
    MaybeCompact();
    if (raft_->role() != last_role_) {
      if (last_role_ == raft::Role::kLeader) {
        // Read-index requests are never answered by a deposed leader.
        for (auto& [ctx, read] : reads_by_context_) read.done->Set(NotLeaderResult());
        reads_by_context_.clear();
      }
      spdlog::info("role {} -> {} (term {}, leader {})", raft::RoleName(last_role_),
                   raft::RoleName(raft_->role()), raft_->term(), raft_->leader());
      last_role_ = raft_->role();
    }
    if (raft_->membership() != last_membership_) {
      last_membership_ = raft_->membership();
      router_.UpdatePeers(last_membership_);
    }
    if (ticks_since_sweep >= options_.election_ticks) {
      ExpireReads(now);
      ticks_since_sweep = 0;
    }
    PublishStatus();
    double busy = std::chrono::duration<double>(Clock::now() - now).count();
    metrics_.loop_busy_seconds.Observe(busy);
    if (busy > 0.2) {
      spdlog::warn("event loop iteration took {:.0f} ms ({} messages, {} proposals)", busy * 1e3,
                   n_messages, n_proposals);
    }
  }
  if (serializer_.joinable()) serializer_.join();
  FailAllPending(CallResult::Code::kUnavailable, "node stopping");
}

std::optional<txn::DecisionRecord> RaftNode::DecisionOf(std::string_view gtid) const {
  txn::GtidLookup l = table_.Find(gtid);
  if (l.state == txn::GtidState::kEndedCommit) {
    return txn::DecisionRecord{txn::Outcome::kCommit, {}, 0};
  }
  if (l.state != txn::GtidState::kDecided) return std::nullopt;
  txn::DecisionRecord rec;
  rec.outcome = *l.record->decision;
  rec.index = l.record->decision_index;
  for (const txn::BranchRef& b : l.record->participants) {
    if (rec.participants.empty() || rec.participants.back() != b.participant) {
      rec.participants.push_back(b.participant);
    }
  }
  return rec;
}

void RaftNode::HandleProposals(std::vector<Proposal>& proposals) {
  bool leader = raft_->role() == raft::Role::kLeader;
  for (Proposal& p : proposals) {
    if (!leader) {
      metrics_.proposals_not_leader.fetch_add(1, std::memory_order_relaxed);
      p.done->Set(NotLeaderResult());
      continue;
    }
    // Already decided: the applied decision is final, answer at once.
    if (std::optional<txn::DecisionRecord> rec = DecisionOf(p.cmd.gtid)) {
      CallResult r;
      r.code = CallResult::Code::kOk;
      r.record = std::move(rec);
      p.done->Set(std::move(r));
      continue;
    }
    raft::Index index = 0;
    raft::Term term = 0;
    Status s = raft_->Propose(txn::EncodeDecide(p.cmd), &index, &term);
    if (!s.ok()) {
      metrics_.proposals_not_leader.fetch_add(1, std::memory_order_relaxed);
      p.done->Set(NotLeaderResult());
      leader = false;
      continue;
    }
    metrics_.proposals.fetch_add(1, std::memory_order_relaxed);
    auto [it, inserted] = proposals_.try_emplace(index);
    if (!inserted) {
      // An older proposal at this index was replaced by this term's entry: it is lost.
      metrics_.proposals_lost.fetch_add(1, std::memory_order_relaxed);
      it->second.done->Set(NotLeaderResult());
    }
    it->second = PendingProposal{term, std::move(p.cmd.gtid), std::move(p.done)};
  }
}

void RaftNode::HandleReads(std::vector<ReadRequest>& reads) {
  for (ReadRequest& r : reads) {
    if (raft_->role() != raft::Role::kLeader) {
      r.done->Set(NotLeaderResult());
      continue;
    }
    std::string context = "r" + std::to_string(++read_seq_);
    raft_->ReadIndex(context);
    reads_by_context_.emplace(std::move(context), std::move(r));
  }
}

void RaftNode::ExpireReads(std::chrono::steady_clock::time_point now) {
  for (auto it = reads_by_context_.begin(); it != reads_by_context_.end();) {
    it = it->second.deadline < now ? reads_by_context_.erase(it) : std::next(it);
  }
  for (auto it = reads_waiting_.begin(); it != reads_waiting_.end();) {
    it = it->second.deadline < now ? reads_waiting_.erase(it) : std::next(it);
  }
}

void RaftNode::FailAllPending(CallResult::Code code, const std::string& message) {
  CallResult r;
  r.code = code;
  r.message = message;
  for (auto& [index, p] : proposals_) p.done->Set(r);
  proposals_.clear();
  for (auto& [ctx, read] : reads_by_context_) read.done->Set(r);
  reads_by_context_.clear();
  for (auto& [index, read] : reads_waiting_) read.done->Set(r);
  reads_waiting_.clear();
  // Calls that arrived after the loop's last pass.
  std::lock_guard<std::mutex> lock(inbox_mu_);
  for (auto& p : inbox_.proposals) p.done->Set(r);
  for (auto& read : inbox_.reads) read.done->Set(r);
  inbox_ = Inbox();  // queued engine tasks are dropped: their callers time out
  for (auto& [token, w] : client_waiters_) {
    w->Set(txn::ClientReply{token, "", txn::ClientOutcome::kUnknown, message});
  }
  client_waiters_.clear();
  for (auto& [token, w] : inquiry_waiters_) {
    w->Set(txn::InquiryReply{token, "", txn::InquiryStatus::kUnknown});
  }
  inquiry_waiters_.clear();
  for (auto& [token, w] : admin_waiters_)
    w->Set(txn::AdminReply{token, Status::Unavailable(message)});
  admin_waiters_.clear();
}

void RaftNode::PublishStatus() {
  NodeStatus s;
  s.id = options_.id;
  s.role = raft_->role();
  s.term = raft_->term();
  s.leader = raft_->leader();
  s.commit_index = raft_->commit_index();
  s.applied_index = applied_;
  s.last_index = raft_->last_index();
  s.snapshot_index = raft_->snapshot() ? raft_->snapshot()->meta.index : 0;
  s.decisions = table_.records().size();
  const raft::Membership& m = raft_->membership();
  auto it = m.voters.find(s.leader);
  if (it != m.voters.end()) s.leader_address = it->second;

  metrics_.term.store(s.term, std::memory_order_relaxed);
  metrics_.role.store(static_cast<int>(s.role), std::memory_order_relaxed);
  metrics_.leader.store(s.leader, std::memory_order_relaxed);
  metrics_.commit_index.store(s.commit_index, std::memory_order_relaxed);
  metrics_.applied_index.store(s.applied_index, std::memory_order_relaxed);
  metrics_.last_index.store(s.last_index, std::memory_order_relaxed);
  metrics_.snapshot_index.store(s.snapshot_index, std::memory_order_relaxed);
  metrics_.decisions.store(s.decisions, std::memory_order_relaxed);

  std::lock_guard<std::mutex> lock(status_mu_);
  s.address = std::move(status_.address);
  bool membership_changed = status_.membership != m;
  if (!membership_changed) s.membership = std::move(status_.membership);
  status_ = std::move(s);
  if (membership_changed) status_.membership = m;
}

}  // namespace verdict::coordinator::server
