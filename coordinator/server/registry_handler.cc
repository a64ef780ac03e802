#include "coordinator/server/registry_handler.h"

#include "coordinator/server/handler_util.h"
#include "thrift/thrift_channel.h"

namespace verdict::coordinator::server {

void RegistryHandler::RegisterParticipant(rpc::RegisterParticipantResponse& out,
                                          const rpc::RegisterParticipantRequest& request) {
  std::string error = CheckName(request.name, "name");
  std::string host;
  int port = 0;
  if (error.empty()) {
    Status s = rpc::SplitHostPort(request.address, &host, &port);
    if (!s.ok()) error = "address: " + s.message();
  }
  if (error.empty()) error = CheckName(request.backend, "backend");
  if (!error.empty()) {
    metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
    out.code = rpc::ResultCode::INVALID_ARGUMENT;
    out.message = std::move(error);
    return;
  }
  txn::RegisterParticipantCmd cmd{request.name, request.address, request.backend};
  FillStatus(node_.RegisterParticipant(cmd), &out);
}

void RegistryHandler::Inquire(rpc::InquireResponse& out, const rpc::InquireRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (error.empty()) error = CheckName(request.participant, "participant");
  if (error.empty()) error = CheckName(request.branch, "branch");
  if (!error.empty()) {
    metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
    out.code = rpc::ResultCode::INVALID_ARGUMENT;
    out.message = std::move(error);
    return;
  }
  txn::InquiryStatus status = txn::InquiryStatus::kUnknown;
  CallResult r = node_.Inquire(request.gtid, {request.participant, request.branch}, &status);
  FillStatus(r, &out);
  if (r.code != CallResult::Code::kOk) return;
  switch (status) {
    case txn::InquiryStatus::kCommitted:
      out.status = rpc::TxnStatus::COMMITTED;
      break;
    case txn::InquiryStatus::kAborted:
      out.status = rpc::TxnStatus::ABORTED;
      break;
    case txn::InquiryStatus::kInProgress:
      out.status = rpc::TxnStatus::IN_PROGRESS;
      break;
    case txn::InquiryStatus::kPrecommitIntent:
      out.status = rpc::TxnStatus::PRECOMMIT_INTENT;
      break;
    case txn::InquiryStatus::kUnknown:
    case txn::InquiryStatus::kNotLeader:
      // Cannot be answered (e.g. a gtid below the table's memory): the agent stays
      // prepared and asks again; an operator must look (a hazard was raised).
      out.code = rpc::ResultCode::UNKNOWN;
      out.message = "the outcome of " + request.gtid + " cannot be established";
      break;
  }
}

void RegistryHandler::ListParticipants(rpc::ListParticipantsResponse& out) {
  out.code = rpc::ResultCode::OK;
  for (const ParticipantReport& p : node_.ListParticipants()) {
    rpc::ParticipantEntry e;
    e.name = p.name;
    e.address = p.address;
    e.backend = p.backend;
    out.participants.push_back(std::move(e));
  }
}

}  // namespace verdict::coordinator::server
