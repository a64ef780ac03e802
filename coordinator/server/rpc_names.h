// The names under which the node's Thrift services are multiplexed on its one address
// (TMultiplexedProcessor). Clients in any language must use the same names. Constants only.
#pragma once

namespace verdict::coordinator::server {

inline constexpr char kRaftServiceName[] = "Raft";
inline constexpr char kCoordinatorServiceName[] = "Coordinator";

}  // namespace verdict::coordinator::server
