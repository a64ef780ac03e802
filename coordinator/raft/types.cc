#include "coordinator/raft/types.h"

#include "common/coding.h"

namespace verdict::coordinator::raft {

std::string EncodeMembership(const Membership& m) {
  std::string out;
  PutVarint64(&out, m.voters.size());
  for (const auto& [id, address] : m.voters) {
    PutVarint64(&out, id);
    PutLengthPrefixed(&out, address);
  }
  return out;
}

bool DecodeMembership(std::string_view in, Membership* m) {
  uint64_t n;
  if (!GetVarint64(&in, &n) || n > in.size()) return false;
  Membership result;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id;
    std::string_view address;
    if (!GetVarint64(&in, &id) || id == kNoNode || !GetLengthPrefixed(&in, &address)) {
      return false;
    }
    if (!result.voters.emplace(id, std::string(address)).second) return false;
  }
  if (!in.empty()) return false;
  *m = std::move(result);
  return true;
}

std::string EncodeConfChange(const ConfChange& c) {
  std::string out;
  out.push_back(static_cast<char>(c.kind));
  if (c.kind == ConfChange::Kind::kSetMembership) {
    out += EncodeMembership(c.membership);
    return out;
  }
  PutVarint64(&out, c.node);
  PutLengthPrefixed(&out, c.address);
  return out;
}

bool DecodeConfChange(std::string_view in, ConfChange* c) {
  if (in.empty()) return false;
  uint8_t kind = static_cast<uint8_t>(in[0]);
  if (kind > static_cast<uint8_t>(ConfChange::Kind::kSetMembership)) return false;
  in.remove_prefix(1);
  if (kind == static_cast<uint8_t>(ConfChange::Kind::kSetMembership)) {
    ConfChange result;
    result.kind = ConfChange::Kind::kSetMembership;
    if (!DecodeMembership(in, &result.membership) || result.membership.voters.empty()) {
      return false;
    }
    *c = std::move(result);
    return true;
  }
  uint64_t node;
  std::string_view address;
  if (!GetVarint64(&in, &node) || node == kNoNode || !GetLengthPrefixed(&in, &address) ||
      !in.empty()) {
    return false;
  }
  c->kind = static_cast<ConfChange::Kind>(kind);
  c->node = node;
  c->address = std::string(address);
  c->membership = Membership();
  return true;
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResp:
      return "PreVoteResp";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResp:
      return "VoteResp";
    case MessageType::kAppend:
      return "Append";
    case MessageType::kAppendResp:
      return "AppendResp";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResp:
      return "HeartbeatResp";
    case MessageType::kSnapshot:
      return "Snapshot";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kReadIndex:
      return "ReadIndex";
    case MessageType::kReadIndexResp:
      return "ReadIndexResp";
  }
  return "?";
}

const char* RoleName(Role r) {
  switch (r) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

}  // namespace verdict::coordinator::raft
