// DecisionClient: one Thrift connection to one coordinator node's CoordinatorService
// (framed transport, binary protocol, multiplexed under the name the daemon serves it as).
// Not thread-safe: one client per thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "CoordinatorService.h"
#include "common/status.h"
#include "thrift/thrift_channel.h"

namespace verdict::bench {

class DecisionClient {
 public:
  // How one Decide ended, as the benchmark counts it.
  enum class Code {
    kOk,         // the decision was applied
    kNotLeader,  // retry at `leader_address` (empty if the node knows no leader)
    kRetry,      // UNKNOWN or UNAVAILABLE: retrying the same request is safe
    kRejected,   // INVALID_ARGUMENT or a code this client does not know: a bug
    kTransport,  // the connection failed; it is closed
  };
  struct Result {
    Code code = Code::kTransport;
    std::string leader_address;
    std::string message;
  };

  // `timeout_ms` bounds connect, send and receive.
  explicit DecisionClient(int timeout_ms) : timeout_ms_(timeout_ms) {}
  DecisionClient(const DecisionClient&) = delete;
  DecisionClient& operator=(const DecisionClient&) = delete;
  ~DecisionClient();

  // Opens a connection to HOST:PORT, closing any previous one. Unavailable on failure.
  Status Connect(const std::string& address);
  void Close();
  bool connected() const { return client_ != nullptr; }
  const std::string& address() const { return address_; }

  // Precondition: connected(). Never throws.
  Result Decide(const rpc::DecideRequest& request);
  // One DecideBatch call: one Result per request, in order (all kTransport if the call
  // failed). Precondition: connected(). Never throws.
  std::vector<Result> DecideBatch(const std::vector<rpc::DecideRequest>& requests);
  // Precondition: connected(). Unavailable (and closed) on a transport error.
  Status GetStatus(rpc::NodeStatus* status);

 private:
  const int timeout_ms_;
  std::string address_;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::CoordinatorServiceClient> client_;
};

}  // namespace verdict::bench
