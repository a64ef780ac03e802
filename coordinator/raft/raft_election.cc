// Raft core: roles, pre-vote, elections, leader transfer.
#include <algorithm>

#include "coordinator/raft/raft.h"

namespace verdict::coordinator::raft {

namespace {
constexpr char kTransferContext[] = "transfer";
}  // namespace

size_t Raft::Quorum() const { return membership_.voters.size() / 2 + 1; }

bool Raft::IsVoter() const { return membership_.Contains(id_); }

bool Raft::InLease() const {
  return config_.check_quorum && leader_ != kNoNode && election_elapsed_ < config_.election_ticks;
}

void Raft::ResetTimers() {
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  randomized_election_timeout_ =
      config_.election_ticks + static_cast<int>(rng_() % config_.election_ticks);
}

void Raft::BecomeFollower(Term term, NodeId leader) {
  if (term > term_) {
    term_ = term;
    vote_ = kNoNode;
  }
  role_ = Role::kFollower;
  leader_ = leader;
  votes_.clear();
  progress_.clear();
  transfer_target_ = kNoNode;
  broadcast_pending_ = false;
  pending_reads_.clear();
  deferred_reads_.clear();
  ResetTimers();
}

void Raft::BecomePreCandidate() {
  role_ = Role::kPreCandidate;
  leader_ = kNoNode;
  votes_.clear();
  ResetTimers();
}

void Raft::BecomeCandidate() {
  ++term_;
  vote_ = id_;
  role_ = Role::kCandidate;
  leader_ = kNoNode;
  votes_.clear();
  ResetTimers();
}

void Raft::BecomeLeader() {
  role_ = Role::kLeader;
  leader_ = id_;
  votes_.clear();
  transfer_target_ = kNoNode;
  ResetTimers();
  progress_.clear();
  for (const auto& [id, address] : membership_.voters) {
    if (id == id_) continue;
    Progress pr;
    pr.next = last_index() + 1;
    pr.recent_active = true;  // give everyone an election timeout before check-quorum
    progress_[id] = pr;
  }
  // Commit an entry of our own term at once: it commits everything before it (figure 8),
  // enables read-index, and gates membership changes.
  AppendEntry(EntryType::kNormal, "");
  pending_conf_index_ = last_index();
  BroadcastAppend(/*send_if_empty=*/true);
  if (progress_.empty()) MaybeCommit();
}

void Raft::Campaign(bool forced) {
  if (config_.pre_vote && !forced) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  TallyVote(id_, true);
  if (role_ != Role::kPreCandidate && role_ != Role::kCandidate) return;  // won alone
  bool pre = role_ == Role::kPreCandidate;
  for (const auto& [id, address] : membership_.voters) {
    if (id == id_) continue;
    Message m;
    m.type = pre ? MessageType::kPreVote : MessageType::kVote;
    m.to = id;
    m.term = pre ? term_ + 1 : term_;
    m.index = last_index();
    m.log_term = last_term();
    if (forced) m.context = kTransferContext;
    Send(std::move(m));
  }
}

void Raft::TallyVote(NodeId from, bool granted) {
  votes_.emplace(from, granted);  // the first answer from a node counts
  if (!membership_.Contains(from)) return;
  size_t yes = 0, no = 0;
  for (const auto& [id, g] : votes_) {
    if (!membership_.Contains(id)) continue;
    (g ? yes : no)++;
  }
  if (yes >= Quorum()) {
    if (role_ == Role::kPreCandidate) {
      // The real election: bypasses nothing; the lease check applies to it as well.
      BecomeCandidate();
      TallyVote(id_, true);
      if (role_ != Role::kCandidate) return;
      for (const auto& [id, address] : membership_.voters) {
        if (id == id_) continue;
        Message m;
        m.type = MessageType::kVote;
        m.to = id;
        m.index = last_index();
        m.log_term = last_term();
        Send(std::move(m));
      }
    } else {
      BecomeLeader();
    }
  } else if (no >= Quorum()) {
    BecomeFollower(term_, kNoNode);
  }
}

void Raft::HandleVoteRequest(const Message& m) {
  bool pre = m.type == MessageType::kPreVote;
  // After Step's term handling, a real vote request has m.term == term_. A pre-vote is
  // for a future term; one for our own term is granted only where a vote would be.
  bool can_vote =
      vote_ == m.from || (vote_ == kNoNode && leader_ == kNoNode) || (pre && m.term > term_);
  Message resp;
  resp.type = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  resp.to = m.from;
  if (can_vote && IsUpToDate(m.index, m.log_term)) {
    if (pre) {
      resp.term = m.term;
    } else {
      vote_ = m.from;
      election_elapsed_ = 0;
    }
  } else {
    resp.reject = true;
  }
  Send(std::move(resp));
}

Status Raft::TransferLeadership(NodeId target) {
  if (role_ != Role::kLeader) return Status::NotLeader("not the leader");
  if (target == id_) return Status::InvalidArgument("already the leader");
  auto it = progress_.find(target);
  if (it == progress_.end()) return Status::InvalidArgument("target is not a voter");
  transfer_target_ = target;
  transfer_elapsed_ = 0;
  if (it->second.match == last_index()) {
    Message m;
    m.type = MessageType::kTimeoutNow;
    m.to = target;
    Send(std::move(m));
  } else {
    SendAppends(target, /*send_if_empty=*/true);
  }
  return Status::OK();
}

}  // namespace verdict::coordinator::raft
