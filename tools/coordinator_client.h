// CoordinatorClient: a blocking client of one coordinator node's CoordinatorService, and
// helpers that find the leader among several nodes (following NOT_LEADER hints, retrying
// UNKNOWN). Thrift exceptions become Status here. Not thread-safe: one thread per client.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "CoordinatorService.h"
#include "common/status.h"

namespace verdict::tools {

class CoordinatorClient {
 public:
  // Connects to HOST:PORT. `timeout_ms` bounds the connect and each call's send/receive.
  // Unavailable if the node cannot be reached.
  static Status Connect(const std::string& address, int timeout_ms,
                        std::unique_ptr<CoordinatorClient>* result);
  ~CoordinatorClient();
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  // Each returns Unavailable (and closes the connection) if the call failed in transport;
  // the response's own code tells how the call ended otherwise.
  Status GetStatus(rpc::NodeStatus* out);
  Status Decide(const rpc::DecideRequest& request, rpc::DecideResponse* out);
  Status DecideBatch(const rpc::DecideBatchRequest& request, rpc::DecideBatchResponse* out);
  Status GetDecision(const rpc::GetDecisionRequest& request, rpc::GetDecisionResponse* out);

  const std::string& address() const { return address_; }

 private:
  struct Impl;
  CoordinatorClient(std::string address, std::unique_ptr<Impl> impl);
  template <typename F>
  Status Call(F&& f);

  std::string address_;
  std::unique_ptr<Impl> impl_;
};

// Splits "HOST:PORT,HOST:PORT,..."; InvalidArgument if empty or malformed.
Status ParseAddressList(const std::string& list, std::vector<std::string>* addresses);

// Sends `request` to the leader among `addresses` (starting anywhere, following NOT_LEADER
// hints, retrying UNKNOWN/UNAVAILABLE/unreachable with a short backoff) until a final
// answer (OK or INVALID_ARGUMENT) or `deadline`. Returns the last response; Unavailable if
// no node ever answered, Timeout if the last answer was not final.
Status DecideOnLeader(const std::vector<std::string>& addresses, const rpc::DecideRequest& request,
                      std::chrono::steady_clock::time_point deadline, rpc::DecideResponse* out,
                      int call_timeout_ms = 6000);
// Same for a GetDecision (final answers: OK, NOT_FOUND, INVALID_ARGUMENT).
Status GetDecisionOnLeader(const std::vector<std::string>& addresses,
                           const rpc::GetDecisionRequest& request,
                           std::chrono::steady_clock::time_point deadline,
                           rpc::GetDecisionResponse* out, int call_timeout_ms = 6000);

const char* ResultCodeName(rpc::ResultCode::type code);
const char* OutcomeName(rpc::Outcome::type outcome);
const char* RoleName(rpc::Role::type role);

}  // namespace verdict::tools
