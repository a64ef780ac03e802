// Raft core: log compaction, sending and installing snapshots.
#include "common/panic.h"
#include "coordinator/raft/raft.h"

namespace verdict::coordinator::raft {

Status Raft::Compact(Index index, std::shared_ptr<const std::string> data) {
  if (index <= snapshot_index_) {
    return Status::InvalidArgument("snapshot index is not above the current snapshot");
  }
  if (index > applied_) return Status::InvalidArgument("snapshot index is not applied yet");
  Snapshot snap;
  snap.meta.index = index;
  snap.meta.term = *TermAt(index);
  snap.meta.membership = MembershipAt(index);
  snap.data = std::move(data);
  // Fold the membership history up to `index` into the base.
  base_membership_ = snap.meta.membership;
  conf_history_.erase(conf_history_.begin(), conf_history_.upper_bound(index));
  log_.erase(log_.begin(), log_.begin() + (index - snapshot_index_));
  snapshot_index_ = index;
  snapshot_term_ = snap.meta.term;
  snapshot_ = std::move(snap);
  return Status::OK();
}

void Raft::SendSnapshot(NodeId to) {
  Progress& pr = progress_.at(to);
  if (!snapshot_) {
    // Cannot happen: entries are only missing below a snapshot.
    VERDICT_PANIC("follower %llu needs compacted entries but there is no snapshot",
                  static_cast<unsigned long long>(to));
  }
  Message m;
  m.type = MessageType::kSnapshot;
  m.to = to;
  m.snapshot = snapshot_;
  m.index = snapshot_index_;
  m.log_term = snapshot_term_;
  pr.state = Progress::State::kSnapshot;
  pr.pending_snapshot = snapshot_index_;
  pr.snapshot_elapsed = 0;
  pr.inflight.clear();
  Send(std::move(m));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppendResp;
  resp.to = m.from;
  if (!m.snapshot || m.snapshot->meta.index == 0 || !m.snapshot->data) {
    return;  // malformed: ignore
  }
  const SnapshotMeta& meta = m.snapshot->meta;
  if (meta.index <= commit_) {
    // Already have everything it covers.
    resp.index = commit_;
    Send(std::move(resp));
    return;
  }
  std::optional<Term> t = TermAt(meta.index);
  if (t && *t == meta.term) {
    // Our log already holds the snapshot's last entry, so it matches the leader's up to
    // there (log matching): just commit, keep the suffix, and apply from the log.
    CommitTo(meta.index);
    resp.index = meta.index;
    Send(std::move(resp));
    return;
  }
  // Replace the whole log with the snapshot.
  snapshot_ = m.snapshot;
  snapshot_index_ = meta.index;
  snapshot_term_ = meta.term;
  log_.clear();
  conf_history_.clear();
  base_membership_ = meta.membership;
  commit_ = meta.index;
  applied_ = meta.index;
  unstable_from_ = meta.index + 1;
  // Not durable until OnSnapshotPersisted; nothing after it is either.
  persisted_index_ = std::min(persisted_index_, meta.index - 1);
  MembershipMayHaveChanged();
  ready_.snapshot = snapshot_;
  ready_.committed_entries.clear();  // superseded by the snapshot
  resp.index = meta.index;
  Send(std::move(resp));
}

void Raft::OnSnapshotPersisted(Index index) {
  if (index == snapshot_index_ && persisted_index_ < index) persisted_index_ = index;
}

}  // namespace verdict::coordinator::raft
