// Simulation: one whole seeded run of a coordinator group — nodes, network, clients and
// the fault scheduler in one thread on virtual time — followed by a healed phase that must
// converge. Run() returns the first violated property, or none. The same options (seed
// included) replay exactly the same run. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/sim/checker.h"
#include "tests/sim/event_queue.h"
#include "tests/sim/network.h"
#include "tests/sim/random.h"
#include "tests/sim/sim_node.h"
#include "tests/sim/trace.h"
#include "tests/sim/txn_workload.h"
#include "tests/sim/workload.h"

namespace verdict::sim {

// What the clients do: decide gtids directly in the log (the legacy Decide command), or run
// transactions through the protocol engine and simulated participants.
enum class WorkloadKind { kDecide, kTxn };

struct SimOptions {
  uint64_t seed = 1;
  WorkloadKind workload = WorkloadKind::kDecide;
  // Self-test: a participant that breaks DESIGN §3-§4 (kTxn only).
  ParticipantMutation mutation = ParticipantMutation::kNone;
  int nodes = 0;         // 3 or 5; 0 = chosen by the seed
  uint64_t steps = 0;    // events in the faulty phase; 0 = default
  bool verbose = false;  // print the trace
  // Self-test: deliberate faults in the simulator's own view that the checkers must catch.
  Injection injection = Injection::kNone;
  bool forge_leader = false;
  bool lose_ack = false;
};

constexpr uint64_t kDefaultSteps = 30000;
// After the faults stop, everything must converge within this much virtual time.
constexpr Time kHealBound = 60 * kSeconds;

struct SimResult {
  bool ok = true;
  std::string failure;  // the first violation
  int nodes = 0;
  uint64_t events = 0;
  Time virtual_time = 0;
  Time heal_time = 0;    // virtual time the healed phase needed to converge
  uint64_t crashes = 0;  // all power cuts, including those inside storage calls
  uint64_t partitions = 0;
  uint64_t transfers = 0;
  uint64_t conf_changes = 0;  // accepted by a leader
  size_t terms_with_leader = 0;
  raft::Index committed = 0;
  size_t gtids = 0;
  size_t requests = 0;
  NetworkStats net;
  NodeStats node_stats;  // summed over nodes
  bool injection_fired = false;
  TxnStats txn;                // kTxn
  uint64_t group_crashes = 0;  // every coordinator node crashed at once
  std::string params;          // the seeded parameters, for the trace and the failure line
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options);
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;
  ~Simulation();

  SimResult Run();

 private:
  // Seeded parameters of one run.
  struct Params {
    int nodes = 3;
    Time tick = 10 * kMillis;
    std::map<raft::NodeId, double> clock_rate;  // per-node tick period multiplier
    NodeOptions node;
    NetworkFaults net;
    Time fault_min = 50 * kMillis;
    Time fault_max = 300 * kMillis;
    double crash = 0.2;
    double crash_in_sync = 0;  // per delayed sync: cut the power before it completes
    double partition = 0.2;
    double transfer = 0.1;
    double membership = 0;  // per fault step: propose a membership change
    Time max_downtime = 2 * kSeconds;
    Time max_partition = 3 * kSeconds;
    WorkloadOptions workload;
    TxnOptions txn;
    double group_crash = 0;  // per fault step: crash every coordinator node at once
  };

  void ChooseParams();
  std::string DescribeParams() const;
  SimNode* node(raft::NodeId id) { return nodes_.at(id).get(); }
  void ScheduleTick(raft::NodeId id);
  void ScheduleFault();
  void Fault();
  void CrashNode(raft::NodeId id);
  // Single-server membership change: remove a voter, or add a removed node back. In the
  // healed phase only adds, until every node is a voter again.
  void ChangeMembership(bool add_only);
  void OnCrashed(raft::NodeId id);  // counts the crash and schedules the restart
  void Partition();
  raft::NodeId Leader() const;  // the live leader of the highest term, or kNoNode
  void AfterNodeEvent(raft::NodeId id);
  void Heal();
  bool Converged() const;
  std::string DescribeState() const;
  void FinalCheck();
  void Probe();

  const SimOptions options_;
  EventQueue queue_;
  Random rng_;
  Trace trace_;
  Checker checker_;
  Network network_;
  Params params_;
  std::vector<raft::NodeId> ids_;
  std::map<raft::NodeId, std::unique_ptr<SimNode>> nodes_;
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<TxnWorkload> txn_;  // kTxn only
  bool healing_ = false;
  bool converged_ = false;
  bool forged_ = false;
  uint64_t partition_gen_ = 0;
  // Log versions of each pair of nodes when log matching was last checked.
  std::map<std::pair<raft::NodeId, raft::NodeId>, std::pair<uint64_t, uint64_t>> matched_;
  SimResult result_;
};

}  // namespace verdict::sim
