// ParticipantHandler: the Thrift ParticipantService (thrift/participant.thrift) over an
// Agent: validates requests (ids, sizes, enum values) and maps types; all logic lives in
// the Agent. Thread-safe (the Agent is); one instance serves every connection.
#pragma once

#include "ParticipantService.h"
#include "participant/agent.h"

namespace verdict::participant {

class ParticipantHandler : public rpc::ParticipantServiceIf {
 public:
  explicit ParticipantHandler(Agent& agent) : agent_(agent) {}

  void OpenBranch(rpc::OpenBranchResponse& out, const rpc::OpenBranchRequest& req) override;
  void Execute(rpc::ExecuteResponse& out, const rpc::ExecuteRequest& req) override;
  void Prepare(rpc::PrepareResponse& out, const rpc::PrepareRequest& req) override;
  void Precommit(rpc::BranchResponse& out, const rpc::BranchRequest& req) override;
  void Fence(rpc::BranchResponse& out, const rpc::FenceRequest& req) override;
  void Commit(rpc::BranchResponse& out, const rpc::CommitRequest& req) override;
  void Abort(rpc::BranchResponse& out, const rpc::BranchRequest& req) override;
  void AbortIfUnvoted(rpc::BranchResponse& out, const rpc::BranchRequest& req) override;
  void GetBranchStatus(rpc::BranchStatusResponse& out, const rpc::BranchRequest& req) override;
  void ListInDoubt(rpc::ListInDoubtResponse& out) override;

  // Limits on requests.
  static constexpr size_t kMaxIdBytes = 256;
  static constexpr size_t kMaxSqlBytes = 1 << 20;
  static constexpr size_t kMaxParams = 32768;
  static constexpr size_t kMaxParticipants = 1024;

  // Empty if `id` is a valid gtid/branch, else why not.
  static std::string CheckId(const std::string& what, const std::string& id);

 private:
  Agent& agent_;
};

}  // namespace verdict::participant
