// Raft core: construction, the in-memory log, ticks, Step dispatch and Ready.
#include "coordinator/raft/raft.h"

#include <algorithm>

#include "common/panic.h"

namespace verdict::coordinator::raft {

namespace {

bool IsResponseToDurableState(MessageType t) {
  // A vote grant promises the vote is on disk; an append response promises the entries
  // are. Candidates' vote requests wait too, so a crashed candidate never campaigns twice
  // in a term on the strength of a vote for itself it forgot.
  return t == MessageType::kVote || t == MessageType::kVoteResp || t == MessageType::kAppendResp;
}

}  // namespace

Raft::Raft(const Config& config, RestoredState restored)
    : config_(config), id_(config.id), rng_(config.seed) {
  VERDICT_CHECK(id_ != kNoNode);
  VERDICT_CHECK(config_.election_ticks > 0 && config_.heartbeat_ticks > 0);
  VERDICT_CHECK(config_.heartbeat_ticks < config_.election_ticks);
  VERDICT_CHECK(config_.max_inflight_msgs > 0);

  term_ = restored.hard_state.term;
  vote_ = restored.hard_state.vote;
  if (restored.snapshot) {
    snapshot_ = std::move(restored.snapshot);
    snapshot_index_ = snapshot_->meta.index;
    snapshot_term_ = snapshot_->meta.term;
    base_membership_ = snapshot_->meta.membership;
  }
  log_ = std::move(restored.entries);
  bool bootstrap = !snapshot_ && log_.empty() && !config_.initial_membership.voters.empty();
  if (bootstrap) {
    ConfChange cc;
    cc.kind = ConfChange::Kind::kSetMembership;
    cc.membership = config_.initial_membership;
    log_.push_back(Entry{1, 1, EntryType::kConfChange, EncodeConfChange(cc)});
    term_ = std::max<Term>(term_, 1);
  }
  for (size_t i = 0; i < log_.size(); ++i) {
    if (log_[i].index != snapshot_index_ + 1 + i) {
      VERDICT_PANIC("restored log is not contiguous: entry %zu has index %llu, expected %llu", i,
                    static_cast<unsigned long long>(log_[i].index),
                    static_cast<unsigned long long>(snapshot_index_ + 1 + i));
    }
    if ((i > 0 && log_[i].term < log_[i - 1].term) || (i == 0 && log_[i].term < snapshot_term_)) {
      VERDICT_PANIC("restored log has an impossible term at index %llu",
                    static_cast<unsigned long long>(log_[i].index));
    }
    if (log_[i].type == EntryType::kConfChange) {
      // Decoded when the membership is rebuilt below.
      conf_history_[log_[i].index] = {};
    }
  }
  // A torn batch may have kept entries of a newer term but not the hard state written
  // with them. No vote in that term can have been acknowledged (that would have needed a
  // sync), so adopting the term without a vote is safe.
  if (!log_.empty() && log_.back().term > term_) {
    term_ = log_.back().term;
    vote_ = kNoNode;
  }
  if (snapshot_term_ > term_) {
    term_ = snapshot_term_;
    vote_ = kNoNode;
  }
  // The stored commit index is a hint written in the same batch as the entries; a torn
  // batch may have kept it while losing entries it covers. Those entries were never
  // acknowledged, so clamping is safe.
  commit_ = std::max(snapshot_index_, std::min(restored.hard_state.commit, last_index()));
  applied_ = snapshot_index_;
  persisted_index_ = last_index();
  unstable_from_ = last_index() + 1;
  if (bootstrap) {
    commit_ = 1;
    persisted_index_ = 0;
    unstable_from_ = 1;
  }
  last_hard_state_ = HardState{term_, vote_, commit_};
  MembershipMayHaveChanged();
  ResetTimers();
}

Raft::~Raft() = default;

// ---- log ----

Index Raft::first_index() const { return snapshot_index_ + 1; }
Index Raft::last_index() const { return snapshot_index_ + log_.size(); }
Term Raft::last_term() const { return log_.empty() ? snapshot_term_ : log_.back().term; }

std::optional<Term> Raft::TermAt(Index index) const {
  if (index == snapshot_index_) return snapshot_term_;
  if (index < snapshot_index_ || index > last_index()) return std::nullopt;
  return log_[index - snapshot_index_ - 1].term;
}

const Entry& Raft::At(Index index) const {
  VERDICT_CHECK(index > snapshot_index_ && index <= last_index());
  return log_[index - snapshot_index_ - 1];
}

std::vector<Entry> Raft::Entries(Index lo, Index hi) const {
  VERDICT_CHECK(lo >= first_index() && hi <= last_index() + 1 && lo <= hi);
  return std::vector<Entry>(log_.begin() + (lo - first_index()),
                            log_.begin() + (hi - first_index()));
}

void Raft::AppendEntry(EntryType type, std::string data) {
  Entry e;
  e.term = term_;
  e.index = last_index() + 1;
  e.type = type;
  e.data = std::move(data);
  if (type == EntryType::kConfChange) conf_history_[e.index] = {};
  log_.push_back(std::move(e));
  if (type == EntryType::kConfChange) MembershipMayHaveChanged();
}

void Raft::TruncateFrom(Index index) {
  VERDICT_CHECK(index > commit_ && index > snapshot_index_);
  if (index > last_index()) return;
  log_.resize(index - first_index());
  unstable_from_ = std::min(unstable_from_, index);
  persisted_index_ = std::min(persisted_index_, index - 1);
  bool conf_dropped = conf_history_.lower_bound(index) != conf_history_.end();
  conf_history_.erase(conf_history_.lower_bound(index), conf_history_.end());
  if (conf_dropped) MembershipMayHaveChanged();
}

bool Raft::MaybeAppend(Index prev_index, Term prev_term, const std::vector<Entry>& entries,
                       Index* last_new) {
  std::optional<Term> t = TermAt(prev_index);
  if (!t || *t != prev_term) return false;
  *last_new = prev_index + entries.size();
  bool conf_added = false;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.index != prev_index + 1 + i) return false;  // malformed message: refuse it
    if (e.index <= snapshot_index_) continue;         // covered by the snapshot
    if (e.index <= last_index()) {
      if (At(e.index).term == e.term) continue;  // already have it
      if (e.index <= commit_) {
        VERDICT_PANIC(
            "leader %llu sent entry %llu (term %llu) conflicting with committed "
            "entry (term %llu)",
            static_cast<unsigned long long>(leader_), static_cast<unsigned long long>(e.index),
            static_cast<unsigned long long>(e.term),
            static_cast<unsigned long long>(At(e.index).term));
      }
      TruncateFrom(e.index);
    }
    log_.push_back(e);
    if (e.type == EntryType::kConfChange) {
      conf_history_[e.index] = {};
      conf_added = true;
    }
  }
  if (conf_added) MembershipMayHaveChanged();
  return true;
}

bool Raft::IsUpToDate(Index index, Term term) const {
  return term > last_term() || (term == last_term() && index >= last_index());
}

Index Raft::FindConflictByTerm(Index index, Term term) const {
  index = std::min(index, last_index());
  while (index > snapshot_index_) {
    if (At(index).term <= term) return index;
    --index;
  }
  return index;
}

// ---- events ----

void Raft::Tick() {
  if (role_ == Role::kLeader) {
    ++heartbeat_elapsed_;
    ++election_elapsed_;
    for (auto& [id, pr] : progress_) {
      if (pr.state == Progress::State::kSnapshot &&
          ++pr.snapshot_elapsed >= config_.election_ticks) {
        // The snapshot (or its answer) was probably lost: probe again.
        pr.state = Progress::State::kProbe;
        pr.probe_sent = false;
        pr.next = pr.match + 1;
      }
    }
    if (transfer_target_ != kNoNode && ++transfer_elapsed_ >= config_.election_ticks) {
      transfer_target_ = kNoNode;  // abandon the transfer; accept proposals again
    }
    if (election_elapsed_ >= config_.election_ticks) {
      election_elapsed_ = 0;
      if (config_.check_quorum) {
        size_t active = IsVoter() ? 1 : 0;
        for (auto& [id, pr] : progress_) {
          if (pr.recent_active) ++active;
          pr.recent_active = false;
        }
        if (active < Quorum()) {
          BecomeFollower(term_, kNoNode);
          return;
        }
      }
    }
    if (heartbeat_elapsed_ >= config_.heartbeat_ticks) {
      heartbeat_elapsed_ = 0;
      BroadcastHeartbeat("");
    }
    return;
  }
  ++election_elapsed_;
  if (election_elapsed_ >= randomized_election_timeout_ && IsVoter()) {
    Campaign(/*forced=*/false);
  }
}

void Raft::Step(const Message& m) {
  if (m.from == id_ || m.from == kNoNode || (m.to != kNoNode && m.to != id_)) return;

  if (m.term > term_) {
    bool is_vote_request = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
    if (is_vote_request && m.context != "transfer" && InLease()) {
      // We heard from a live leader within the election timeout: a disruptive candidate
      // (e.g. a node rejoining after a partition) must not depose it.
      return;
    }
    if (m.type == MessageType::kPreVote || (m.type == MessageType::kPreVoteResp && !m.reject)) {
      // Pre-votes are about a future term; they change no state.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnapshot) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat) {
      // A stale leader. Tell it our term so it steps down; with pre-vote and check-quorum
      // it could otherwise keep a partitioned-and-healed follower from ever rejoining.
      Message resp;
      resp.type = MessageType::kAppendResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote || m.type == MessageType::kVote) {
      // Tell a stale (pre-)candidate our term. It may not be in our membership, so
      // nothing else we send would ever reach it (found by verdict-sim after a removal).
      Message resp;
      resp.type =
          m.type == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
      resp.to = m.from;
      resp.reject = true;
      Send(std::move(resp));
    }
    return;
  }

  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    HandleVoteRequest(m);
    return;
  }
  switch (role_) {
    case Role::kLeader:
      StepLeader(m);
      break;
    case Role::kCandidate:
    case Role::kPreCandidate:
      StepCandidate(m);
      break;
    case Role::kFollower:
      StepFollower(m);
      break;
  }
}

void Raft::StepLeader(const Message& m) {
  switch (m.type) {
    case MessageType::kAppendResp:
      HandleAppendResp(m);
      break;
    case MessageType::kHeartbeatResp:
      HandleHeartbeatResp(m);
      break;
    case MessageType::kReadIndex:
      StartRead(m.context, m.from);
      break;
    default:
      break;  // stale or irrelevant for a leader
  }
}

void Raft::StepCandidate(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      BecomeFollower(m.term, m.from);
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      break;
    case MessageType::kSnapshot:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      break;
    case MessageType::kPreVoteResp:
      if (role_ != Role::kPreCandidate) break;
      // A grant carries the term we would campaign in; anything else is stale.
      if (!m.reject && m.term != term_ + 1) break;
      TallyVote(m.from, !m.reject);
      break;
    case MessageType::kVoteResp:
      if (role_ != Role::kCandidate) break;
      TallyVote(m.from, !m.reject);
      break;
    default:
      break;
  }
}

void Raft::StepFollower(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      leader_ = m.from;
      election_elapsed_ = 0;
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      leader_ = m.from;
      election_elapsed_ = 0;
      HandleHeartbeat(m);
      break;
    case MessageType::kSnapshot:
      leader_ = m.from;
      election_elapsed_ = 0;
      HandleSnapshot(m);
      break;
    case MessageType::kTimeoutNow:
      if (IsVoter()) Campaign(/*forced=*/true);
      break;
    case MessageType::kReadIndexResp:
      if (!m.reject) ready_.read_states.push_back(ReadState{m.index, m.context});
      break;
    default:
      break;
  }
}

Status Raft::Propose(std::string data, Index* index, Term* term) {
  if (role_ != Role::kLeader) return Status::NotLeader("not the leader");
  if (transfer_target_ != kNoNode) {
    return Status::NotLeader("leadership transfer under way");
  }
  AppendEntry(EntryType::kNormal, std::move(data));
  if (index) *index = last_index();
  if (term) *term = term_;
  broadcast_pending_ = true;
  if (progress_.empty()) MaybeCommit();  // single voter: commits once persisted
  return Status::OK();
}

void Raft::OnPersisted(Index index, Term term) {
  std::optional<Term> t = TermAt(index);
  if (!t || *t != term || index <= persisted_index_) return;  // superseded or duplicate
  // Only entries handed out for persisting can have been persisted.
  persisted_index_ = std::min(index, unstable_from_ - 1);
  if (role_ == Role::kLeader) MaybeCommit();
}

bool Raft::HasReady() const {
  return !ready_.Empty() || unstable_from_ <= last_index() ||
         HardState{term_, vote_, commit_} != last_hard_state_ ||
         std::min(commit_, persisted_index_) > applied_ ||
         (broadcast_pending_ && role_ == Role::kLeader);
}

Ready Raft::GetReady() {
  if (broadcast_pending_ && role_ == Role::kLeader) BroadcastAppend(/*send_if_empty=*/false);
  broadcast_pending_ = false;

  Ready rd = std::move(ready_);
  ready_ = Ready();
  if (unstable_from_ <= last_index()) {
    rd.entries = Entries(std::max(unstable_from_, first_index()), last_index() + 1);
    unstable_from_ = last_index() + 1;
  }
  HardState hs{term_, vote_, commit_};
  if (hs != last_hard_state_) {
    rd.hard_state = hs;
    last_hard_state_ = hs;
  }
  Index apply_to = std::min(commit_, persisted_index_);
  if (apply_to > applied_) {
    rd.committed_entries = Entries(applied_ + 1, apply_to + 1);
    applied_ = apply_to;
  }
  return rd;
}

void Raft::Send(Message m) {
  m.from = id_;
  if (m.term == 0) m.term = term_;
  if (IsResponseToDurableState(m.type)) {
    ready_.messages_after_persist.push_back(std::move(m));
  } else {
    ready_.messages.push_back(std::move(m));
  }
}

const Progress* Raft::progress(NodeId id) const {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

const Membership& Raft::membership() const { return membership_; }

}  // namespace verdict::coordinator::raft
