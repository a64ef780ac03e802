// RaftService: the messages coordinator nodes exchange. Mirrors coordinator/raft/types.h;
// coordinator/server/raft_codec.cc converts between the two.

include "types.thrift"

namespace cpp verdict.rpc
namespace py verdict_rpc.raft

enum EntryType {
  NORMAL = 0,
  CONF_CHANGE = 1,
}

struct Entry {
  1: i64 term,
  2: i64 index,
  3: EntryType type,
  4: binary data,
}

struct SnapshotMeta {
  1: i64 index,
  2: i64 term,
  3: list<types.NodeAddress> voters,
}

struct Snapshot {
  1: SnapshotMeta meta,
  2: binary data,  // the state machine's serialized state
}

enum MessageType {
  PRE_VOTE = 0,
  PRE_VOTE_RESP = 1,
  VOTE = 2,
  VOTE_RESP = 3,
  APPEND = 4,
  APPEND_RESP = 5,
  HEARTBEAT = 6,
  HEARTBEAT_RESP = 7,
  SNAPSHOT = 8,
  TIMEOUT_NOW = 9,
  READ_INDEX = 10,
  READ_INDEX_RESP = 11,
}

struct RaftMessage {
  1: MessageType type,
  2: i64 from_node,
  3: i64 to_node,
  4: i64 term,
  5: i64 log_term,
  6: i64 index,
  7: list<Entry> entries,
  8: i64 commit,
  9: bool reject,
  10: i64 reject_hint,
  11: i64 hint_term,
  12: optional Snapshot snapshot,
  13: binary context,
}

service RaftService {
  // A batch of messages from one peer, in the order it sent them. One-way: a node never
  // waits for a peer, so replication is pipelined over one persistent connection per peer.
  // Raft tolerates loss: a malformed or misaddressed message is dropped.
  oneway void Deliver(1: list<RaftMessage> messages),
}
