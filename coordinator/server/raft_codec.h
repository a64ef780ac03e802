// Conversion between the Raft core's messages (coordinator/raft/types.h) and their Thrift
// form (thrift/raft.thrift). Pure functions; thread-safe.
#pragma once

#include <cstddef>

#include "common/status.h"
#include "coordinator/raft/types.h"
#include "raft_types.h"

namespace verdict::coordinator::server {

namespace raft = ::verdict::coordinator::raft;

// Moves `m`'s entries into `out` (the snapshot data, shared and immutable, is copied).
// Returns roughly how many payload bytes `out` carries (for batching).
size_t MessageToThrift(raft::Message&& m, rpc::RaftMessage* out);

// Validates and converts a received message, moving its payloads out of `in`.
// InvalidArgument for an unknown message or entry type, a negative number, or a snapshot
// whose membership is malformed.
Status MessageFromThrift(rpc::RaftMessage&& in, raft::Message* out);

}  // namespace verdict::coordinator::server
