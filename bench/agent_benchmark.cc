#include "bench/agent_benchmark.h"

#include <algorithm>
#include <atomic>
#include <latch>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "bench/branch_client.h"
#include "bench/branch_mux.h"
#include "bench/child_process.h"
#include "bench/resource_usage.h"

namespace verdict::bench {

using Clock = std::chrono::steady_clock;

namespace {

// What one client thread saw; merged into its shard after the join.
struct ClientTally {
  uint64_t ok = 0, committed_total = 0, voted_no = 0, transport_errors = 0, rejected = 0,
           commit_retries = 0;
  std::string first_problem;
  LatencySamples latency;
  std::array<std::chrono::nanoseconds, BranchClient::kSteps> step_sum{}, step_max{};
};

// Shared by every client of one run. The time points are written before `go` opens.
struct RunClock {
  explicit RunClock(int clients) : ready(clients) {}
  std::latch ready;  // every client has connected (or given up)
  std::latch go{1};
  Clock::time_point measure_start, measure_end;
};

// Counts one ended branch that ran from `begin` to `end`.
void Record(const BranchClient::Result& r, Clock::time_point begin, Clock::time_point end,
            const RunClock& clock, ClientTally* tally) {
  tally->commit_retries += static_cast<uint64_t>(r.commit_retries);
  const bool measured = end >= clock.measure_start && end <= clock.measure_end;
  switch (r.outcome) {
    case BranchClient::Outcome::kCommitted:
      ++tally->committed_total;
      if (measured) {
        ++tally->ok;
        tally->latency.Add(end - begin);
        for (size_t i = 0; i < r.step.size(); ++i) {
          tally->step_sum[i] += r.step[i];
          tally->step_max[i] = std::max(tally->step_max[i], r.step[i]);
        }
      }
      return;
    case BranchClient::Outcome::kVotedNo:
      ++tally->voted_no;
      break;
    case BranchClient::Outcome::kTransport:
      ++tally->transport_errors;
      break;
    case BranchClient::Outcome::kRejected:
      ++tally->rejected;
      break;
  }
  if (tally->first_problem.empty()) tally->first_problem = r.message;
}

// Unique per (level, shard): gtids are never reused within a run.
std::string GtidPrefix(const AgentRunOptions& options, int clients_per_agent, int shard) {
  return options.gtid_prefix + "-" + std::to_string(clients_per_agent) + "-" +
         std::to_string(shard) + "-";
}

// AgentDriver::kThreads: one thread and connection per client.
void Client(const AgentTarget& agent, int shard, int client, int clients_per_agent,
            const AgentRunOptions& options, RunClock& clock, ClientTally* tally) {
  BranchClient connection(options.call_timeout_ms);
  if (!connection.Connect(agent.address).ok()) ++tally->transport_errors;
  clock.ready.count_down();
  clock.go.wait();
  std::mt19937_64 rng(static_cast<uint64_t>(shard) * 1000003u + static_cast<uint64_t>(client));
  std::uniform_int_distribution<int64_t> account(1, options.accounts);
  const std::string prefix =
      GtidPrefix(options, clients_per_agent, shard) + std::to_string(client) + "-";
  std::vector<rpc::SqlValue> params(1);
  params[0].type = rpc::SqlType::INTEGER;
  params[0].__set_integer(0);
  for (uint64_t i = 0;; ++i) {
    const Clock::time_point begin = Clock::now();
    if (begin >= clock.measure_end || Interrupted()) return;
    if (!connection.connected() && !connection.Connect(agent.address).ok()) {
      ++tally->transport_errors;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    params[0].__set_integer(account(rng));
    BranchClient::Result r =
        connection.RunBranch(agent.name, prefix + std::to_string(i), options.sql, params);
    Record(r, begin, Clock::now(), clock, tally);
    if (r.outcome == BranchClient::Outcome::kRejected) return;  // the run is invalid
  }
}

// AgentDriver::kMux: every client of one agent on one thread (BranchMux).
void MuxClients(const AgentTarget& agent, int shard, int clients_per_agent,
                const AgentRunOptions& options, RunClock& clock, ClientTally* tallies) {
  BranchMux::Options o;
  o.address = agent.address;
  o.participant_name = agent.name;
  o.connections = clients_per_agent;
  o.call_timeout_ms = options.call_timeout_ms;
  o.gtid_prefix = GtidPrefix(options, clients_per_agent, shard);
  o.sql = options.sql;
  o.accounts = options.accounts;
  o.seed = static_cast<uint64_t>(shard) + 1;
  BranchMux mux(o);
  tallies[0].transport_errors += static_cast<uint64_t>(mux.Connect());
  clock.ready.count_down(clients_per_agent);
  clock.go.wait();
  mux.Run(
      Clock::now(), clock.measure_end,
      [&](int client, const BranchClient::Result& r, Clock::time_point begin,
          Clock::time_point end) { Record(r, begin, end, clock, &tallies[client]); },
      [] { return Interrupted(); });
}

}  // namespace

double AgentRun::SlowestPerS() const {
  if (shards.empty()) return std::numeric_limits<double>::quiet_NaN();
  double slowest = PerS(shards[0]);
  for (const ShardRun& s : shards) slowest = std::min(slowest, PerS(s));
  return slowest;
}

double AgentRun::TotalPerS() const {
  double total = 0;
  for (const ShardRun& s : shards) total += PerS(s);
  return total;
}

uint64_t AgentRun::Rejected() const {
  uint64_t n = 0;
  for (const ShardRun& s : shards) n += s.rejected;
  return n;
}

AgentRun RunAgentClosedLoop(const std::vector<AgentTarget>& agents, int clients_per_agent,
                            const AgentRunOptions& options) {
  const int total = static_cast<int>(agents.size()) * clients_per_agent;
  RunClock clock(total);
  std::vector<ClientTally> tallies(static_cast<size_t>(total));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(total));
  for (size_t a = 0; a < agents.size(); ++a) {
    ClientTally* first = &tallies[a * static_cast<size_t>(clients_per_agent)];
    if (options.driver == AgentDriver::kMux) {
      threads.emplace_back(MuxClients, std::cref(agents[a]), static_cast<int>(a), clients_per_agent,
                           std::cref(options), std::ref(clock), first);
      continue;
    }
    for (int c = 0; c < clients_per_agent; ++c) {
      threads.emplace_back(Client, std::cref(agents[a]), static_cast<int>(a), c, clients_per_agent,
                           std::cref(options), std::ref(clock), first + c);
    }
  }
  clock.ready.wait();
  const Clock::time_point start = Clock::now();
  clock.measure_start = start + options.warmup;
  clock.measure_end = clock.measure_start + options.duration;
  clock.go.count_down();

  // Readings around the measured window.
  while (Clock::now() < clock.measure_start && !Interrupted()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<double> cpu_before;
  for (const AgentTarget& t : agents) cpu_before.push_back(ProcessCpuSeconds(t.pid));
  const double bench_before = SelfCpuSeconds();
  const MachineCpu machine_before = ReadMachineCpu();
  const Clock::time_point read_before = Clock::now();
  while (Clock::now() < clock.measure_end && !Interrupted()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double seconds_read = std::chrono::duration<double>(Clock::now() - read_before).count();
  AgentRun run;
  run.clients_per_agent = clients_per_agent;
  run.driver = options.driver;
  run.seconds = std::chrono::duration<double>(options.duration).count();
  run.bench_cpu_pct = 100 * (SelfCpuSeconds() - bench_before) / seconds_read;
  const MachineCpu machine_after = ReadMachineCpu();
  const double machine_total = machine_after.total - machine_before.total;
  run.machine_busy_pct =
      machine_total > 0 ? 100 * (machine_after.busy - machine_before.busy) / machine_total : 0;
  for (size_t a = 0; a < agents.size(); ++a) {
    ShardRun shard;
    shard.name = agents[a].name;
    shard.agent_cpu_pct = 100 * (ProcessCpuSeconds(agents[a].pid) - cpu_before[a]) / seconds_read;
    shard.agent_threads = ProcessThreads(agents[a].pid);
    run.shards.push_back(std::move(shard));
  }

  for (auto& t : threads) t.join();
  for (size_t a = 0; a < agents.size(); ++a) {
    ShardRun& shard = run.shards[a];
    for (int c = 0; c < clients_per_agent; ++c) {
      ClientTally& t = tallies[a * static_cast<size_t>(clients_per_agent) + static_cast<size_t>(c)];
      shard.ok += t.ok;
      shard.committed_total += t.committed_total;
      shard.voted_no += t.voted_no;
      shard.transport_errors += t.transport_errors;
      shard.commit_retries += t.commit_retries;
      shard.rejected += t.rejected;
      if (shard.first_problem.empty()) shard.first_problem = t.first_problem;
      shard.latency.Merge(std::move(t.latency));
      for (size_t i = 0; i < t.step_sum.size(); ++i) {
        shard.step_mean_ms[i] += std::chrono::duration<double, std::milli>(t.step_sum[i]).count();
        shard.step_max_ms[i] = std::max(
            shard.step_max_ms[i], std::chrono::duration<double, std::milli>(t.step_max[i]).count());
      }
    }
    for (double& mean : shard.step_mean_ms) {
      mean = shard.ok > 0 ? mean / static_cast<double>(shard.ok) : 0;
    }
  }
  return run;
}

}  // namespace verdict::bench
