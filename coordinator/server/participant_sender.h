// ParticipantSender: delivers the protocol engine's messages (PREPARE, PRECOMMIT, FENCE,
// COMMIT, ABORT) to participant agents over Thrift and hands their replies back.
//
// One queue per agent address, served by a few worker threads, each with its own
// connection (ParticipantService is synchronous, so concurrency per agent is the number of
// connections). Fire and forget: a call that fails (no connection, timeout, transport
// error) is reported as a kUnavailable reply and the engine re-sends on its own schedule.
// A message equal to one already queued or in flight (same kind, gtid, participant and
// branch) is dropped, so a slow or stopped agent never accumulates the engine's resends.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "coordinator/server/metrics.h"
#include "coordinator/txn/engine_types.h"

namespace verdict::coordinator::server {

struct ParticipantSenderOptions {
  int connections_per_agent = 8;
  int rpc_timeout_ms = 3000;  // connect, send and receive, each
  size_t max_queue = 100000;  // per agent; beyond it messages are dropped (and re-sent)
  uint32_t max_frame_bytes = 64u << 20;
};

class ParticipantSender {
 public:
  // `on_replies` is called from the worker threads, one reply at a time.
  using ReplyFn = std::function<void(txn::ParticipantReply&&)>;

  ParticipantSender(ParticipantSenderOptions options, Metrics& metrics, ReplyFn on_replies);
  ParticipantSender(const ParticipantSender&) = delete;
  ParticipantSender& operator=(const ParticipantSender&) = delete;
  ~ParticipantSender();  // Stop()s

  // Queues each message for its agent (message.to.address). Messages without an address
  // (participant not registered) are answered kUnavailable at once.
  void Send(std::vector<txn::ParticipantMessage>&& messages);

  // Drops what is queued, waits for the calls in flight and joins every thread. Idempotent.
  void Stop();

 private:
  using Key = std::tuple<txn::MessageKind, std::string, std::string, std::string>;
  struct Agent {
    std::string address;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<txn::ParticipantMessage> queue;  // guarded by mu
    std::set<Key> pending;                      // queued or in flight; guarded by mu
    bool stopping = false;                      // guarded by mu
    std::vector<std::thread> workers;
  };

  struct Connection;  // a worker's Thrift client (participant_sender.cc)

  static Key KeyOf(const txn::ParticipantMessage& m);
  Agent& AgentFor(const std::string& address);  // creates it and its workers
  void Work(Agent& agent);
  // One synchronous call on the worker's connection (opened on demand, closed on error).
  txn::ParticipantReply Call(const std::string& address, const txn::ParticipantMessage& m,
                             std::unique_ptr<Connection>& conn);

  const ParticipantSenderOptions options_;
  Metrics& metrics_;
  const ReplyFn on_reply_;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;  // guarded by mu_
  bool stopped_ = false;                                  // guarded by mu_
};

}  // namespace verdict::coordinator::server
