// RegistryHandler: ParticipantRegistryService (thrift/participant.thrift), what participant
// agents ask the coordinator group: registration (name -> address, through the log),
// inquiries about the outcome of their prepared branches, and the registry. Thread-safe.
#pragma once

#include "ParticipantRegistryService.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/raft_node.h"

namespace verdict::coordinator::server {

class RegistryHandler : public rpc::ParticipantRegistryServiceIf {
 public:
  RegistryHandler(RaftNode& node, Metrics& metrics) : node_(node), metrics_(metrics) {}

  void RegisterParticipant(rpc::RegisterParticipantResponse& out,
                           const rpc::RegisterParticipantRequest& request) override;
  void Inquire(rpc::InquireResponse& out, const rpc::InquireRequest& request) override;
  // This node's applied registry, whatever its role (registrations are rare and an agent
  // re-registers on start, so a slightly stale answer is harmless).
  void ListParticipants(rpc::ListParticipantsResponse& out) override;

 private:
  RaftNode& node_;
  Metrics& metrics_;
};

}  // namespace verdict::coordinator::server
