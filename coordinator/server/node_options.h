// NodeOptions: everything a coordinator node is configured with (from flags or a config
// file), plus the parser of the --cluster syntax. Plain values; thread-safe
// to read once built.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "coordinator/raft/types.h"

namespace verdict::coordinator::server {

namespace raft = ::verdict::coordinator::raft;

struct NodeOptions {
  raft::NodeId id = raft::kNoNode;
  raft::Membership cluster;  // --cluster: every voter's id and HOST:PORT
  std::string data_dir;
  int tick_ms = 50;
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  // Applied entries between two local snapshots (log compaction).
  uint64_t snapshot_entries = 10000;
  // false = --unsafe-no-fsync (benchmarks only).
  bool sync = true;
  int metrics_port = 0;  // 0 = no metrics endpoint
  // Largest Thrift frame accepted or sent (a snapshot travels in one frame).
  uint32_t max_frame_bytes = 128u << 20;
  // How long a client call waits for its proposal or read before answering UNKNOWN.
  int request_timeout_ms = 5000;

  // Transactions (the protocol engine, txn/engine_types.h EngineConfig).
  int64_t default_deadline_ms = 30'000;  // Begin without a deadline
  int64_t max_deadline_ms = 3'600'000;
  int64_t vote_timeout_ms = 5'000;  // PREPARE sent -> every vote in, or ABORT
  int64_t retry_initial_ms = 100;   // first resend of an unanswered participant call
  int64_t retry_max_ms = 2'000;     // cap of the exponential backoff
  // Calls to participant agents: per-call timeout and connections per agent.
  int participant_rpc_timeout_ms = 3'000;
  int participant_connections = 8;

  // This node's HOST:PORT (from `cluster`).
  const std::string& address() const { return cluster.voters.at(id); }
};

// Parses "1=HOST:PORT,2=HOST:PORT,...": ids are positive and distinct, addresses valid and
// distinct. InvalidArgument naming the bad item otherwise.
Status ParseCluster(std::string_view spec, raft::Membership* cluster);

// Checks the cross-field rules (id in the cluster, positive timings, ...).
Status ValidateOptions(const NodeOptions& options);

}  // namespace verdict::coordinator::server
