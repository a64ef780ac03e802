// Conversions between the agent's types and the generated Thrift types of
// participant.thrift. Pure functions; thread-safe.
#pragma once

#include <vector>

#include "ParticipantService.h"
#include "participant/agent.h"

namespace verdict::participant {

rpc::SqlValue ToThrift(const SqlValue& v);
// False if the value's fields do not match its type.
bool FromThrift(const rpc::SqlValue& in, SqlValue* out);
rpc::BranchState::type ToThrift(BranchState s);
BranchState FromThrift(rpc::BranchState::type s);
rpc::ParticipantCode::type ToThrift(ReplyCode c);
rpc::Protocol::type ToThrift(Protocol p);
rpc::PeerBranch ToThrift(const PeerRef& p);
PeerRef FromThrift(const rpc::PeerBranch& p);
rpc::BranchInfo ToThrift(const BranchStatus& s);

}  // namespace verdict::participant
