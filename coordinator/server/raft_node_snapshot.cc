// RaftNode's log compaction: when to snapshot the table, serializing it off the event
// loop, and handing the snapshot to the Raft core and the storage thread.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

void RaftNode::MaybeCompact() {
  if (serializing_) return;
  // Every snapshot_entries applied entries; but serializing costs time proportional to the
  // table's size, so a large table waits for half as many new entries as it holds
  // (amortized O(1) work per entry).
  uint64_t interval = std::max<uint64_t>(options_.snapshot_entries, table_.records().size() / 2);
  if (applied_ < last_snapshot_index_ + interval) return;
  serializing_ = true;
  serializing_index_ = applied_;
  // The event loop does not write the table until FinishCompaction(); other readers
  // hold the shared lock, as does the snapshot thread.
  serializer_ = std::thread([this] {
    auto data = std::make_shared<const std::string>([this] {
      std::shared_lock<std::shared_mutex> lock(table_mu_);
      return table_.Serialize();
    }());
    Push([&](Inbox& in) { in.serialized = std::move(data); });
  });
}

void RaftNode::FinishCompaction(std::shared_ptr<const std::string> data) {
  serializer_.join();
  serializing_ = false;
  raft::Index index = serializing_index_;
  last_snapshot_index_ = index;
  // Refused if a snapshot from the leader overtook this one meanwhile: nothing to do then.
  Status s = raft_->Compact(index, data);
  if (s.ok()) {
    PersistJob job;
    job.local_snapshot = raft_->snapshot();
    job.needs_sync = false;
    storage_.Submit(std::move(job));
    spdlog::info("snapshot at index {} ({} bytes)", index, data->size());
  } else {
    spdlog::warn("log compaction at index {} refused: {}", index, s.ToString());
  }
  // Apply what the Readys handed out meanwhile, in order.
  std::vector<DeferredApply> deferred;
  deferred.swap(deferred_);
  for (DeferredApply& d : deferred) {
    if (d.snapshot) ApplySnapshot(*d.snapshot);
    if (!d.entries.empty()) ApplyEntries(d.entries);
  }
  AnswerReadsUpToApplied();
}

}  // namespace verdict::coordinator::server
