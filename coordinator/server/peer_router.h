// PeerRouter: routes outgoing Raft messages to one PeerSender per peer, following the
// membership the Raft core reports (peers are added, re-addressed and removed with it).
// Thread-safe: the event loop and the storage thread both send through it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "coordinator/raft/types.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/peer_sender.h"

namespace verdict::coordinator::server {

class PeerRouter {
 public:
  PeerRouter(raft::NodeId self, const PeerSenderOptions& options, Metrics& metrics);
  PeerRouter(const PeerRouter&) = delete;
  PeerRouter& operator=(const PeerRouter&) = delete;
  ~PeerRouter();

  // Makes the set of senders match `membership` (minus this node). Cheap when unchanged.
  void UpdatePeers(const raft::Membership& membership);
  // Queues each message for its destination; messages to unknown nodes are dropped.
  void Send(std::vector<raft::Message>&& messages);
  // Stops every sender. Later Send()s drop everything.
  void Stop();

 private:
  const raft::NodeId self_;
  const PeerSenderOptions options_;
  Metrics& metrics_;

  std::mutex mu_;
  raft::Membership membership_;                                  // guarded by mu_
  std::map<raft::NodeId, std::unique_ptr<PeerSender>> senders_;  // guarded by mu_
  bool stopped_ = false;                                         // guarded by mu_
};

}  // namespace verdict::coordinator::server
