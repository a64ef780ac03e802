#include "coordinator/server/raft_handler.h"

#include <spdlog/spdlog.h>

#include "coordinator/server/raft_codec.h"

namespace verdict::coordinator::server {

void RaftHandler::Deliver(const std::vector<rpc::RaftMessage>& messages) {
  // The generated processor passes its own (non-const) argument struct and discards it
  // after this call: moving the payloads out avoids copying entries and snapshots.
  auto& in = const_cast<std::vector<rpc::RaftMessage>&>(messages);
  std::vector<raft::Message> out;
  out.reserve(in.size());
  for (rpc::RaftMessage& t : in) {
    raft::Message m;
    Status s = MessageFromThrift(std::move(t), &m);
    if (!s.ok() || m.to != self_) {
      metrics_.messages_dropped.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("dropped Raft message: {}",
                    s.ok() ? "addressed to node " + std::to_string(m.to) : s.ToString());
      continue;
    }
    out.push_back(std::move(m));
  }
  if (!out.empty()) node_.Deliver(std::move(out));
}

}  // namespace verdict::coordinator::server
