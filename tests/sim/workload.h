// Workload: the simulated clients. Each request decides one gtid (COMMIT or ABORT) by
// proposing an encoded Decide to the node it believes leads, and retries — at another
// node, after NotLeader or a timeout — until it sees its entry applied on the node that
// accepted it (the acknowledgement, carrying the register's outcome). Some gtids get two
// clients deciding opposite outcomes, so first-decision-wins is exercised, and some
// proposals are sent twice. FoundationDB workload shape: Start(), run under faults,
// Check() a global invariant. Not thread-safe (the simulator is single-threaded).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/checker.h"
#include "tests/sim/sim_node.h"

namespace verdict::sim {

struct WorkloadOptions {
  Time min_arrival = 5 * kMillis;  // gap between new gtids
  Time max_arrival = 80 * kMillis;
  double conflict = 0.3;   // probability a gtid also gets a client deciding the opposite
  double duplicate = 0.1;  // probability an accepted proposal is sent a second time
  Time request_timeout = 400 * kMillis;  // then the client retries, doubling it each time
  Time max_timeout = 5 * kSeconds;
};

class Workload {
 public:
  using NodeLookup = std::function<SimNode*(raft::NodeId)>;

  Workload(const WorkloadOptions& options, EventQueue* queue, Random* rng, Trace* trace,
           Checker* checker, std::vector<raft::NodeId> node_ids, NodeLookup nodes);
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Starts the arrival of new gtids; StopArrivals() ends it (requests already started keep
  // retrying until acknowledged).
  void Start();
  void StopArrivals() { arriving_ = false; }

  // SimNode's on_apply hook.
  void OnApply(raft::NodeId node, const raft::Entry& e, const txn::ApplyResult& result);

  bool AllAcknowledged() const { return acked_ == requests_.size(); }
  size_t requests() const { return requests_.size(); }
  size_t acknowledged() const { return acked_; }
  size_t gtids() const { return gtids_; }
  uint64_t attempts() const { return attempts_; }
  // The first request not acknowledged yet, described, or "".
  std::string FirstUnacknowledged() const;

  // Every acknowledged outcome is the gtid's first decision (the checker's reference).
  void Check();

  // Self-test: report one acknowledged request with the opposite outcome.
  void InjectLostAck() { lose_ack_ = true; }

 private:
  struct Request {
    std::string gtid;
    txn::DecideCommand cmd;
    std::string data;  // EncodeDecide(cmd)
    raft::NodeId hint = raft::kNoNode;
    uint64_t attempt = 0;  // timeouts of earlier attempts are ignored
    Time timeout = 0;      // of the next accepted attempt (exponential backoff)
    Time retry_delay = 0;  // after a refusal (exponential backoff)
    bool acked = false;
    txn::Outcome result = txn::Outcome::kAbort;
    raft::NodeId acked_by = raft::kNoNode;
  };

  void Arrive();
  void Attempt(size_t r);
  void RetrySoon(size_t r);

  const WorkloadOptions options_;
  EventQueue* queue_;
  Random* rng_;
  Trace* trace_;
  Checker* checker_;
  const std::vector<raft::NodeId> node_ids_;
  NodeLookup nodes_;

  bool arriving_ = false;
  size_t gtids_ = 0;
  std::vector<Request> requests_;
  size_t acked_ = 0;
  uint64_t attempts_ = 0;
  // Proposals accepted by a node and not resolved yet: (node, index) -> (request, term).
  std::map<std::pair<raft::NodeId, raft::Index>, std::pair<size_t, raft::Term>> pending_;
  bool lose_ack_ = false;
};

}  // namespace verdict::sim
