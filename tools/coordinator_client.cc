#include "tools/coordinator_client.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <thread>

#include "thrift/framed_transport.h"

namespace verdict::tools {

namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TSocket;
using verdict::rpc::FramedTransport;

// The name CoordinatorService is multiplexed under (coordinator/server/rpc_names.h).
constexpr char kCoordinatorServiceName[] = "Coordinator";

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return Status::InvalidArgument("'" + address + "' is not HOST:PORT");
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  try {
    size_t used = 0;
    *port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || *port <= 0 || *port > 65535) throw 0;
  } catch (...) {
    return Status::InvalidArgument("'" + address + "' has no valid port");
  }
  return Status::OK();
}

}  // namespace

struct CoordinatorClient::Impl {
  std::shared_ptr<FramedTransport> transport;
  std::unique_ptr<rpc::CoordinatorServiceClient> client;
};

CoordinatorClient::CoordinatorClient(std::string address, std::unique_ptr<Impl> impl)
    : address_(std::move(address)), impl_(std::move(impl)) {}

CoordinatorClient::~CoordinatorClient() {
  if (impl_ && impl_->transport) {
    try {
      impl_->transport->close();
    } catch (const apache::thrift::TException&) {
    }
  }
}

Status CoordinatorClient::Connect(const std::string& address, int timeout_ms,
                                  std::unique_ptr<CoordinatorClient>* result) {
  std::string host;
  int port;
  VERDICT_RETURN_IF_ERROR(SplitHostPort(address, &host, &port));
  auto impl = std::make_unique<Impl>();
  try {
    auto socket = std::make_shared<TSocket>(host, port);
    socket->setConnTimeout(timeout_ms);
    socket->setRecvTimeout(timeout_ms);
    socket->setSendTimeout(timeout_ms);
    socket->setNoDelay(true);
    impl->transport = std::make_shared<FramedTransport>(socket);
    impl->transport->open();
    auto protocol = std::make_shared<TBinaryProtocol>(impl->transport);
    auto mux = std::make_shared<TMultiplexedProtocol>(protocol, kCoordinatorServiceName);
    impl->client = std::make_unique<rpc::CoordinatorServiceClient>(mux);
  } catch (const apache::thrift::TException& e) {
    return Status::Unavailable(address + ": " + e.what());
  }
  result->reset(new CoordinatorClient(address, std::move(impl)));
  return Status::OK();
}

template <typename F>
Status CoordinatorClient::Call(F&& f) {
  if (!impl_->client) return Status::Unavailable(address_ + ": connection closed");
  try {
    f(*impl_->client);
    return Status::OK();
  } catch (const apache::thrift::TException& e) {
    try {
      impl_->transport->close();
    } catch (const apache::thrift::TException&) {
    }
    impl_->client.reset();
    return Status::Unavailable(address_ + ": " + e.what());
  }
}

Status CoordinatorClient::GetStatus(rpc::NodeStatus* out) {
  return Call([&](rpc::CoordinatorServiceClient& c) { c.GetStatus(*out); });
}

Status CoordinatorClient::Decide(const rpc::DecideRequest& request, rpc::DecideResponse* out) {
  return Call([&](rpc::CoordinatorServiceClient& c) { c.Decide(*out, request); });
}

Status CoordinatorClient::DecideBatch(const rpc::DecideBatchRequest& request,
                                      rpc::DecideBatchResponse* out) {
  return Call([&](rpc::CoordinatorServiceClient& c) { c.DecideBatch(*out, request); });
}

Status CoordinatorClient::GetDecision(const rpc::GetDecisionRequest& request,
                                      rpc::GetDecisionResponse* out) {
  return Call([&](rpc::CoordinatorServiceClient& c) { c.GetDecision(*out, request); });
}

Status ParseAddressList(const std::string& list, std::vector<std::string>* addresses) {
  addresses->clear();
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    if (!item.empty()) {
      std::string host;
      int port;
      VERDICT_RETURN_IF_ERROR(SplitHostPort(item, &host, &port));
      addresses->push_back(item);
    }
    start = comma + 1;
  }
  if (addresses->empty()) return Status::InvalidArgument("no coordinator address given");
  return Status::OK();
}

namespace {

// The retry loop shared by DecideOnLeader and GetDecisionOnLeader. `call` returns the
// transport status and fills the response; `is_final` says whether a response ends it.
template <typename Response, typename CallFn, typename FinalFn>
Status OnLeader(const std::vector<std::string>& addresses,
                std::chrono::steady_clock::time_point deadline, int call_timeout_ms, Response* out,
                CallFn&& call, FinalFn&& is_final) {
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

}  // namespace

Status DecideOnLeader(const std::vector<std::string>& addresses, const rpc::DecideRequest& request,
                      std::chrono::steady_clock::time_point deadline, rpc::DecideResponse* out,
                      int call_timeout_ms) {
  return OnLeader(
      addresses, deadline, call_timeout_ms, out,
      [&](CoordinatorClient& c, rpc::DecideResponse* r) { return c.Decide(request, r); },
      [](const rpc::DecideResponse& r) {
        return r.code == rpc::ResultCode::OK || r.code == rpc::ResultCode::INVALID_ARGUMENT;
      });
}

Status GetDecisionOnLeader(const std::vector<std::string>& addresses,
                           const rpc::GetDecisionRequest& request,
                           std::chrono::steady_clock::time_point deadline,
                           rpc::GetDecisionResponse* out, int call_timeout_ms) {
  return OnLeader(
      addresses, deadline, call_timeout_ms, out,
      [&](CoordinatorClient& c, rpc::GetDecisionResponse* r) { return c.GetDecision(request, r); },
      [](const rpc::GetDecisionResponse& r) {
        return r.code == rpc::ResultCode::OK || r.code == rpc::ResultCode::NOT_FOUND ||
               r.code == rpc::ResultCode::INVALID_ARGUMENT;
      });
}

const char* ResultCodeName(rpc::ResultCode::type code) {
  switch (code) {
    case rpc::ResultCode::OK:
      return "OK";
    case rpc::ResultCode::NOT_LEADER:
      return "NOT_LEADER";
    case rpc::ResultCode::UNKNOWN:
      return "UNKNOWN";
    case rpc::ResultCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case rpc::ResultCode::NOT_FOUND:
      return "NOT_FOUND";
    case rpc::ResultCode::UNAVAILABLE:
      return "UNAVAILABLE";
  }
  return "?";
}

const char* OutcomeName(rpc::Outcome::type outcome) {
  switch (outcome) {
    case rpc::Outcome::COMMIT:
      return "COMMIT";
    case rpc::Outcome::ABORT:
      return "ABORT";
  }
  return "?";
}

const char* RoleName(rpc::Role::type role) {
  switch (role) {
    case rpc::Role::FOLLOWER:
      return "follower";
    case rpc::Role::PRE_CANDIDATE:
      return "pre-candidate";
    case rpc::Role::CANDIDATE:
      return "candidate";
    case rpc::Role::LEADER:
      return "leader";
  }
  return "?";
}

}  // namespace verdict::tools
