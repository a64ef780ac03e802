// Limits on client requests, checked before anything reaches the Raft log. Constants only.
#pragma once

#include <cstddef>

namespace verdict::coordinator::server {

inline constexpr size_t kMaxGtidBytes = 256;
inline constexpr size_t kMaxParticipants = 1024;
inline constexpr size_t kMaxParticipantBytes = 256;
inline constexpr size_t kMaxBatchDecisions = 1024;

}  // namespace verdict::coordinator::server
