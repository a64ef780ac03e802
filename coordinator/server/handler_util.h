// Conversions and checks shared by the coordinator's Thrift handlers (CoordinatorHandler,
// RegistryHandler). Pure functions; thread-safe.
#pragma once

#include <string>

#include "coordinator/server/call_result.h"
#include "coordinator/server/request_limits.h"
#include "coordinator/txn/decision_register.h"
#include "types_types.h"

namespace verdict::coordinator::server {

// Empty if `gtid` is acceptable, else why not.
inline std::string CheckGtid(const std::string& gtid) {
  if (gtid.empty()) return "gtid is empty";
  if (gtid.size() > kMaxGtidBytes) {
    return "gtid is longer than " + std::to_string(kMaxGtidBytes) + " bytes";
  }
  return "";
}

// Empty if `name` (a participant or branch name, `what`) is acceptable: non-empty, at most
// kMaxParticipantBytes, printable ASCII without ':' (agents build ids from it).
inline std::string CheckName(const std::string& name, const char* what) {
  if (name.empty() || name.size() > kMaxParticipantBytes) {
    return std::string(what) + " is empty or longer than " + std::to_string(kMaxParticipantBytes) +
           " bytes";
  }
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == ':') {
      return std::string(what) + " '" + name + "' has a character outside printable ASCII or ':'";
    }
  }
  return "";
}

inline rpc::ResultCode::type ToThrift(CallResult::Code code) {
  switch (code) {
    case CallResult::Code::kOk:
      return rpc::ResultCode::OK;
    case CallResult::Code::kNotFound:
      return rpc::ResultCode::NOT_FOUND;
    case CallResult::Code::kNotLeader:
      return rpc::ResultCode::NOT_LEADER;
    case CallResult::Code::kUnknown:
      return rpc::ResultCode::UNKNOWN;
    case CallResult::Code::kUnavailable:
      return rpc::ResultCode::UNAVAILABLE;
    case CallResult::Code::kInvalidArgument:
      return rpc::ResultCode::INVALID_ARGUMENT;
    case CallResult::Code::kWrongState:
      return rpc::ResultCode::WRONG_STATE;
  }
  return rpc::ResultCode::UNKNOWN;
}

inline rpc::Outcome::type ToThrift(txn::Outcome o) {
  return o == txn::Outcome::kCommit ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT;
}

inline rpc::NodeAddress Address(raft::NodeId id, const std::string& address) {
  rpc::NodeAddress a;
  a.id = static_cast<int64_t>(id);
  a.address = address;
  return a;
}

// Sets out->code and out->message from `r`, and out->leader on NOT_LEADER.
template <typename Response>
void FillStatus(const CallResult& r, Response* out) {
  out->code = ToThrift(r.code);
  out->message = r.message;
  if (r.code == CallResult::Code::kNotLeader)
    out->__set_leader(Address(r.leader, r.leader_address));
}

}  // namespace verdict::coordinator::server
