// Value types of the Raft core: log entries, membership, snapshots, hard state and
// messages. Plain values; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verdict::coordinator::raft {

using NodeId = uint64_t;  // 0 means "none"
using Term = uint64_t;
using Index = uint64_t;

constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 0,      // application command; empty data = the leader's no-op at term start
  kConfChange = 1,  // data is an encoded ConfChange
};

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// The voting members of the group, each with the address peers and clients use to reach
// it. The core only looks at the ids; addresses ride along for the drivers.
struct Membership {
  std::map<NodeId, std::string> voters;

  bool Contains(NodeId id) const { return voters.count(id) != 0; }
  bool operator==(const Membership&) const = default;
};

std::string EncodeMembership(const Membership& m);
bool DecodeMembership(std::string_view in, Membership* m);

// A single-server membership change (Raft dissertation §4.1). It takes effect on a node
// as soon as the entry is in its log, committed or not; at most one may be uncommitted.
// kSetMembership appears only as entry 1 of a new cluster's log (the bootstrap entry,
// identical on every founding node); it cannot be proposed.
struct ConfChange {
  enum class Kind : uint8_t { kAddVoter = 0, kRemoveVoter = 1, kSetMembership = 2 };
  Kind kind = Kind::kAddVoter;
  NodeId node = kNoNode;
  std::string address;    // for kAddVoter
  Membership membership;  // for kSetMembership

  bool operator==(const ConfChange&) const = default;
};

std::string EncodeConfChange(const ConfChange& c);
bool DecodeConfChange(std::string_view in, ConfChange* c);

struct SnapshotMeta {
  Index index = 0;        // last entry the snapshot covers
  Term term = 0;          // term of that entry
  Membership membership;  // membership as of `index`

  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  // The state machine's serialized state. Shared, immutable: messages and the core may
  // hold the same snapshot without copying it.
  std::shared_ptr<const std::string> data;
};

// What must be durable before a node answers anything that depends on it.
// `commit` is a hint: persisting it lazily is safe (it never runs ahead of the log).
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool operator==(const HardState&) const = default;
};

enum class MessageType : uint8_t {
  kPreVote = 0,         // term = the term the sender would campaign in; index/log_term = last entry
  kPreVoteResp = 1,     // reject = !granted
  kVote = 2,            // index/log_term = sender's last entry; context = "transfer" if forced
  kVoteResp = 3,        // reject = !granted
  kAppend = 4,          // index/log_term = entry preceding `entries`; commit = leader commit
  kAppendResp = 5,      // !reject: index = last index now matching; reject: see reject_hint
  kHeartbeat = 6,       // commit = min(leader commit, follower match); context = read-index ctx
  kHeartbeatResp = 7,   // context echoed
  kSnapshot = 8,        // snapshot set
  kTimeoutNow = 9,      // leader transfer: campaign now, skipping pre-vote and the lease check
  kReadIndex = 10,      // follower -> leader: context = request id
  kReadIndexResp = 11,  // leader -> follower: index = read index, context echoed; reject = failed
};

const char* MessageTypeName(MessageType t);

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  Term log_term = 0;
  Index index = 0;
  std::vector<Entry> entries;
  Index commit = 0;
  bool reject = false;
  // On a rejected kAppend: the follower's hint for fast backtracking. reject_hint is the
  // highest index the leader should try next as `index`, and hint_term the follower's term
  // at that index (0 if its log is shorter). The leader skips a whole term per round trip.
  Index reject_hint = 0;
  Term hint_term = 0;
  std::optional<Snapshot> snapshot;
  std::string context;
};

// A linearizable read point: once the state machine has applied `index`, a read for
// `context` reflects every write acknowledged before ReadIndex() was called.
struct ReadState {
  Index index = 0;
  std::string context;
};

enum class Role : uint8_t { kFollower = 0, kPreCandidate = 1, kCandidate = 2, kLeader = 3 };
const char* RoleName(Role r);

}  // namespace verdict::coordinator::raft
