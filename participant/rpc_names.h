// The names under which Thrift services are multiplexed (TMultiplexedProcessor): the
// agent serves "Participant"; coordinators serve "Registry" and "Coordinator". Constants.
#pragma once

namespace verdict::participant {

inline constexpr char kParticipantServiceName[] = "Participant";
inline constexpr char kRegistryServiceName[] = "Registry";
inline constexpr char kCoordinatorServiceName[] = "Coordinator";

}  // namespace verdict::participant
