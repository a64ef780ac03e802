#include "bench/decision_client.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "coordinator/server/rpc_names.h"
#include "thrift/framed_transport.h"

namespace verdict::bench {

using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TSocket;
using verdict::rpc::FramedTransport;

bool SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= address.size()) return false;
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    char c = address[i];
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
    if (p > 65535) return false;
  }
  if (p == 0) return false;
  *host = h;
  *port = p;
  return true;
}

DecisionClient::~DecisionClient() { Close(); }

Status DecisionClient::Connect(const std::string& address) {
  Close();
  address_ = address;
  std::string host;
  int port = 0;
  if (!SplitHostPort(address, &host, &port)) {
    return Status::InvalidArgument("bad address '" + address + "'");
  }
  try {
    auto socket = std::make_shared<TSocket>(host, port);
    socket->setConnTimeout(timeout_ms_);
    socket->setSendTimeout(timeout_ms_);
    socket->setRecvTimeout(timeout_ms_);
    socket->setNoDelay(true);
    auto framed = std::make_shared<FramedTransport>(socket);
    framed->open();
    auto protocol = std::make_shared<TBinaryProtocol>(framed);
    auto mux = std::make_shared<TMultiplexedProtocol>(protocol,
                                                      coordinator::server::kCoordinatorServiceName);
    client_ = std::make_unique<rpc::CoordinatorServiceClient>(mux);
    transport_ = framed;
  } catch (const TException& e) {
    Close();
    return Status::Unavailable(address + ": " + e.what());
  }
  return Status::OK();
}

void DecisionClient::Close() {
  client_.reset();
  if (transport_) {
    try {
      transport_->close();
    } catch (const TException&) {
    }
    transport_.reset();
  }
}

namespace {

DecisionClient::Result FromResponse(const rpc::DecideResponse& response) {
  using Code = DecisionClient::Code;
  DecisionClient::Result result;
  result.message = response.message;
  switch (response.code) {
    case rpc::ResultCode::OK:
      result.code = Code::kOk;
      break;
    case rpc::ResultCode::NOT_LEADER:
      result.code = Code::kNotLeader;
      if (response.__isset.leader && response.leader.id != 0) {
        result.leader_address = response.leader.address;
      }
      break;
    case rpc::ResultCode::UNKNOWN:
    case rpc::ResultCode::UNAVAILABLE:
      result.code = Code::kRetry;
      break;
    default:
      result.code = Code::kRejected;
      break;
  }
  return result;
}

}  // namespace

DecisionClient::Result DecisionClient::Decide(const rpc::DecideRequest& request) {
  rpc::DecideResponse response;
  try {
    client_->Decide(response, request);
  } catch (const TException& e) {
    Close();
    Result result;
    result.code = Code::kTransport;
    result.message = e.what();
    return result;
  }
  return FromResponse(response);
}

std::vector<DecisionClient::Result> DecisionClient::DecideBatch(
    const std::vector<rpc::DecideRequest>& requests) {
  rpc::DecideBatchRequest batch;
  batch.requests = requests;
  rpc::DecideBatchResponse response;
  Result failed;
  try {
    client_->DecideBatch(response, batch);
  } catch (const TException& e) {
    Close();
    failed.code = Code::kTransport;
    failed.message = e.what();
    return std::vector<Result>(requests.size(), failed);
  }
  if (response.code != rpc::ResultCode::OK || response.responses.size() != requests.size()) {
    failed.code = Code::kRejected;
    failed.message = "DecideBatch: " + response.message;
    return std::vector<Result>(requests.size(), failed);
  }
  std::vector<Result> results;
  results.reserve(requests.size());
  for (const auto& r : response.responses) results.push_back(FromResponse(r));
  return results;
}

Status DecisionClient::GetStatus(rpc::NodeStatus* status) {
  try {
    client_->GetStatus(*status);
  } catch (const TException& e) {
    Close();
    return Status::Unavailable(address_ + ": " + e.what());
  }
  return Status::OK();
}

}  // namespace verdict::bench
