#include "tests/sim/simulation.h"

#include <cstdio>

namespace verdict::sim {

namespace {
using raft::NodeId;

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

template <typename T>
T PickOf(Random& rng, std::initializer_list<T> values) {
  return rng.Pick(std::vector<T>(values));
}
}  // namespace

Simulation::Simulation(const SimOptions& options)
    : options_(options),
      rng_(options.seed * 0x9E3779B97F4A7C15ull + 1),
      trace_(&queue_, options.verbose),
      checker_(&trace_),
      network_(&queue_, &rng_, &trace_, [this](const raft::Message& m) {
        auto it = nodes_.find(m.to);
        if (it != nodes_.end()) it->second->Deliver(m);
      }) {}

Simulation::~Simulation() = default;

void Simulation::ChooseParams() {
  Params& p = params_;
  p.nodes = options_.nodes != 0 ? options_.nodes : (rng_.Chance(0.5) ? 3 : 5);
  raft::Membership membership;
  for (int i = 1; i <= p.nodes; ++i) {
    NodeId id = static_cast<NodeId>(i);
    ids_.push_back(id);
    membership.voters[id] = "n" + std::to_string(id);
    p.clock_rate[id] = rng_.RealRange(0.9, 1.1);  // clocks drift up to 10% apart
  }
  raft::Config& rc = p.node.raft;
  rc.initial_membership = membership;
  rc.election_ticks = 10;
  rc.heartbeat_ticks = static_cast<int>(rng_.Range(1, 3));
  rc.pre_vote = rng_.Chance(0.85);
  rc.check_quorum = rng_.Chance(0.85);
  rc.max_entries_per_msg = PickOf<size_t>(rng_, {1, 2, 4, 16, 1024});
  rc.max_bytes_per_msg = PickOf<size_t>(rng_, {128, 4096, 1 << 20});
  rc.max_inflight_msgs = PickOf<size_t>(rng_, {1, 2, 4, 64});
  // Tiny batches with a tiny window replicate a few dozen entries a second: too slow for
  // the clients' offered load, which would make liveness a matter of configuration.
  if (rc.max_entries_per_msg * rc.max_inflight_msgs < 8) rc.max_inflight_msgs = 8;

  p.node.storage.segment_bytes = PickOf<uint64_t>(rng_, {512, 2048, 16384, 1 << 20});
  p.node.storage.snapshots_to_keep = static_cast<int>(rng_.Range(1, 3));
  p.node.snapshot_every = PickOf<raft::Index>(rng_, {3, 5, 10, 25, 100, 0});
  p.node.sync_now = PickOf<double>(rng_, {1.0, 0.7, 0.3, 0.0});
  p.node.max_sync_delay = rng_.RangeSigned(100 * kMicros, 5 * kMillis);
  p.node.torn_write = rng_.RealRange(0, 0.8);

  p.net.drop = PickOf<double>(rng_, {0, 0.01, 0.05, 0.2});
  p.net.duplicate = PickOf<double>(rng_, {0, 0.02, 0.1});
  p.net.min_delay = rng_.RangeSigned(50 * kMicros, 1 * kMillis);
  p.net.max_delay = p.net.min_delay + rng_.RangeSigned(500 * kMicros, 20 * kMillis);
  p.net.spike = PickOf<double>(rng_, {0, 0.01, 0.05});
  p.net.spike_delay = rng_.RangeSigned(20 * kMillis, 500 * kMillis);

  p.crash = PickOf<double>(rng_, {0, 0.1, 0.25, 0.5});
  p.crash_in_sync = PickOf<double>(rng_, {0, 0.002, 0.01, 0.03});
  p.node.crash_in_storage_call = PickOf<double>(rng_, {0, 0, 0.001, 0.005, 0.02});
  p.partition = PickOf<double>(rng_, {0, 0.1, 0.25, 0.5});
  p.transfer = PickOf<double>(rng_, {0, 0.1, 0.3});
  p.membership = PickOf<double>(rng_, {0, 0, 0.1, 0.3});
  p.max_downtime = PickOf<Time>(rng_, {20 * kMillis, 500 * kMillis, 3 * kSeconds});
  p.max_partition = PickOf<Time>(rng_, {100 * kMillis, 1 * kSeconds, 5 * kSeconds});

  p.workload.conflict = PickOf<double>(rng_, {0.1, 0.3, 0.6});
  p.workload.duplicate = PickOf<double>(rng_, {0, 0.1, 0.3});
  p.workload.min_arrival = rng_.RangeSigned(1 * kMillis, 10 * kMillis);
  p.workload.max_arrival = p.workload.min_arrival + rng_.RangeSigned(0, 100 * kMillis);

  // The engine's timings, scaled to runs of a few tens of virtual seconds.
  txn::EngineConfig& ec = p.node.engine;
  ec.default_deadline_ms = 2000;
  ec.vote_timeout_ms = 500;
  ec.retry_initial_ms = 20;
  ec.retry_max_ms = 500;
  ec.proposal_retry_ms = 500;
  ec.adopted_precommit_fence_ms = 1500;
  ec.end_batch_max = 16;
  ec.end_batch_delay_ms = 20;
  if (options_.workload == WorkloadKind::kTxn) {
    ec.vote_timeout_ms = rng_.RangeSigned(100, 1500);
    ec.retry_initial_ms = rng_.RangeSigned(5, 50);
    ec.retry_max_ms = ec.retry_initial_ms + rng_.RangeSigned(50, 1000);
    ec.proposal_retry_ms = rng_.RangeSigned(200, 1500);
    ec.adopted_precommit_fence_ms = rng_.RangeSigned(200, 3000);
    ec.end_batch_max = PickOf<size_t>(rng_, {1, 4, 64});
    ec.end_batch_delay_ms = rng_.RangeSigned(1, 50);
    TxnOptions& t = p.txn;
    t.agents = static_cast<int>(rng_.Range(2, 5));
    t.max_branches = static_cast<int>(rng_.Range(2, static_cast<uint64_t>(t.agents)));
    t.min_arrival = rng_.RangeSigned(5 * kMillis, 20 * kMillis);
    t.max_arrival = t.min_arrival + rng_.RangeSigned(0, 60 * kMillis);
    t.three_pc = PickOf<double>(rng_, {0, 0.5, 0.5, 1});
    t.client_abort = PickOf<double>(rng_, {0, 0.1, 0.3});
    t.min_deadline_ms = rng_.RangeSigned(100, 1000);
    t.max_deadline_ms = t.min_deadline_ms + rng_.RangeSigned(0, 3000);
    t.vote_no = PickOf<double>(rng_, {0, 0.02, 0.1});
    t.vote_read_only = PickOf<double>(rng_, {0, 0.05, 0.15});
    t.one_phase_fail = PickOf<double>(rng_, {0, 0.1});
    t.active_timeout = rng_.RangeSigned(1 * kSeconds, 5 * kSeconds);
    t.inquire_after = rng_.RangeSigned(50 * kMillis, 1 * kSeconds);
    t.inquire_every = rng_.RangeSigned(50 * kMillis, 500 * kMillis);
    t.terminate_after = t.inquire_after + rng_.RangeSigned(0, 2 * kSeconds);
    t.self_commit_after = rng_.RangeSigned(100 * kMillis, 3 * kSeconds);
    t.round_timeout = rng_.RangeSigned(50 * kMillis, 500 * kMillis);
    t.agent_crash = PickOf<double>(rng_, {0, 0.05, 0.15});
    t.agent_partition = PickOf<double>(rng_, {0, 0.1, 0.3});
    t.isolate_group = PickOf<double>(rng_, {0, 0.02, 0.05});
    t.max_agent_downtime = PickOf<Time>(rng_, {50 * kMillis, 1 * kSeconds, 3 * kSeconds});
    t.max_agent_partition = PickOf<Time>(rng_, {200 * kMillis, 2 * kSeconds, 5 * kSeconds});
    t.mutation = options_.mutation;
    if (t.mutation == ParticipantMutation::kPrecommitWhileFenced) {
      // Self-test: make fencing (termination during outages) frequent, in 3PC only.
      t.three_pc = 1;
      t.isolate_group = 0.1;
      t.agent_partition = 0.3;
      t.self_commit_after = 100 * kMillis;
    }
    p.group_crash = PickOf<double>(rng_, {0, 0.01, 0.03});
  }

  if (options_.injection == Injection::kSkipSync) {
    // Make power cuts land on writes that were claimed durable.
    p.node.sync_now = 0;
    p.node.max_sync_delay = 5 * kMillis;
    p.node.torn_write = 0;
    p.crash = 0.7;
    p.max_downtime = 20 * kMillis;
  }
}

std::string Simulation::DescribeParams() const {
  const Params& p = params_;
  char buf[640];
  std::snprintf(
      buf, sizeof(buf),
      "nodes=%d hb=%d prevote=%d cq=%d batch=%zu/%zuB inflight=%zu seg=%lluB keep=%d "
      "snap_every=%llu sync_now=%.1f sync_delay<=%lldus torn=%.2f drop=%.2f dup=%.2f "
      "delay=%lld-%lldus spike=%.2f/%lldms crash=%.2f/%.3f/%.3f part=%.2f xfer=%.2f down<=%lldms "
      "part<=%lldms conf=%.1f conflict=%.1f",
      p.nodes, p.node.raft.heartbeat_ticks, p.node.raft.pre_vote, p.node.raft.check_quorum,
      p.node.raft.max_entries_per_msg, p.node.raft.max_bytes_per_msg, p.node.raft.max_inflight_msgs,
      U(p.node.storage.segment_bytes), p.node.storage.snapshots_to_keep, U(p.node.snapshot_every),
      p.node.sync_now, static_cast<long long>(p.node.max_sync_delay), p.node.torn_write, p.net.drop,
      p.net.duplicate, static_cast<long long>(p.net.min_delay),
      static_cast<long long>(p.net.max_delay), p.net.spike,
      static_cast<long long>(p.net.spike_delay / kMillis), p.crash, p.crash_in_sync,
      p.node.crash_in_storage_call, p.partition, p.transfer,
      static_cast<long long>(p.max_downtime / kMillis),
      static_cast<long long>(p.max_partition / kMillis), p.membership, p.workload.conflict);
  std::string out = buf;
  if (options_.workload == WorkloadKind::kTxn) {
    const TxnOptions& t = p.txn;
    std::snprintf(
        buf, sizeof(buf),
        " | txn agents=%d branches<=%d 3pc=%.1f abort=%.1f no=%.2f ro=%.2f vote_to=%lldms "
        "retry=%lld-%lldms fence=%lldms inquire=%lldms term=%lldms selfc=%lldms "
        "acrash=%.2f apart=%.2f isolate=%.2f gcrash=%.2f",
        t.agents, t.max_branches, t.three_pc, t.client_abort, t.vote_no, t.vote_read_only,
        static_cast<long long>(p.node.engine.vote_timeout_ms),
        static_cast<long long>(p.node.engine.retry_initial_ms),
        static_cast<long long>(p.node.engine.retry_max_ms),
        static_cast<long long>(p.node.engine.adopted_precommit_fence_ms),
        static_cast<long long>(t.inquire_after / kMillis),
        static_cast<long long>(t.terminate_after / kMillis),
        static_cast<long long>(t.self_commit_after / kMillis), t.agent_crash, t.agent_partition,
        t.isolate_group, p.group_crash);
    out += buf;
  }
  return out;
}

SimResult Simulation::Run() {
  ChooseParams();
  result_.nodes = params_.nodes;
  result_.params = DescribeParams();
  trace_.Log("seed %llu: %s", U(options_.seed), result_.params.c_str());
  network_.SetFaults(params_.net);

  NodeContext ctx{&queue_,
                  &network_,
                  &checker_,
                  &rng_,
                  &trace_,
                  options_.seed,
                  [this](NodeId id, const raft::Entry& e, const txn::ApplyResult& result) {
                    workload_->OnApply(id, e, result);
                    if (txn_) txn_->OnApply(id, e, result);
                  },
                  [this](NodeId id, const txn::EngineOutput& out) {
                    if (txn_) txn_->OnEngineOutput(id, out);
                  },
                  [this](NodeId id) { AfterNodeEvent(id); },
                  [this](NodeId id) { OnCrashed(id); },
                  [this](NodeId id, Time delay) {
                    if (healing_ || !rng_.Chance(params_.crash_in_sync)) return;
                    queue_.After(rng_.RangeSigned(0, delay - 1), [this, id]() {
                      if (!healing_ && node(id)->up()) CrashNode(id);
                    });
                  }};
  for (NodeId id : ids_) {
    NodeOptions node_options = params_.node;
    node_options.clock_rate = 1.0 / params_.clock_rate[id];  // a slower tick, a slower clock
    nodes_[id] = std::make_unique<SimNode>(id, node_options, ctx);
  }
  workload_ = std::make_unique<Workload>(params_.workload, &queue_, &rng_, &trace_, &checker_, ids_,
                                         [this](NodeId id) { return node(id); });
  if (options_.workload == WorkloadKind::kTxn) {
    txn_ = std::make_unique<TxnWorkload>(params_.txn, &queue_, &rng_, &trace_, &checker_, &network_,
                                         ids_, [this](NodeId id) { return node(id); });
  }
  switch (options_.injection) {
    case Injection::kNone:
      break;
    case Injection::kSkipSync:
      for (NodeId id : ids_) node(id)->Inject(options_.injection);
      break;
    default:
      node(1)->Inject(options_.injection);
  }
  if (options_.lose_ack) workload_->InjectLostAck();

  for (NodeId id : ids_) node(id)->Start();
  for (NodeId id : ids_) ScheduleTick(id);
  ScheduleFault();
  if (txn_) {
    txn_->Start();
  } else {
    workload_->Start();
  }

  // Faulty phase.
  uint64_t steps = options_.steps != 0 ? options_.steps : kDefaultSteps;
  while (!checker_.failed() && queue_.executed() < steps && queue_.RunNext()) {
  }
  // Healed phase: no more faults; everything must converge within the bound.
  if (!checker_.failed()) {
    Heal();
    Time heal_start = queue_.now();
    while (!checker_.failed() && !converged_ && queue_.now() < heal_start + kHealBound &&
           queue_.RunNext()) {
    }
    result_.heal_time = queue_.now() - heal_start;
    if (!checker_.failed() && !converged_) {
      checker_.Fail("liveness: not converged %lld ms after healing: %s",
                    static_cast<long long>(kHealBound / kMillis), DescribeState().c_str());
    }
  }
  if (!checker_.failed()) FinalCheck();

  result_.ok = !checker_.failed();
  result_.failure = checker_.failure();
  result_.events = queue_.executed();
  result_.virtual_time = queue_.now();
  result_.terms_with_leader = checker_.leaders_seen();
  result_.committed = checker_.committed_index();
  result_.gtids = workload_->gtids();
  result_.requests = workload_->requests();
  result_.net = network_.stats();
  for (NodeId id : ids_) {
    result_.injection_fired |= node(id)->injection_fired();
    const NodeStats& s = node(id)->stats();
    NodeStats& t = result_.node_stats;
    t.boots += s.boots;
    t.snapshots_installed += s.snapshots_installed;
    t.compactions += s.compactions;
    t.syncs += s.syncs;
    t.torn_files += s.torn_files;
    t.lost_readys += s.lost_readys;
    t.crashes_in_call += s.crashes_in_call;
  }
  if (options_.forge_leader) result_.injection_fired = forged_;
  if (options_.lose_ack) result_.injection_fired = workload_->acknowledged() > 0;
  if (options_.mutation != ParticipantMutation::kNone) result_.injection_fired = true;
  if (txn_) {
    result_.txn = txn_->stats();
    result_.gtids = txn_->stats().transactions;
  }
  trace_.Log("end: %s; %llu events, committed %llu, %zu gtids, %zu requests, %zu leaders",
             result_.ok ? "ok" : result_.failure.c_str(), U(result_.events), U(result_.committed),
             result_.gtids, result_.requests, result_.terms_with_leader);
  return result_;
}

void Simulation::ScheduleTick(NodeId id) {
  double rate = params_.clock_rate[id];
  Time period = static_cast<Time>(static_cast<double>(params_.tick) * rate);
  Time jitter = period / 50;  // 2% jitter per tick
  queue_.After(period + rng_.RangeSigned(-jitter, jitter), [this, id]() {
    node(id)->Tick();
    ScheduleTick(id);
  });
}

void Simulation::ScheduleFault() {
  queue_.After(rng_.RangeSigned(params_.fault_min, params_.fault_max), [this]() { Fault(); });
}

NodeId Simulation::Leader() const {
  NodeId leader = raft::kNoNode;
  raft::Term term = 0;
  for (const auto& [id, n] : nodes_) {
    if (n->up() && n->raft()->role() == raft::Role::kLeader && n->raft()->term() >= term) {
      leader = id;
      term = n->raft()->term();
    }
  }
  return leader;
}

void Simulation::Fault() {
  if (healing_) return;
  if (rng_.Chance(params_.crash)) {
    std::vector<NodeId> up;
    for (NodeId id : ids_) {
      if (node(id)->up()) up.push_back(id);
    }
    if (!up.empty()) {
      // Prefer the leader now and then: that is where the interesting crashes are.
      NodeId victim = rng_.Pick(up);
      NodeId leader = Leader();
      if (leader != raft::kNoNode && rng_.Chance(0.3)) victim = leader;
      CrashNode(victim);
    }
  }
  if (rng_.Chance(params_.partition)) Partition();
  if (txn_) {
    txn_->Fault();
    if (rng_.Chance(params_.group_crash)) {
      // Coordinator-group outage: every node loses power; each comes back on its own time.
      ++result_.group_crashes;
      trace_.Log("outage: every coordinator node crashes");
      for (NodeId id : ids_) {
        if (!node(id)->up()) continue;
        node(id)->Crash();
        ++result_.crashes;
        queue_.After(rng_.RangeSigned(200 * kMillis, 3 * kSeconds),
                     [this, id]() { node(id)->Start(); });
      }
    }
  }
  if (rng_.Chance(params_.membership)) ChangeMembership(/*add_only=*/false);
  if (rng_.Chance(params_.transfer)) {
    NodeId leader = Leader();
    if (leader != raft::kNoNode) {
      NodeId target = rng_.Pick(ids_);
      if (target != leader) {
        ++result_.transfers;
        node(leader)->TransferLeadership(target);
      }
    }
  }
  ScheduleFault();
}

void Simulation::CrashNode(NodeId id) {
  node(id)->Crash();
  OnCrashed(id);
}

void Simulation::OnCrashed(NodeId id) {
  ++result_.crashes;
  queue_.After(rng_.RangeSigned(0, params_.max_downtime), [this, id]() { node(id)->Start(); });
}

void Simulation::ChangeMembership(bool add_only) {
  NodeId leader = Leader();
  if (leader == raft::kNoNode) return;
  const raft::Membership& m = node(leader)->raft()->membership();
  raft::ConfChange change;
  for (NodeId id : ids_) {
    if (!m.Contains(id)) {
      change.kind = raft::ConfChange::Kind::kAddVoter;
      change.node = id;
      change.address = "n" + std::to_string(id);
      break;
    }
  }
  if (change.node == raft::kNoNode) {
    if (add_only || m.voters.size() < 3) return;
    change.kind = raft::ConfChange::Kind::kRemoveVoter;
    change.node = rng_.Pick(ids_);  // the leader itself, sometimes
  }
  raft::Index index = 0;
  Status s = node(leader)->ProposeConfChange(change, &index);
  trace_.Log("n%llu proposes %s n%llu: %s (i%llu)", U(leader),
             change.kind == raft::ConfChange::Kind::kAddVoter ? "add" : "remove", U(change.node),
             s.ToString().c_str(), U(index));
  if (s.ok()) ++result_.conf_changes;
}

void Simulation::Partition() {
  if (network_.partitioned()) return;
  ++result_.partitions;
  NodeId leader = Leader();
  NodeId x = rng_.Pick(ids_);
  switch (rng_.Range(0, 3)) {
    case 0: {  // random split into two sides
      std::vector<NodeId> side;
      for (NodeId id : ids_) {
        if (rng_.Chance(0.5)) side.push_back(id);
      }
      network_.Split(side, ids_);
      trace_.Log("partition: random split (%zu | %zu)", side.size(), ids_.size() - side.size());
      break;
    }
    case 1: {  // isolate the leader (or a random node)
      NodeId victim = leader != raft::kNoNode ? leader : x;
      network_.Split({victim}, ids_);
      trace_.Log("partition: n%llu isolated", U(victim));
      break;
    }
    case 2: {  // one way: x can send but not hear, or hear but not send
      bool deaf = rng_.Chance(0.5);
      for (NodeId id : ids_) {
        if (id == x) continue;
        if (deaf) {
          network_.Cut(id, x);
        } else {
          network_.Cut(x, id);
        }
      }
      trace_.Log("partition: n%llu %s", U(x), deaf ? "cannot hear" : "cannot send");
      break;
    }
    default: {  // one link cut both ways: the rest stays connected (non-transitive)
      NodeId y = rng_.Pick(ids_);
      if (y == x) y = ids_[(x % ids_.size())];
      network_.Cut(x, y);
      network_.Cut(y, x);
      trace_.Log("partition: link n%llu-n%llu cut", U(x), U(y));
      break;
    }
  }
  uint64_t gen = ++partition_gen_;
  queue_.After(rng_.RangeSigned(10 * kMillis, params_.max_partition), [this, gen]() {
    if (gen != partition_gen_ || healing_) return;
    network_.HealAll();
    trace_.Log("partition healed");
  });
}

void Simulation::AfterNodeEvent(NodeId id) {
  const raft::Raft* a = node(id)->raft();
  if (a == nullptr) return;
  for (NodeId other : ids_) {
    if (other == id || !node(other)->up()) continue;
    auto key = std::make_pair(std::min(id, other), std::max(id, other));
    auto versions = std::make_pair(node(key.first)->log_version(), node(key.second)->log_version());
    auto [it, inserted] = matched_.emplace(key, versions);
    if (!inserted && it->second == versions) continue;  // neither log changed
    it->second = versions;
    checker_.CheckLogMatching(*a, *node(other)->raft());
  }
  if (options_.forge_leader && !forged_ && a->role() == raft::Role::kLeader) {
    forged_ = true;
    NodeId other = id == ids_.back() ? ids_.front() : id + 1;
    checker_.ObserveLeader(other, a->term());  // a forged sighting of a second leader
  }
}

void Simulation::Heal() {
  healing_ = true;
  trace_.Log("heal: faults stop, network healed, crashed nodes restart");
  workload_->StopArrivals();
  network_.HealAll();
  ++partition_gen_;
  NetworkFaults calm;
  calm.min_delay = params_.net.min_delay;
  calm.max_delay = std::min(params_.net.max_delay, 2 * kMillis);
  network_.SetFaults(calm);
  for (NodeId id : ids_) {
    node(id)->EnableStorageCrashes(false);
    node(id)->Start();
  }
  if (txn_) txn_->Heal();
  Probe();
}

void Simulation::Probe() {
  if (Converged()) {
    converged_ = true;
    return;
  }
  ChangeMembership(/*add_only=*/true);
  queue_.After(10 * kMillis, [this]() { Probe(); });
}

bool Simulation::Converged() const {
  for (const auto& [id, n] : nodes_) {
    if (!n->up()) return false;
  }
  if (!workload_->AllAcknowledged()) return false;
  NodeId leader = Leader();
  if (leader == raft::kNoNode) return false;
  const raft::Raft& l = *nodes_.at(leader)->raft();
  if (l.commit_index() != l.last_index()) return false;
  if (l.membership().voters.size() != ids_.size()) return false;
  for (const auto& [id, n] : nodes_) {
    if (n->applied() != l.commit_index()) return false;
  }
  return txn_ == nullptr || txn_->Settled(nodes_.at(leader).get());
}

std::string Simulation::DescribeState() const {
  std::string out;
  for (const auto& [id, n] : nodes_) {
    char buf[160];
    if (!n->up()) {
      std::snprintf(buf, sizeof(buf), "n%llu down; ", U(id));
    } else {
      const raft::Raft& r = *n->raft();
      std::snprintf(buf, sizeof(buf), "n%llu %s t%llu last %llu commit %llu applied %llu; ", U(id),
                    raft::RoleName(r.role()), U(r.term()), U(r.last_index()), U(r.commit_index()),
                    U(n->applied()));
    }
    out += buf;
  }
  out += std::to_string(workload_->acknowledged()) + "/" + std::to_string(workload_->requests()) +
         " requests acknowledged";
  std::string first = workload_->FirstUnacknowledged();
  if (!first.empty()) out += ", waiting for " + first;
  if (txn_) {
    NodeId leader = Leader();
    std::string why =
        txn_->DescribeUnsettled(leader == raft::kNoNode ? nullptr : nodes_.at(leader).get());
    if (!why.empty()) out += "; transactions: " + why;
  }
  return out;
}

void Simulation::FinalCheck() {
  raft::Index committed = checker_.committed_index();
  const SimNode* first = nullptr;
  for (NodeId id : ids_) {
    const SimNode* n = node(id);
    if (n->applied() != committed) {
      checker_.Fail("liveness: n%llu applied %llu after healing, others applied %llu", U(id),
                    U(n->applied()), U(committed));
      return;
    }
    checker_.CheckTable(id, n->applied(), n->table(), "at the end,");
    if (first != nullptr && first->table().Serialize() != n->table().Serialize()) {
      checker_.Fail("state-machine safety: n%llu and n%llu registers differ at the end",
                    U(first->id()), U(id));
    }
    first = n;
  }
  workload_->Check();
  if (txn_) txn_->Check();
}

}  // namespace verdict::sim
