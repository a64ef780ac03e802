// RaftNode's handling of one Ready (see raft.h's contract): what is sent at once, what is
// handed to the storage thread, and how committed entries and read states are served.
#include <spdlog/spdlog.h>

#include "coordinator/server/fatal.h"
#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

void RaftNode::HandleReady(raft::Ready rd) {
  // 1. Replication traffic goes out now: the leader writes its own log in parallel.
  router_.Send(std::move(rd.messages));

  // 2-3. Persistence, then the after-persist messages and OnPersisted, on the storage
  // thread, in Ready order. Only term/vote changes, entries and snapshots need a sync of
  // their own; a commit-only hard state rides along with the next sync.
  if (rd.hard_state || !rd.entries.empty() || rd.snapshot || !rd.messages_after_persist.empty()) {
    PersistJob job;
    job.needs_sync = !rd.entries.empty() || rd.snapshot.has_value();
    if (rd.hard_state) {
      if (rd.hard_state->term != last_hard_state_.term ||
          rd.hard_state->vote != last_hard_state_.vote) {
        job.needs_sync = true;
      }
      last_hard_state_ = *rd.hard_state;
      job.hard_state = rd.hard_state;
    }
    job.entries = std::move(rd.entries);
    job.installed_snapshot = rd.snapshot;  // shares the data
    job.messages_after_persist = std::move(rd.messages_after_persist);
    storage_.Submit(std::move(job));
  }

  // 4. Apply: the snapshot first, then the committed entries in order (later, in the same
  // order, if the table is being serialized); then reads.
  if (serializing_) {
    if (rd.snapshot || !rd.committed_entries.empty()) {
      deferred_.push_back(DeferredApply{std::move(rd.snapshot), std::move(rd.committed_entries)});
    }
  } else {
    if (rd.snapshot) ApplySnapshot(*rd.snapshot);
    if (!rd.committed_entries.empty()) ApplyEntries(rd.committed_entries);
  }
  if (!rd.read_states.empty()) HandleReadStates(rd.read_states);
  AnswerReadsUpToApplied();
}

void RaftNode::ApplySnapshot(const raft::Snapshot& snapshot) {
  if (snapshot.meta.index <= applied_) return;
  if (!snapshot.data) FatalError("snapshot from the leader has no data");
  {
    std::unique_lock<std::shared_mutex> lock(table_mu_);
    Status s = table_.Restore(*snapshot.data);
    if (!s.ok()) {
      FatalError("snapshot at index " + std::to_string(snapshot.meta.index) +
                 " from the leader cannot be restored: " + s.ToString());
    }
  }
  applied_ = snapshot.meta.index;
  last_snapshot_index_ = snapshot.meta.index;
  metrics_.snapshots_installed.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("installed snapshot at index {} (term {})", snapshot.meta.index, snapshot.meta.term);
  // The engine's volatile state may describe entries the snapshot replaced: a leader (a
  // snapshot reaches a leader only in odd schedules) starts over from the table.
  if (engine_->is_leader()) {
    engine_->OnLeadershipChanged(false, raft_->term());
    engine_->OnLeadershipChanged(true, raft_->term());
  }
  // Proposals covered by the snapshot: the table tells whether their gtid is decided.
  for (auto it = proposals_.begin(); it != proposals_.end() && it->first <= applied_;) {
    CallResult r;
    if (std::optional<txn::DecisionRecord> rec = DecisionOf(it->second.gtid)) {
      r.code = CallResult::Code::kOk;
      r.record = std::move(rec);
    } else {
      r = NotLeaderResult();
      metrics_.proposals_lost.fetch_add(1, std::memory_order_relaxed);
    }
    it->second.done->Set(std::move(r));
    it = proposals_.erase(it);
  }
}

void RaftNode::ApplyEntries(const std::vector<raft::Entry>& entries) {
  // Completions are handed out after the table lock is released.
  std::vector<std::pair<std::shared_ptr<Completion>, CallResult>> done;
  uint64_t applied_decisions = 0;
  {
    std::unique_lock<std::shared_mutex> lock(table_mu_);
    txn::TxnCommand cmd;
    for (const raft::Entry& e : entries) {
      if (e.index <= applied_) continue;  // covered by an installed snapshot
      if (e.index != applied_ + 1) {
        FatalError("committed entry " + std::to_string(e.index) + " follows applied index " +
                   std::to_string(applied_));
      }
      bool command = e.type == raft::EntryType::kNormal && !e.data.empty();
      txn::ApplyResult result;
      if (command) {
        Status s = txn::DecodeCommand(e.data, &cmd);
        if (!s.ok()) {
          FatalError("committed entry " + std::to_string(e.index) +
                     " is not a valid command: " + s.ToString());
        }
        result = table_.ApplyCommand(cmd, e.index, e.term);
        // Right after each entry, as engine.h asks (it reads the table as of this entry).
        engine_->OnApplied(cmd, result);
        if (std::holds_alternative<txn::DecideCmd>(cmd)) ++applied_decisions;
      } else {
        Status s = table_.Apply(e, &result);  // a no-op: advances the applied index
        if (!s.ok()) FatalError("entry " + std::to_string(e.index) + ": " + s.ToString());
      }
      applied_ = e.index;
      auto it = proposals_.find(e.index);
      if (it == proposals_.end()) continue;
      CallResult r;
      const auto* decide = command ? std::get_if<txn::DecideCmd>(&cmd) : nullptr;
      std::optional<txn::DecisionRecord> rec;
      if (it->second.term == e.term && decide && decide->gtid == it->second.gtid) {
        rec = DecisionOf(decide->gtid);
      }
      if (rec) {
        r.code = CallResult::Code::kOk;
        r.record = std::move(rec);
      } else {
        // Another leader's entry took this index: the proposal was lost. Retry.
        metrics_.proposals_lost.fetch_add(1, std::memory_order_relaxed);
        r = NotLeaderResult();
        r.message = "proposal lost to a leader change; retry";
      }
      done.emplace_back(std::move(it->second.done), std::move(r));
      proposals_.erase(it);
    }
  }
  metrics_.decisions_applied.fetch_add(applied_decisions, std::memory_order_relaxed);
  for (auto& [completion, result] : done) completion->Set(std::move(result));
}

void RaftNode::HandleReadStates(const std::vector<raft::ReadState>& read_states) {
  for (const raft::ReadState& rs : read_states) {
    auto it = reads_by_context_.find(rs.context);
    if (it == reads_by_context_.end()) continue;  // expired
    if (rs.index <= applied_) {
      AnswerRead(it->second);
    } else {
      reads_waiting_.emplace(rs.index, std::move(it->second));
    }
    reads_by_context_.erase(it);
  }
}

void RaftNode::AnswerRead(const ReadRequest& read) {
  CallResult r;
  if (std::optional<txn::DecisionRecord> rec = DecisionOf(read.gtid)) {
    r.code = CallResult::Code::kOk;
    r.record = std::move(rec);
  } else if (table_.Find(read.gtid).state == txn::GtidState::kBeyondMemory) {
    r.code = CallResult::Code::kUnknown;
    r.message = "gtid is below the table's memory horizon: it may be a forgotten commit";
  } else {
    r.code = CallResult::Code::kNotFound;
  }
  read.done->Set(std::move(r));
}

void RaftNode::AnswerReadsUpToApplied() {
  while (!reads_waiting_.empty() && reads_waiting_.begin()->first <= applied_) {
    AnswerRead(reads_waiting_.begin()->second);
    reads_waiting_.erase(reads_waiting_.begin());
  }
}

}  // namespace verdict::coordinator::server
