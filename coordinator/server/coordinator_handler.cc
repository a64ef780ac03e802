#include "coordinator/server/coordinator_handler.h"

#include <string>

#include "coordinator/server/handler_util.h"
#include "coordinator/txn/gtid.h"

namespace verdict::coordinator::server {

namespace {

// Fills the fields DecideResponse and GetDecisionResponse share.
template <typename Response>
void FillResponse(const CallResult& r, Response* out) {
  FillStatus(r, out);
  if (r.record) {
    out->__set_outcome(ToThrift(r.record->outcome));
    out->participants = r.record->participants;
    out->log_index = static_cast<int64_t>(r.record->index);
  }
}

// Empty if `request` is acceptable, else why not.
std::string CheckDecide(const rpc::DecideRequest& request) {
  std::string error = CheckGtid(request.gtid);
  txn::Gtid engine_gtid;
  if (error.empty() && txn::ParseGtid(request.gtid, &engine_gtid)) {
    // Such a gtid belongs to the transaction service: deciding it here would bypass its
    // votes (use Commit/Abort, or `verdictctl resolve` for a heuristic decision).
    error = "gtid '" + request.gtid + "' has the form of a transaction begun with Begin; " +
            "finish it with Commit or Abort";
  }
  if (error.empty() && request.outcome != rpc::Outcome::COMMIT &&
      request.outcome != rpc::Outcome::ABORT) {
    error = "outcome " + std::to_string(static_cast<int>(request.outcome)) +
            " is neither COMMIT (1) nor ABORT (2)";
  }
  if (error.empty() && request.participants.size() > kMaxParticipants) {
    error = "more than " + std::to_string(kMaxParticipants) + " participants";
  }
  for (size_t i = 0; error.empty() && i < request.participants.size(); ++i) {
    const std::string& p = request.participants[i];
    if (p.empty() || p.size() > kMaxParticipantBytes) {
      error = "participant " + std::to_string(i) + " is empty or longer than " +
              std::to_string(kMaxParticipantBytes) + " bytes";
    }
  }
  return error;
}

txn::DecideCommand ToCommand(const rpc::DecideRequest& request) {
  txn::DecideCommand cmd;
  cmd.gtid = request.gtid;
  cmd.outcome =
      request.outcome == rpc::Outcome::COMMIT ? txn::Outcome::kCommit : txn::Outcome::kAbort;
  cmd.participants = request.participants;
  return cmd;
}

}  // namespace

void CoordinatorHandler::Decide(rpc::DecideResponse& out, const rpc::DecideRequest& request) {
  std::string error = CheckDecide(request);
  if (!error.empty()) {
    metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
    out.code = rpc::ResultCode::INVALID_ARGUMENT;
    out.message = error;
    return;
  }
  FillResponse(node_.Decide(ToCommand(request)), &out);
}

void CoordinatorHandler::DecideBatch(rpc::DecideBatchResponse& out,
                                     const rpc::DecideBatchRequest& request) {
  if (request.requests.empty() || request.requests.size() > kMaxBatchDecisions) {
    metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
    out.code = rpc::ResultCode::INVALID_ARGUMENT;
    out.message = "a batch holds 1 to " + std::to_string(kMaxBatchDecisions) + " decisions";
    return;
  }
  out.code = rpc::ResultCode::OK;
  out.responses.resize(request.requests.size());
  std::vector<txn::DecideCommand> cmds;
  std::vector<size_t> positions;  // of the valid requests, in order
  for (size_t i = 0; i < request.requests.size(); ++i) {
    std::string error = CheckDecide(request.requests[i]);
    if (!error.empty()) {
      metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
      out.responses[i].code = rpc::ResultCode::INVALID_ARGUMENT;
      out.responses[i].message = std::move(error);
      continue;
    }
    cmds.push_back(ToCommand(request.requests[i]));
    positions.push_back(i);
  }
  if (cmds.empty()) return;
  std::vector<CallResult> results = node_.DecideMany(std::move(cmds));
  for (size_t k = 0; k < results.size(); ++k)
    FillResponse(results[k], &out.responses[positions[k]]);
}

void CoordinatorHandler::GetDecision(rpc::GetDecisionResponse& out,
                                     const rpc::GetDecisionRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (error.empty() && request.consistency != rpc::Consistency::LINEARIZABLE &&
      request.consistency != rpc::Consistency::LOCAL) {
    error = "unknown consistency " + std::to_string(static_cast<int>(request.consistency));
  }
  if (!error.empty()) {
    metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
    out.code = rpc::ResultCode::INVALID_ARGUMENT;
    out.message = error;
    return;
  }
  bool linearizable = request.consistency == rpc::Consistency::LINEARIZABLE;
  FillResponse(node_.GetDecision(request.gtid, linearizable), &out);
}

void CoordinatorHandler::GetStatus(rpc::NodeStatus& out) {
  NodeStatus s = node_.GetStatus();
  out.id = static_cast<int64_t>(s.id);
  out.address = s.address;
  out.role = static_cast<rpc::Role::type>(s.role);
  out.term = static_cast<int64_t>(s.term);
  out.leader = Address(s.leader, s.leader_address);
  out.commit_index = static_cast<int64_t>(s.commit_index);
  out.applied_index = static_cast<int64_t>(s.applied_index);
  out.last_index = static_cast<int64_t>(s.last_index);
  out.snapshot_index = static_cast<int64_t>(s.snapshot_index);
  out.decisions = static_cast<int64_t>(s.decisions);
  out.membership.clear();
  for (const auto& [id, address] : s.membership.voters) {
    out.membership.push_back(Address(id, address));
  }
}

}  // namespace verdict::coordinator::server
