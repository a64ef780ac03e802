// The participant-agent benchmark (issue 3): K closed-loop clients per agent, each with
// its own Thrift connection (on its own thread, or all of one agent's on one thread: see
// AgentDriver), each looping one branch at a time: OpenBranch -> Execute a
// one-row UPDATE of a random account (`?` parameter) -> Prepare -> Commit. Several agents
// (shards) are driven at once, like the pgbench anchor's two databases. A branch counts if
// its Commit answer arrives inside the measured window; its latency runs from the
// OpenBranch send to the Commit answer. RunAgentClosedLoop blocks until its threads join.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/branch_client.h"
#include "bench/latency_samples.h"

namespace verdict::bench {

// One agent to drive.
struct AgentTarget {
  std::string name;     // its --name (the participant list of each branch)
  std::string address;  // HOST:PORT
  pid_t pid = -1;       // for its CPU time
};

// How the benchmark's clients are run. kMux is how pgbench runs the anchor's clients.
enum class AgentDriver {
  kMux,      // every client of one agent on one thread, one epoll loop (BranchMux)
  kThreads,  // one thread per client, blocking calls (BranchClient)
};

struct AgentRunOptions {
  AgentDriver driver = AgentDriver::kMux;
  std::chrono::milliseconds warmup{1000};
  std::chrono::milliseconds duration{10000};
  int call_timeout_ms = 10000;
  std::string gtid_prefix;  // unique per benchmark run (no ':')
  // The statement; its one `?` is bound to a uniformly random id in 1..accounts.
  std::string sql = "UPDATE accounts SET balance = balance + 1 WHERE id = ?";
  int accounts = 10000;
};

// One agent's share of a run.
struct ShardRun {
  std::string name;
  uint64_t ok = 0;                // committed, answered inside the window
  uint64_t committed_total = 0;   // committed, warm-up and late answers included
  uint64_t voted_no = 0;          // aborted branches (lock timeouts, NO votes)
  uint64_t transport_errors = 0;  // failed calls or connects (reconnected)
  uint64_t commit_retries = 0;    // Commit answered UNAVAILABLE (agent busy), sent again
  uint64_t rejected = 0;          // unexpected answers: the run is invalid if non-zero
  std::string first_problem;      // the message of the first non-committed branch
  // Committed branches in the window: mean and max time of each step (open+execute,
  // prepare, commit; BranchClient::kStepNames), in ms.
  std::array<double, BranchClient::kSteps> step_mean_ms{};
  std::array<double, BranchClient::kSteps> step_max_ms{};
  double agent_cpu_pct = 0;  // the agent process over the window (100 = one core)
  int agent_threads = -1;
  LatencySamples latency;
};

struct AgentRun {
  int clients_per_agent = 0;
  AgentDriver driver = AgentDriver::kMux;
  double seconds = 0;  // measured window
  std::vector<ShardRun> shards;
  double bench_cpu_pct = 0;     // this process
  double machine_busy_pct = 0;  // 100 = every core

  double PerS(const ShardRun& s) const {
    return seconds > 0 ? static_cast<double>(s.ok) / seconds : 0;
  }
  // The slower agent's rate: what a transfer touching every shard could reach.
  double SlowestPerS() const;
  double TotalPerS() const;
  uint64_t Rejected() const;
};

// Runs `clients_per_agent` clients against every agent at once for warmup + duration.
AgentRun RunAgentClosedLoop(const std::vector<AgentTarget>& agents, int clients_per_agent,
                            const AgentRunOptions& options);

}  // namespace verdict::bench
