// The names under which the node's Thrift services are multiplexed on its one address
// (TMultiplexedProcessor). Clients in any language must use the same names. Constants only.
#pragma once

namespace verdict::coordinator::server {

inline constexpr char kRaftServiceName[] = "Raft";
inline constexpr char kCoordinatorServiceName[] = "Coordinator";
// ParticipantRegistryService, served by every coordinator for the agents.
inline constexpr char kRegistryServiceName[] = "Registry";
// ParticipantService, served by each agent (participant/rpc_names.h).
inline constexpr char kParticipantServiceName[] = "Participant";

}  // namespace verdict::coordinator::server
