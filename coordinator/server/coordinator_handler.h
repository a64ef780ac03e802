// CoordinatorHandler: the CoordinatorService RPCs (thrift/coordinator.thrift) on top of a
// RaftNode. Validates every request, turns Thrift types into Verdict's and the node's
// CallResult into typed responses. Thread-safe (one call per server thread).
#pragma once

#include "CoordinatorService.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

class CoordinatorHandler : public rpc::CoordinatorServiceIf {
 public:
  CoordinatorHandler(RaftNode& node, Metrics& metrics) : node_(node), metrics_(metrics) {}

  void Decide(rpc::DecideResponse& out, const rpc::DecideRequest& request) override;
  void DecideBatch(rpc::DecideBatchResponse& out, const rpc::DecideBatchRequest& request) override;
  void GetDecision(rpc::GetDecisionResponse& out, const rpc::GetDecisionRequest& request) override;
  void GetStatus(rpc::NodeStatus& out) override;

 private:
  RaftNode& node_;
  Metrics& metrics_;
};

}  // namespace verdict::coordinator::server
