#include "tools/coordinator_client.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <thread>

#include "thrift/framed_transport.h"
#include "thrift/thrift_channel.h"

namespace verdict::tools {

namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TSocket;
using verdict::rpc::FramedTransport;

// The name CoordinatorService is multiplexed under (coordinator/server/rpc_names.h).
constexpr char kCoordinatorServiceName[] = "Coordinator";

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
  VERDICT_RETURN_IF_ERROR(rpc::SplitHostPort(address, &host, &port));
  auto impl = std::make_unique<Impl>();
  try {
    auto socket = std::make_shared<TSocket>(host, port);
    socket->setConnTimeout(timeout_ms);
    socket->setRecvTimeout(timeout_ms);
    socket->setSendTimeout(timeout_ms);
    socket->setNoDelay(true);
    impl->transport = FramedTransport::OverSocket(socket);
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

rpc::CoordinatorServiceClient* CoordinatorClient::client() { return impl_->client.get(); }

Status CoordinatorClient::Failed(const char* what) {
  try {
    impl_->transport->close();
  } catch (const apache::thrift::TException&) {
  }
  impl_->client.reset();
  return Status::Unavailable(address_ + ": " + what);
}

Status CoordinatorClient::GetStatus(rpc::NodeStatus* out) {
  return Invoke([&](rpc::CoordinatorServiceClient& c) { c.GetStatus(*out); });
}

Status CoordinatorClient::Decide(const rpc::DecideRequest& request, rpc::DecideResponse* out) {
  return Invoke([&](rpc::CoordinatorServiceClient& c) { c.Decide(*out, request); });
}

Status CoordinatorClient::DecideBatch(const rpc::DecideBatchRequest& request,
                                      rpc::DecideBatchResponse* out) {
  return Invoke([&](rpc::CoordinatorServiceClient& c) { c.DecideBatch(*out, request); });
}

Status CoordinatorClient::GetDecision(const rpc::GetDecisionRequest& request,
                                      rpc::GetDecisionResponse* out) {
  return Invoke([&](rpc::CoordinatorServiceClient& c) { c.GetDecision(*out, request); });
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
      VERDICT_RETURN_IF_ERROR(rpc::SplitHostPort(item, &host, &port));
      addresses->push_back(item);
    }
    start = comma + 1;
  }
  if (addresses->empty()) return Status::InvalidArgument("no coordinator address given");
  return Status::OK();
}

Status DecideOnLeader(const std::vector<std::string>& addresses, const rpc::DecideRequest& request,
                      std::chrono::steady_clock::time_point deadline, rpc::DecideResponse* out,
                      int call_timeout_ms) {
  return CallOnLeader(
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
  return CallOnLeader(
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
    case rpc::ResultCode::WRONG_STATE:
      return "WRONG_STATE";
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
