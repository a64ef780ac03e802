// The decision-log benchmark: Decide(unique gtid, COMMIT, 2 participants) against a
// running CoordinatorCluster, either closed-loop (C threads, each with its own connection
// to the leader, each sending its next call when the last returns) or open-loop (a paced
// schedule; latency counted from the scheduled send time, so a slow reply also delays the
// calls queued behind it and coordinated omission does not hide it).
// Each Run* call blocks until its threads have joined; call from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "bench/coordinator_cluster.h"
#include "bench/latency_samples.h"

namespace verdict::bench {

// What the processes did during a run's measured window (NaN where unknown).
struct UsageReport {
  double seconds = 0;
  double leader_cpu_pct = 0;    // 100 = one core
  double follower_cpu_pct = 0;  // mean over followers
  double bench_cpu_pct = 0;     // this process (the load generator)
  double machine_busy_pct = 0;  // all cores: 100 = the whole machine
  int leader_threads = -1;
  double leader_fsyncs_per_s = 0;
  double leader_entries_per_fsync = 0;
  double leader_fsync_ms = 0;  // mean duration of one log sync
  double follower_fsyncs_per_s = 0;
  double decisions_per_entry = 0;  // decisions applied / entries proposed, on the leader
  double raft_messages_per_s = 0;  // sent by the leader
  // Elections during the window (growth of the highest term any node reports). When
  // non-zero the leader_* figures mix two leaders and say little.
  double term_changes = 0;
};

struct RunResult {
  std::string name;               // "C=16", "paced 1000/s"
  int concurrency = 0;            // threads
  double seconds = 0;             // measured window
  uint64_t ok = 0;                // decisions applied and answered in the window
  uint64_t not_leader = 0;        // NOT_LEADER answers (each followed by a leader search, retry)
  uint64_t retries = 0;           // UNKNOWN / UNAVAILABLE answers, retried
  uint64_t transport_errors = 0;  // failed calls or connects, retried
  uint64_t rejected = 0;          // INVALID_ARGUMENT etc.: the run is invalid if non-zero
  uint64_t unfinished = 0;        // calls abandoned (interrupted, or no answer long after)
  std::string first_rejection;    // the message of the first rejected call
  uint64_t late_sends = 0;        // paced: sends more than 1 ms behind their schedule
  double target_per_s = 0;        // paced: the offered rate
  LatencySamples latency;
  UsageReport usage;

  double per_s() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

struct LogBenchmarkOptions {
  std::chrono::milliseconds warmup{1000};
  std::chrono::milliseconds duration{10000};
  int call_timeout_ms = 10000;  // per Decide; the daemon answers UNKNOWN after 5 s
  // Closed loop: proposers whose pending decisions one connection carries in a single
  // DecideBatch call (as a client library coalescing concurrent callers would). 1 = one
  // Decide RPC per decision. Each proposer still has exactly one decision outstanding.
  int proposers_per_call = 1;
  std::string gtid_prefix;  // unique per benchmark run
};

class LogBenchmark {
 public:
  LogBenchmark(CoordinatorCluster& cluster, std::string leader, LogBenchmarkOptions options);
  LogBenchmark(const LogBenchmark&) = delete;
  LogBenchmark& operator=(const LogBenchmark&) = delete;
  ~LogBenchmark();

  // `concurrency` closed-loop proposers for warmup + duration.
  RunResult RunClosedLoop(int concurrency);
  // `rate` decisions/s in total, spread over `threads` paced senders.
  RunResult RunPaced(double rate, int threads);

  class LeaderTracker;

 private:
  struct Shared;
  // `threads` connections; each call carries `per_call` decisions (closed loop only).
  RunResult Run(const std::string& name, int threads, double rate, int per_call);

  CoordinatorCluster& cluster_;
  const LogBenchmarkOptions options_;
  std::unique_ptr<LeaderTracker> tracker_;
  int run_number_ = 0;
};

}  // namespace verdict::bench
