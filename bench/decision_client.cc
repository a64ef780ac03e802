#include "bench/decision_client.h"

#include "coordinator/server/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::bench {

using apache::thrift::TException;

DecisionClient::~DecisionClient() { Close(); }

Status DecisionClient::Connect(const std::string& address) {
  Close();
  address_ = address;
  auto channel = std::make_unique<rpc::ThriftChannel>(
      address, coordinator::server::kCoordinatorServiceName, timeout_ms_);
  VERDICT_RETURN_IF_ERROR(channel->Open());
  client_ = std::make_unique<rpc::CoordinatorServiceClient>(channel->protocol());
  channel_ = std::move(channel);
  return Status::OK();
}

void DecisionClient::Close() {
  client_.reset();
  channel_.reset();
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
