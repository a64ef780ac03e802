#include "coordinator/server/peer_sender.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "RaftService.h"
#include "coordinator/server/node_options.h"
#include "coordinator/server/raft_codec.h"
#include "coordinator/server/rpc_names.h"
#include "thrift/framed_transport.h"
#include "thrift/thrift_channel.h"

namespace verdict::coordinator::server {

namespace {

// An upper bound of the message's encoded size (binary protocol: ~100 bytes of fixed
// fields per message, ~40 per entry).
size_t PayloadBytes(const raft::Message& m) {
  size_t n = 128 + m.context.size();
  for (const auto& e : m.entries) n += 48 + e.data.size();
  if (m.snapshot && m.snapshot->data) n += m.snapshot->data->size();
  return n;
}

}  // namespace

PeerSender::PeerSender(raft::NodeId peer, std::string address, const PeerSenderOptions& options,
                       Metrics& metrics)
    : peer_(peer),
      address_(std::move(address)),
      options_([&] {
        // A batch must fit in the receiver's frame limit (with room for the envelope).
        PeerSenderOptions o = options;
        o.max_batch_bytes = std::min<size_t>(o.max_batch_bytes, o.max_frame_bytes / 2);
        return o;
      }()),
      metrics_(metrics),
      backoff_ms_(options.min_backoff_ms) {
  thread_ = std::thread([this] {
    std::string name = "peer-" + std::to_string(peer_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    Run();
  });
}

PeerSender::~PeerSender() { Stop(); }

void PeerSender::Enqueue(raft::Message m) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || down_ || queue_.size() >= options_.max_queued_messages) {
    metrics_.messages_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queued_bytes_ += PayloadBytes(m);
  queue_.push_back(std::move(m));
  if (queue_.size() == 1) cv_.notify_one();
}

void PeerSender::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeerSender::DropQueued(size_t n) {
  metrics_.messages_dropped.fetch_add(n, std::memory_order_relaxed);
}

bool PeerSender::Connect() {
  using apache::thrift::TConfiguration;
  using verdict::rpc::FramedTransport;
  using namespace apache::thrift::transport;
  using apache::thrift::protocol::TBinaryProtocol;
  using apache::thrift::protocol::TMultiplexedProtocol;
  std::string host;
  int port;
  if (!rpc::SplitHostPort(address_, &host, &port).ok()) return false;
  try {
    auto config = std::make_shared<TConfiguration>(static_cast<int>(options_.max_frame_bytes),
                                                   static_cast<int>(options_.max_frame_bytes));
    auto socket = std::make_shared<TSocket>(host, port, config);
    socket->setConnTimeout(options_.connect_timeout_ms);
    socket->setSendTimeout(options_.send_timeout_ms);
    socket->setNoDelay(true);
    auto framed = FramedTransport::OverSocket(socket, config);
    framed->open();
    auto protocol = std::make_shared<TBinaryProtocol>(framed);
    auto mux = std::make_shared<TMultiplexedProtocol>(protocol, kRaftServiceName);
    client_ = std::make_unique<rpc::RaftServiceClient>(mux);
    transport_ = framed;
  } catch (const apache::thrift::TException& e) {
    if (!reported_down_) {
      spdlog::warn("peer {} at {} unreachable: {}", peer_, address_, e.what());
      reported_down_ = true;
    }
    return false;
  }
  metrics_.peer_connects.fetch_add(1, std::memory_order_relaxed);
  if (reported_down_) spdlog::info("peer {} at {} reachable again", peer_, address_);
  reported_down_ = false;
  backoff_ms_ = options_.min_backoff_ms;
  return true;
}

void PeerSender::Disconnect() {
  client_.reset();
  if (transport_) {
    try {
      transport_->close();
    } catch (const apache::thrift::TException&) {
    }
    transport_.reset();
  }
}

void PeerSender::Run() {
  std::vector<raft::Message> batch;
  std::vector<rpc::RaftMessage> wire;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    // Take a batch of at most max_batch_bytes (at least one message).
    batch.clear();
    size_t bytes = 0;
    while (!queue_.empty() && (batch.empty() || bytes < options_.max_batch_bytes)) {
      size_t b = PayloadBytes(queue_.front());
      bytes += b;
      queued_bytes_ -= b;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();

    bool sent = false;
    if (client_ || Connect()) {
      wire.clear();
      wire.resize(batch.size());
      for (size_t i = 0; i < batch.size(); ++i) MessageToThrift(std::move(batch[i]), &wire[i]);
      try {
        client_->Deliver(wire);
        sent = true;
        metrics_.messages_sent.fetch_add(batch.size(), std::memory_order_relaxed);
      } catch (const apache::thrift::TException& e) {
        spdlog::warn("sending to peer {} at {} failed: {}", peer_, address_, e.what());
        reported_down_ = true;
        Disconnect();
      }
    }
    lock.lock();
    if (sent) continue;
    // The peer is down: drop this batch and everything queued, and drop new messages
    // until the backoff has passed.
    DropQueued(batch.size() + queue_.size());
    queue_.clear();
    queued_bytes_ = 0;
    down_ = true;
    cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms_), [this] { return stopping_; });
    backoff_ms_ = std::min(backoff_ms_ * 2, options_.max_backoff_ms);
    down_ = false;
  }
  size_t left = queue_.size();
  queue_.clear();
  lock.unlock();
  DropQueued(left);
  Disconnect();
}

}  // namespace verdict::coordinator::server
