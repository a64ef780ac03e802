#include "coordinator/server/peer_router.h"

#include <spdlog/spdlog.h>

namespace verdict::coordinator::server {

PeerRouter::PeerRouter(raft::NodeId self, const PeerSenderOptions& options, Metrics& metrics)
    : self_(self), options_(options), metrics_(metrics) {}

PeerRouter::~PeerRouter() { Stop(); }

void PeerRouter::UpdatePeers(const raft::Membership& membership) {
  std::vector<std::unique_ptr<PeerSender>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || membership == membership_) return;
    membership_ = membership;
    for (auto it = senders_.begin(); it != senders_.end();) {
      auto m = membership.voters.find(it->first);
      if (m == membership.voters.end() || m->second != it->second->address()) {
        retired.push_back(std::move(it->second));
        it = senders_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [id, address] : membership.voters) {
      if (id == self_ || senders_.count(id)) continue;
      spdlog::info("peer {} at {}", id, address);
      senders_[id] = std::make_unique<PeerSender>(id, address, options_, metrics_);
    }
  }
  // Joined outside the lock: a retiring sender may be blocked in a send.
  for (auto& s : retired) s->Stop();
}

void PeerRouter::Send(std::vector<raft::Message>&& messages) {
  if (messages.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& m : messages) {
    auto it = senders_.find(m.to);
    if (it == senders_.end()) {
      metrics_.messages_dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    it->second->Enqueue(std::move(m));
  }
}

void PeerRouter::Stop() {
  std::map<raft::NodeId, std::unique_ptr<PeerSender>> senders;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    senders.swap(senders_);
  }
  for (auto& [id, s] : senders) s->Stop();
}

}  // namespace verdict::coordinator::server
