// Raft core: read-index for linearizable reads without writing to the log.
#include <string>

#include "coordinator/raft/raft.h"

namespace verdict::coordinator::raft {

void Raft::ReadIndex(std::string context) {
  if (role_ == Role::kLeader) {
    StartRead(std::move(context), kNoNode);
    return;
  }
  if (leader_ == kNoNode) return;  // dropped: the caller times out and retries
  Message m;
  m.type = MessageType::kReadIndex;
  m.to = leader_;
  m.context = std::move(context);
  Send(std::move(m));
}

void Raft::StartRead(std::string context, NodeId requester) {
  if (TermAt(commit_) != term_) {
    // Until an entry of this term commits we do not know the latest commit index.
    deferred_reads_.emplace_back(std::move(context), requester);
    return;
  }
  if (progress_.empty()) {
    // The only voter: the commit index is current.
    ReleaseRead(commit_, context, requester);
    return;
  }
  PendingRead read;
  read.index = commit_;
  read.context = std::move(context);
  read.requester = requester;
  read.token = "r" + std::to_string(term_) + "." + std::to_string(++read_seq_);
  if (IsVoter()) read.acks[id_] = true;
  BroadcastHeartbeat(read.token);
  pending_reads_.push_back(std::move(read));
}

void Raft::HandleReadIndexAck(const std::string& token, NodeId from) {
  size_t confirmed = pending_reads_.size();
  for (size_t i = 0; i < pending_reads_.size(); ++i) {
    PendingRead& read = pending_reads_[i];
    if (read.token != token) continue;
    read.acks[from] = true;
    size_t acks = 0;
    for (const auto& [id, ok] : read.acks) acks += membership_.Contains(id) ? 1 : 0;
    if (acks >= Quorum()) confirmed = i;
    break;
  }
  if (confirmed == pending_reads_.size()) return;
  // A quorum still followed us when this read's heartbeat went out, which was after every
  // earlier read's: they are all confirmed.
  std::vector<PendingRead> done(pending_reads_.begin(), pending_reads_.begin() + confirmed + 1);
  pending_reads_.erase(pending_reads_.begin(), pending_reads_.begin() + confirmed + 1);
  for (const PendingRead& read : done) ReleaseRead(read.index, read.context, read.requester);
}

void Raft::ReleaseRead(Index index, const std::string& context, NodeId requester) {
  if (requester == kNoNode) {
    ready_.read_states.push_back(ReadState{index, context});
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResp;
  m.to = requester;
  m.index = index;
  m.context = context;
  Send(std::move(m));
}

void Raft::FlushDeferredReads() {
  if (deferred_reads_.empty() || TermAt(commit_) != term_) return;
  auto reads = std::move(deferred_reads_);
  deferred_reads_.clear();
  for (auto& [context, requester] : reads) StartRead(std::move(context), requester);
}

}  // namespace verdict::coordinator::raft
