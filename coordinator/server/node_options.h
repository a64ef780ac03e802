// NodeOptions: everything a coordinator node is configured with (from flags or a config
// file), plus parsers for the --cluster and HOST:PORT syntaxes. Plain values; thread-safe
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

  // This node's HOST:PORT (from `cluster`).
  const std::string& address() const { return cluster.voters.at(id); }
};

// Splits "HOST:PORT" (HOST may be a name, an IPv4 address or "[v6]"). InvalidArgument if
// the port is missing or not in 1..65535.
Status ParseHostPort(std::string_view address, std::string* host, int* port);

// Parses "1=HOST:PORT,2=HOST:PORT,...": ids are positive and distinct, addresses valid and
// distinct. InvalidArgument naming the bad item otherwise.
Status ParseCluster(std::string_view spec, raft::Membership* cluster);

// Checks the cross-field rules (id in the cluster, positive timings, ...).
Status ValidateOptions(const NodeOptions& options);

}  // namespace verdict::coordinator::server
