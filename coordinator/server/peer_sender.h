// PeerSender: delivers this node's Raft messages to one peer over one persistent Thrift
// connection, batching whatever queued up into one oneway Deliver() call. While the peer
// is unreachable it drops messages (Raft tolerates loss) and reconnects with backoff.
// Thread-safe: Enqueue() from any thread; one internal thread does the I/O.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "coordinator/raft/types.h"
#include "coordinator/server/metrics.h"

namespace verdict::rpc {
class RaftServiceClient;
}
namespace apache::thrift::transport {
class TTransport;
}

namespace verdict::coordinator::server {

namespace raft = ::verdict::coordinator::raft;

struct PeerSenderOptions {
  size_t max_queued_messages = 16384;  // beyond this, new messages are dropped
  size_t max_batch_bytes = 8u << 20;   // payload bytes per Deliver() (one message may exceed)
  uint32_t max_frame_bytes = 128u << 20;
  int connect_timeout_ms = 500;
  int send_timeout_ms = 2000;  // a peer that stops reading is treated as down
  int min_backoff_ms = 20;
  int max_backoff_ms = 1000;
};

class PeerSender {
 public:
  PeerSender(raft::NodeId peer, std::string address, const PeerSenderOptions& options,
             Metrics& metrics);
  PeerSender(const PeerSender&) = delete;
  PeerSender& operator=(const PeerSender&) = delete;
  ~PeerSender();  // Stop()s

  // Queues `m` for the peer, or drops it if the peer is down or the queue is full.
  // Never blocks on I/O.
  void Enqueue(raft::Message m);
  // Drops what is queued, closes the connection and joins the thread. Idempotent.
  void Stop();

  const std::string& address() const { return address_; }

 private:
  void Run();
  bool Connect();
  void Disconnect();
  void DropQueued(size_t n);

  const raft::NodeId peer_;
  const std::string address_;
  const PeerSenderOptions options_;
  Metrics& metrics_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<raft::Message> queue_;  // guarded by mu_
  size_t queued_bytes_ = 0;          // guarded by mu_
  bool down_ = false;                // guarded by mu_: drop on Enqueue while backing off
  bool stopping_ = false;            // guarded by mu_

  // Owned by the sender thread.
  std::shared_ptr<apache::thrift::transport::TTransport> transport_;
  std::unique_ptr<rpc::RaftServiceClient> client_;
  int backoff_ms_;
  bool reported_down_ = false;

  std::thread thread_;
};

}  // namespace verdict::coordinator::server
