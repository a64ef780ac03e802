// Network: the simulated message network between coordinator nodes, and (Post) between
// any endpoints of the transaction workload: coordinator nodes, participant agents and
// clients. Every message gets a seeded fate — dropped, delayed (which reorders),
// duplicated — and links can be cut one way or both ways (partitions; the coordinator
// group's own cuts and the transaction workload's cuts are kept apart so that each heals
// on its own schedule). A message is checked against the partition when it is sent and
// again when it arrives. Not thread-safe (the simulator is single-threaded).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <utility>
#include <vector>

#include "coordinator/raft/types.h"
#include "tests/sim/event_queue.h"
#include "tests/sim/random.h"
#include "tests/sim/trace.h"

namespace verdict::sim {

namespace raft = ::verdict::coordinator::raft;

struct NetworkFaults {
  double drop = 0;       // probability a message is lost
  double duplicate = 0;  // probability a message is delivered twice (independent delays)
  Time min_delay = 100 * kMicros;
  Time max_delay = 5 * kMillis;
  double spike = 0;  // probability of a long delay (up to spike_delay): heavy reordering
  Time spike_delay = 100 * kMillis;
};

struct NetworkStats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;  // random loss
  uint64_t cut = 0;      // lost to a partition
  uint64_t duplicated = 0;
};

class Network {
 public:
  // `deliver` hands a message to its destination node (which may be down).
  Network(EventQueue* queue, Random* rng, Trace* trace,
          std::function<void(const raft::Message&)> deliver);
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  void SetFaults(const NetworkFaults& faults) { faults_ = faults; }
  const NetworkFaults& faults() const { return faults_; }

  void Send(const raft::Message& m);
  // A message between endpoints of the transaction workload: `deliver` runs at arrival (once
  // per copy) unless the link is cut then.
  void Post(raft::NodeId from, raft::NodeId to, std::function<void()> deliver);

  // Partitions. Cut(a, b) blocks messages from a to b only.
  void Cut(raft::NodeId from, raft::NodeId to) { blocked_.insert({from, to}); }
  // Splits `nodes` into `side` and the rest, cutting both directions between them.
  void Split(const std::vector<raft::NodeId>& side, const std::vector<raft::NodeId>& nodes);
  void HealAll() { blocked_.clear(); }
  bool Blocked(raft::NodeId from, raft::NodeId to) const { return blocked_.count({from, to}) != 0; }
  bool partitioned() const { return !blocked_.empty(); }
  // The transaction workload's cuts (participant partitions, coordinator-group isolation).
  void CutTxn(raft::NodeId from, raft::NodeId to) { txn_blocked_.insert({from, to}); }
  void HealTxn() { txn_blocked_.clear(); }
  bool txn_partitioned() const { return !txn_blocked_.empty(); }
  const NetworkStats& stats() const { return stats_; }

 private:
  void Schedule(const raft::Message& m);
  bool PostBlocked(raft::NodeId from, raft::NodeId to) const {
    return Blocked(from, to) || txn_blocked_.count({from, to}) != 0;
  }
  Time Delay();

  EventQueue* queue_;
  Random* rng_;
  Trace* trace_;
  std::function<void(const raft::Message&)> deliver_;
  NetworkFaults faults_;
  std::set<std::pair<raft::NodeId, raft::NodeId>> blocked_;
  std::set<std::pair<raft::NodeId, raft::NodeId>> txn_blocked_;
  NetworkStats stats_;
};

}  // namespace verdict::sim
