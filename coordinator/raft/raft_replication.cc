// Raft core: log replication (pipelined, with fast backtracking), heartbeats, commit.
#include <algorithm>

#include "coordinator/raft/raft.h"

namespace verdict::coordinator::raft {

namespace {
constexpr size_t kEntryOverheadBytes = 24;
}  // namespace

// ---- leader side ----

void Raft::BroadcastAppend(bool send_if_empty) {
  for (auto& [id, pr] : progress_) SendAppends(id, send_if_empty);
}

bool Raft::SendAppends(NodeId to, bool send_if_empty) {
  bool sent = SendOneAppend(to, send_if_empty);
  if (!sent) return false;
  // In kReplicate, keep the pipe full: more messages until caught up or the window is full.
  Progress& pr = progress_.at(to);
  while (pr.state == Progress::State::kReplicate && pr.next <= last_index() &&
         SendOneAppend(to, /*send_if_empty=*/false)) {
  }
  return true;
}

bool Raft::SendOneAppend(NodeId to, bool send_if_empty) {
  Progress& pr = progress_.at(to);
  switch (pr.state) {
    case Progress::State::kProbe:
      if (pr.probe_sent) return false;
      break;
    case Progress::State::kReplicate:
      if (pr.inflight.size() >= config_.max_inflight_msgs) return false;
      break;
    case Progress::State::kSnapshot:
      return false;
  }
  Index prev = pr.next - 1;
  std::optional<Term> prev_term = TermAt(prev);
  if (!prev_term) {
    // The entries it needs are compacted away.
    SendSnapshot(to);
    return true;
  }
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.index = prev;
  m.log_term = *prev_term;
  m.commit = commit_;
  size_t bytes = 0;
  for (Index i = pr.next; i <= last_index() && m.entries.size() < config_.max_entries_per_msg;
       ++i) {
    const Entry& e = At(i);
    if (!m.entries.empty() &&
        bytes + e.data.size() + kEntryOverheadBytes > config_.max_bytes_per_msg) {
      break;
    }
    bytes += e.data.size() + kEntryOverheadBytes;
    m.entries.push_back(e);
  }
  if (m.entries.empty() && !send_if_empty) return false;
  if (pr.state == Progress::State::kReplicate) {
    if (!m.entries.empty()) {
      pr.next = m.entries.back().index + 1;
      pr.inflight.push_back(m.entries.back().index);
    }
  } else {
    pr.probe_sent = true;
  }
  Send(std::move(m));
  return true;
}

void Raft::SendHeartbeat(NodeId to, const std::string& context) {
  const Progress& pr = progress_.at(to);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  // Never tell a follower to commit past what it is known to hold in agreement with us.
  m.commit = std::min(pr.match, commit_);
  m.context = context;
  Send(std::move(m));
}

void Raft::BroadcastHeartbeat(const std::string& context) {
  for (const auto& [id, pr] : progress_) SendHeartbeat(id, context);
}

void Raft::HandleAppendResp(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;

  if (m.reject) {
    // Stale rejections (of an index below what is known to match, or of a probe we did
    // not send last) are ignored.
    if (m.index <= pr.match) return;
    if (pr.state == Progress::State::kProbe && m.index != pr.next - 1) return;
    if (pr.state == Progress::State::kSnapshot) return;
    // Fast backtracking: the follower says its log matches at most up to reject_hint, with
    // term hint_term there. Skip every entry of ours above the last one whose term is
    // <= hint_term: one round trip per divergent term, not per entry.
    Index probe = m.reject_hint;
    if (m.hint_term > 0) probe = FindConflictByTerm(m.reject_hint, m.hint_term);
    pr.state = Progress::State::kProbe;
    pr.inflight.clear();
    pr.probe_sent = false;
    pr.next = std::max(pr.match + 1, std::min(m.index, probe + 1));
    SendAppends(m.from, /*send_if_empty=*/true);
    return;
  }

  bool advanced = m.index > pr.match;
  if (advanced) pr.match = m.index;
  pr.next = std::max(pr.next, m.index + 1);
  switch (pr.state) {
    case Progress::State::kProbe:
      pr.state = Progress::State::kReplicate;
      pr.next = pr.match + 1;
      pr.probe_sent = false;
      pr.inflight.clear();
      break;
    case Progress::State::kSnapshot:
      if (pr.match >= pr.pending_snapshot) {
        pr.state = Progress::State::kReplicate;
        pr.next = pr.match + 1;
        pr.inflight.clear();
      }
      break;
    case Progress::State::kReplicate: {
      auto keep = std::upper_bound(pr.inflight.begin(), pr.inflight.end(), m.index);
      pr.inflight.erase(pr.inflight.begin(), keep);
      break;
    }
  }
  if (advanced) MaybeCommit();
  if (role_ != Role::kLeader) return;  // MaybeCommit may have removed us
  if (m.from == transfer_target_ && pr.match == last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = m.from;
    Send(std::move(t));
  }
  SendAppends(m.from, /*send_if_empty=*/false);
}

void Raft::HandleHeartbeatResp(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;
  pr.probe_sent = false;
  if (pr.state == Progress::State::kReplicate && pr.inflight.size() >= config_.max_inflight_msgs) {
    // The window is full and may never drain if messages were lost: free one slot so an
    // append goes out; a gap makes the follower reject it and we fall back to probing.
    pr.inflight.erase(pr.inflight.begin());
  }
  // Behind: resend. In kReplicate `next` may already be past entries that were lost; an
  // empty append at next-1 then makes the follower reject it, and we probe back.
  if (pr.match < last_index()) SendAppends(m.from, /*send_if_empty=*/true);
  if (!m.context.empty()) HandleReadIndexAck(m.context, m.from);
}

void Raft::MaybeCommit() {
  std::vector<Index> matches;
  for (const auto& [id, address] : membership_.voters) {
    if (id == id_) {
      matches.push_back(persisted_index_);
    } else {
      auto it = progress_.find(id);
      matches.push_back(it == progress_.end() ? 0 : it->second.match);
    }
  }
  if (matches.empty()) return;
  std::sort(matches.begin(), matches.end(), std::greater<Index>());
  Index candidate = matches[Quorum() - 1];
  // Figure 8: only an entry of the current term is committed by counting replicas.
  if (candidate <= commit_ || TermAt(candidate) != term_) return;
  CommitTo(candidate);
  // Tell followers the new commit index promptly.
  BroadcastAppend(/*send_if_empty=*/true);
  FlushDeferredReads();
  if (!IsVoter() && (conf_history_.empty() || conf_history_.rbegin()->first <= commit_)) {
    // The change that removed this leader is committed: hand over by stepping down; the
    // remaining voters elect a leader among themselves.
    BecomeFollower(term_, kNoNode);
  }
}

void Raft::CommitTo(Index index) {
  if (index <= commit_) return;
  commit_ = std::min(index, last_index());
}

// ---- follower side ----

void Raft::HandleAppend(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppendResp;
  resp.to = m.from;
  if (m.index < commit_) {
    // Everything up to our commit index already matches the leader.
    resp.index = commit_;
    Send(std::move(resp));
    return;
  }
  Index last_new = 0;
  if (MaybeAppend(m.index, m.log_term, m.entries, &last_new)) {
    CommitTo(std::min(m.commit, last_new));
    resp.index = last_new;
    Send(std::move(resp));
    return;
  }
  // Mismatch at m.index. Hint: the last index <= m.index whose term is <= the leader's
  // term there; the leader continues from its own last entry of a term <= ours.
  resp.reject = true;
  resp.index = m.index;
  resp.reject_hint = FindConflictByTerm(std::min(m.index, last_index()), m.log_term);
  resp.hint_term = TermAt(resp.reject_hint).value_or(0);
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  CommitTo(std::min(m.commit, last_index()));
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  Send(std::move(resp));
}

}  // namespace verdict::coordinator::raft
