// Raft core: single-server membership changes, in force as soon as they are in the log.
#include "common/panic.h"
#include "coordinator/raft/raft.h"

namespace verdict::coordinator::raft {

Membership Raft::MembershipAt(Index index) const {
  Membership m = base_membership_;
  for (auto it = conf_history_.begin(); it != conf_history_.end() && it->first <= index; ++it) {
    m = it->second;
  }
  return m;
}

void Raft::MembershipMayHaveChanged() {
  // Recompute the history entries (a new entry is recorded with an empty placeholder).
  Membership m = base_membership_;
  for (auto& [index, after] : conf_history_) {
    ConfChange cc;
    if (!DecodeConfChange(At(index).data, &cc)) {
      VERDICT_PANIC("undecodable membership change at index %llu",
                    static_cast<unsigned long long>(index));
    }
    switch (cc.kind) {
      case ConfChange::Kind::kAddVoter:
        m.voters[cc.node] = cc.address;
        break;
      case ConfChange::Kind::kRemoveVoter:
        m.voters.erase(cc.node);
        break;
      case ConfChange::Kind::kSetMembership:
        m = cc.membership;
        break;
    }
    after = m;
  }
  if (m == membership_) return;
  membership_ = std::move(m);
  if (role_ != Role::kLeader) return;
  // Track new voters; forget removed ones.
  for (auto it = progress_.begin(); it != progress_.end();) {
    it = membership_.Contains(it->first) ? std::next(it) : progress_.erase(it);
  }
  for (const auto& [id, address] : membership_.voters) {
    if (id == id_ || progress_.count(id)) continue;
    Progress pr;
    pr.next = last_index() + 1;
    pr.recent_active = true;
    progress_[id] = pr;
  }
  if (transfer_target_ != kNoNode && !membership_.Contains(transfer_target_)) {
    transfer_target_ = kNoNode;
  }
}

Status Raft::ProposeConfChange(const ConfChange& change, Index* index, Term* term) {
  if (role_ != Role::kLeader) return Status::NotLeader("not the leader");
  if (transfer_target_ != kNoNode) return Status::NotLeader("leadership transfer under way");
  if (change.kind == ConfChange::Kind::kSetMembership) {
    return Status::InvalidArgument("the membership is set only by the bootstrap entry");
  }
  if (change.node == kNoNode) return Status::InvalidArgument("no node id");
  if (pending_conf_index_ > commit_) {
    return Status::FailedPrecondition("a membership change is still uncommitted");
  }
  bool member = membership_.Contains(change.node);
  if (change.kind == ConfChange::Kind::kAddVoter && member) {
    return Status::FailedPrecondition("node is already a voter");
  }
  if (change.kind == ConfChange::Kind::kRemoveVoter) {
    if (!member) return Status::FailedPrecondition("node is not a voter");
    if (membership_.voters.size() == 1) {
      return Status::FailedPrecondition("cannot remove the last voter");
    }
  }
  AppendEntry(EntryType::kConfChange, EncodeConfChange(change));
  pending_conf_index_ = last_index();
  if (index) *index = last_index();
  if (term) *term = term_;
  broadcast_pending_ = true;
  // Quorum may have shrunk (removal) or the new member may be the only one missing.
  MaybeCommit();
  return Status::OK();
}

}  // namespace verdict::coordinator::raft
