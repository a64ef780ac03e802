// Blocking Thrift clients used by the transaction-service process tests: TxnClient talks to
// one coordinator node (CoordinatorService "Coordinator" and ParticipantRegistryService
// "Registry"), AgentClient to one verdict-participant agent ("Participant"). A transport
// failure returns Unavailable and drops the connection; the next call reconnects. The
// response's own code says how a call ended otherwise. Not thread-safe: one client per
// thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "CoordinatorService.h"
#include "ParticipantRegistryService.h"
#include "ParticipantService.h"
#include "common/status.h"
#include "thrift/thrift_channel.h"

namespace verdict::test_support {

class TxnClient {
 public:
  TxnClient(std::string address, int timeout_ms);
  ~TxnClient();
  TxnClient(const TxnClient&) = delete;
  TxnClient& operator=(const TxnClient&) = delete;

  const std::string& address() const { return address_; }

  Status GetStatus(rpc::NodeStatus* out);
  Status Begin(rpc::Protocol::type protocol, int64_t deadline_ms, rpc::BeginResponse* out);
  Status RegisterBranch(const std::string& gtid, const std::string& participant,
                        const std::string& branch, bool read_only,
                        rpc::RegisterBranchResponse* out);
  Status Commit(const std::string& gtid, rpc::TxnOutcomeResponse* out);
  Status Abort(const std::string& gtid, rpc::TxnOutcomeResponse* out);
  Status GetTxn(const std::string& gtid, rpc::TxnInfoResponse* out);
  Status ListTxns(bool in_doubt_only, rpc::ListTxnsResponse* out);
  Status GetDecision(const std::string& gtid, rpc::Consistency::type consistency,
                     rpc::GetDecisionResponse* out);
  Status ListHazards(rpc::ListHazardsResponse* out);
  // ParticipantRegistryService.
  Status ListParticipants(rpc::ListParticipantsResponse* out);

 private:
  template <typename Client, typename F>
  Status Call(std::unique_ptr<rpc::ThriftChannel>* channel, std::unique_ptr<Client>* client,
              const char* service, F&& f);

  const std::string address_;
  const int timeout_ms_;
  std::unique_ptr<rpc::ThriftChannel> coord_channel_;
  std::unique_ptr<rpc::CoordinatorServiceClient> coord_;
  std::unique_ptr<rpc::ThriftChannel> registry_channel_;
  std::unique_ptr<rpc::ParticipantRegistryServiceClient> registry_;
};

class AgentClient {
 public:
  AgentClient(std::string address, int timeout_ms);
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  const std::string& address() const { return address_; }
  void Disconnect();

  Status OpenBranch(const rpc::OpenBranchRequest& request, rpc::OpenBranchResponse* out);
  Status Execute(const std::string& gtid, const std::string& branch, const std::string& sql,
                 const std::vector<rpc::SqlValue>& params, rpc::ExecuteResponse* out);
  Status Commit(const std::string& gtid, const std::string& branch, bool one_phase,
                rpc::BranchResponse* out);
  Status Abort(const std::string& gtid, const std::string& branch, rpc::BranchResponse* out);
  Status GetBranchStatus(const std::string& gtid, const std::string& branch,
                         rpc::BranchStatusResponse* out);
  Status ListInDoubt(rpc::ListInDoubtResponse* out);

 private:
  template <typename F>
  Status Call(F&& f);

  const std::string address_;
  const int timeout_ms_;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
};

rpc::SqlValue SqlInt(int64_t v);

// Names for messages.
std::string ResultCodeName(rpc::ResultCode::type code);
std::string TxnOutcomeName(rpc::TxnOutcome::type outcome);
std::string BranchStateName(rpc::BranchState::type state);
std::string ParticipantCodeName(rpc::ParticipantCode::type code);

}  // namespace verdict::test_support
