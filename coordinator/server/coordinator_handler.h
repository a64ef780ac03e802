// CoordinatorHandler: the CoordinatorService RPCs (thrift/coordinator.thrift) on top of a
// RaftNode: decisions, status, and the transaction calls. Validates every request, turns
// Thrift types into Verdict's and the node's answers into typed responses. Thread-safe
// (one call per server thread).
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

  // Global transactions (coordinator_handler_txn.cc).
  void Begin(rpc::BeginResponse& out, const rpc::BeginRequest& request) override;
  void RegisterBranch(rpc::RegisterBranchResponse& out,
                      const rpc::RegisterBranchRequest& request) override;
  void Commit(rpc::TxnOutcomeResponse& out, const rpc::TxnRequest& request) override;
  void Abort(rpc::TxnOutcomeResponse& out, const rpc::TxnRequest& request) override;
  void GetTxn(rpc::TxnInfoResponse& out, const rpc::TxnRequest& request) override;
  void ListTxns(rpc::ListTxnsResponse& out, const rpc::ListTxnsRequest& request) override;
  void Resolve(rpc::ResolveResponse& out, const rpc::ResolveRequest& request) override;
  void ListHazards(rpc::ListHazardsResponse& out) override;

 private:
  // Counts and answers a malformed request.
  template <typename Response>
  void Invalid(Response* out, std::string message);
  void Finish(bool commit, rpc::TxnOutcomeResponse& out, const rpc::TxnRequest& request);

  RaftNode& node_;
  Metrics& metrics_;
};

}  // namespace verdict::coordinator::server
