// CoordinatorClient: a blocking client of one coordinator node's CoordinatorService, and
// helpers that find the leader among several nodes (following NOT_LEADER hints, retrying
// UNKNOWN). Thrift exceptions become Status here. Not thread-safe: one thread per client.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
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

  // Runs f(rpc::CoordinatorServiceClient&): any call of the service. Unavailable (and the
  // connection closed) if it failed in transport; the response's own code tells how the
  // call ended otherwise. The wrappers below do the same for one call each.
  template <typename F>
  Status Invoke(F&& f) {
    if (client() == nullptr) return Status::Unavailable(address_ + ": connection closed");
    try {
      f(*client());
      return Status::OK();
    } catch (const std::exception& e) {
      return Failed(e.what());
    }
  }

  Status GetStatus(rpc::NodeStatus* out);
  Status Decide(const rpc::DecideRequest& request, rpc::DecideResponse* out);
  Status DecideBatch(const rpc::DecideBatchRequest& request, rpc::DecideBatchResponse* out);
  Status GetDecision(const rpc::GetDecisionRequest& request, rpc::GetDecisionResponse* out);

  const std::string& address() const { return address_; }

 private:
  struct Impl;
  CoordinatorClient(std::string address, std::unique_ptr<Impl> impl);
  rpc::CoordinatorServiceClient* client();  // nullptr once closed
  Status Failed(const char* what);          // closes the connection

  std::string address_;
  std::unique_ptr<Impl> impl_;
};

const char* ResultCodeName(rpc::ResultCode::type code);
const char* OutcomeName(rpc::Outcome::type outcome);
const char* RoleName(rpc::Role::type role);

// Splits "HOST:PORT,HOST:PORT,..."; InvalidArgument if empty or malformed.
Status ParseAddressList(const std::string& list, std::vector<std::string>* addresses);

// Calls the leader among `addresses` (starting anywhere, following NOT_LEADER hints,
// retrying UNKNOWN/UNAVAILABLE/unreachable with a short backoff) until `is_final(*out)` or
// `deadline`. `call(client, out)` makes the call and returns its transport status. Returns
// OK with the final response; Unavailable if no node ever answered, Timeout if the last
// answer was not final.
template <typename Response, typename CallFn, typename FinalFn>
Status CallOnLeader(const std::vector<std::string>& addresses,
                    std::chrono::steady_clock::time_point deadline, int call_timeout_ms,
                    Response* out, CallFn&& call, FinalFn&& is_final) {
  if (addresses.empty()) return Status::InvalidArgument("no coordinator address given");
  size_t next = 0;
  std::string target = addresses[0];
  bool answered = false;
  int backoff_ms = 20;
  int hops = 0;  // hints followed since the last pause
  std::string last_error;
  auto pause = [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 500);
    hops = 0;
  };
  while (true) {
    std::unique_ptr<CoordinatorClient> client;
    Status s = CoordinatorClient::Connect(target, call_timeout_ms, &client);
    if (s.ok()) s = call(*client, out);
    bool follow_hint = false;
    if (s.ok()) {
      answered = true;
      if (is_final(*out)) return Status::OK();
      if (out->code == rpc::ResultCode::NOT_LEADER && out->__isset.leader && out->leader.id != 0 &&
          !out->leader.address.empty() && out->leader.address != target) {
        target = out->leader.address;
        follow_hint = true;
      }
      last_error = target + ": " + ResultCodeName(out->code) + " " + out->message;
    } else {
      last_error = s.message();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return answered ? Status::Timeout(last_error) : Status::Unavailable(last_error);
    }
    if (follow_hint) {
      if (++hops > static_cast<int>(addresses.size())) pause();  // stale hints going round
    } else {
      next = (next + 1) % addresses.size();
      target = addresses[next];
      if (next == 0) pause();
    }
  }
}

// Sends `request` to the leader (CallOnLeader) until a final answer (OK or
// INVALID_ARGUMENT) or `deadline`.
Status DecideOnLeader(const std::vector<std::string>& addresses, const rpc::DecideRequest& request,
                      std::chrono::steady_clock::time_point deadline, rpc::DecideResponse* out,
                      int call_timeout_ms = 6000);
// Same for a GetDecision (final answers: OK, NOT_FOUND, INVALID_ARGUMENT).
Status GetDecisionOnLeader(const std::vector<std::string>& addresses,
                           const rpc::GetDecisionRequest& request,
                           std::chrono::steady_clock::time_point deadline,
                           rpc::GetDecisionResponse* out, int call_timeout_ms = 6000);

}  // namespace verdict::tools
