// RaftHandler: the RaftService (thrift/raft.thrift) endpoint. Converts each delivered
// batch to Raft messages and queues it on the RaftNode; malformed or misaddressed messages
// are dropped (Raft tolerates loss). Thread-safe (one call per server thread).
#pragma once

#include "RaftService.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

class RaftHandler : public rpc::RaftServiceIf {
 public:
  RaftHandler(raft::NodeId self, RaftNode& node, Metrics& metrics)
      : self_(self), node_(node), metrics_(metrics) {}

  void Deliver(const std::vector<rpc::RaftMessage>& messages) override;

 private:
  const raft::NodeId self_;
  RaftNode& node_;
  Metrics& metrics_;
};

}  // namespace verdict::coordinator::server
