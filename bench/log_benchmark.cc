#include "bench/log_benchmark.h"

#include <atomic>
#include <cmath>
#include <latch>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/child_process.h"
#include "bench/decision_client.h"
#include "bench/resource_usage.h"

namespace verdict::bench {

using Clock = std::chrono::steady_clock;

// The leader the workers send to, shared by all of them. When a worker learns that its
// address is stale (NOT_LEADER, a failed connection), it replaces it with the hint or
// clears it; the next Leader() call then polls GetStatus on every node, one thread at a
// time. Thread-safe.
class LogBenchmark::LeaderTracker {
 public:
  LeaderTracker(const CoordinatorCluster& cluster, std::string leader)
      : cluster_(cluster), leader_(std::move(leader)) {}

  // The current leader's address; "" if none is known even after one search.
  std::string Leader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!leader_.empty()) return leader_;
    }
    std::lock_guard<std::mutex> search(search_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!leader_.empty()) return leader_;  // another thread found it meanwhile
    }
    std::string found = cluster_.FindLeader();
    std::lock_guard<std::mutex> lock(mu_);
    leader_ = found;
    return leader_;
  }
  // `from` answered NOT_LEADER naming `hint` ("" = none).
  void Redirect(const std::string& from, const std::string& hint) {
    std::lock_guard<std::mutex> lock(mu_);
    if (leader_ == from) leader_ = hint == from ? "" : hint;
  }
  // `address` could not be reached.
  void Forget(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    if (leader_ == address) leader_.clear();
  }

 private:
  const CoordinatorCluster& cluster_;
  std::mutex search_mu_;  // serializes searches
  std::mutex mu_;
  std::string leader_;  // guarded by mu_
};

// What every worker of one run shares. The time points are written before `go` opens and
// only read after it.
struct LogBenchmark::Shared {
  Shared(LeaderTracker& t, int threads) : tracker(t), ready(threads) {}
  LeaderTracker& tracker;
  std::string gtid_prefix;
  double rate = 0;  // 0: closed loop; else the total paced rate
  int threads = 0;
  int call_timeout_ms = 0;
  std::latch ready;  // every worker has connected
  std::latch go{1};  // the schedule below is set
  Clock::time_point start, measure_start, measure_end;
  std::atomic<bool> stop{false};
};

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Snapshot {
  Clock::time_point at;
  std::vector<NodeReading> nodes;
  double bench_cpu = 0;
  MachineCpu machine;
};

Snapshot TakeSnapshot(const CoordinatorCluster& cluster) {
  Snapshot s;
  s.bench_cpu = SelfCpuSeconds();
  s.machine = ReadMachineCpu();
  s.nodes = cluster.Read();
  s.at = Clock::now();
  return s;
}

// The growth of counter `name` on node `i` between two snapshots; NaN if not scraped.
double Delta(const Snapshot& a, const Snapshot& b, size_t i, const char* name) {
  auto x = a.nodes[i].metrics.find(name);
  auto y = b.nodes[i].metrics.find(name);
  if (x == a.nodes[i].metrics.end() || y == b.nodes[i].metrics.end()) return kNaN;
  return y->second - x->second;
}

// The highest value of gauge `name` over the nodes; NaN if no node reported it.
double MaxMetric(const Snapshot& s, const char* name) {
  double best = kNaN;
  for (const NodeReading& node : s.nodes) {
    auto it = node.metrics.find(name);
    if (it != node.metrics.end() && !(it->second <= best)) best = it->second;
  }
  return best;
}

UsageReport Compare(const Snapshot& a, const Snapshot& b, int leader) {
  UsageReport r;
  r.seconds = std::chrono::duration<double>(b.at - a.at).count();
  if (r.seconds <= 0 || leader < 0) return r;
  const size_t l = static_cast<size_t>(leader);
  r.leader_cpu_pct = 100 * (b.nodes[l].cpu_seconds - a.nodes[l].cpu_seconds) / r.seconds;
  double follower_cpu = 0, follower_fsyncs = 0;
  int followers = 0;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    if (i == l) continue;
    follower_cpu += b.nodes[i].cpu_seconds - a.nodes[i].cpu_seconds;
    follower_fsyncs += Delta(a, b, i, "verdict_fsyncs_total");
    ++followers;
  }
  if (followers > 0) {
    r.follower_cpu_pct = 100 * follower_cpu / followers / r.seconds;
    r.follower_fsyncs_per_s = follower_fsyncs / followers / r.seconds;
  }
  r.bench_cpu_pct = 100 * (b.bench_cpu - a.bench_cpu) / r.seconds;
  double total = b.machine.total - a.machine.total;
  r.machine_busy_pct = total > 0 ? 100 * (b.machine.busy - a.machine.busy) / total : kNaN;
  r.leader_threads = b.nodes[l].threads;
  double fsyncs = Delta(a, b, l, "verdict_fsyncs_total");
  r.leader_fsyncs_per_s = fsyncs / r.seconds;
  r.leader_entries_per_fsync = Delta(a, b, l, "verdict_entries_persisted_total") / fsyncs;
  r.leader_fsync_ms = 1000 * Delta(a, b, l, "verdict_fsync_seconds_sum") /
                      Delta(a, b, l, "verdict_fsync_seconds_count");
  r.decisions_per_entry =
      Delta(a, b, l, "verdict_decisions_applied_total") / Delta(a, b, l, "verdict_proposals_total");
  r.raft_messages_per_s = Delta(a, b, l, "verdict_raft_messages_sent_total") / r.seconds;
  r.term_changes = MaxMetric(b, "verdict_raft_term") - MaxMetric(a, "verdict_raft_term");
  return r;
}

// Sleeps until `t`; false if interrupted first.
bool SleepUntil(Clock::time_point t) {
  while (Clock::now() < t) {
    if (Interrupted()) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(t - Clock::now(), std::chrono::milliseconds(100)));
  }
  return !Interrupted();
}

// One worker's counters and samples; merged into the RunResult after the join.
struct WorkerTally {
  uint64_t ok = 0, not_leader = 0, retries = 0, transport_errors = 0, rejected = 0, unfinished = 0,
           late_sends = 0;
  std::string first_rejection;
  LatencySamples latency;
};

// Sends `request` until it is applied: NOT_LEADER and transport errors move to the leader
// found anew; UNKNOWN is retried as is (Decide is idempotent). False if the call must be
// abandoned (rejected, interrupted, or still unanswered long after the window).
bool DecideUntilApplied(LogBenchmark::LeaderTracker& tracker, Clock::time_point give_up,
                        const rpc::DecideRequest& request, DecisionClient& client,
                        WorkerTally* tally) {
  while (true) {
    if (Interrupted() || Clock::now() > give_up) {
      ++tally->unfinished;
      return false;
    }
    if (!client.connected()) {
      std::string leader = tracker.Leader();
      if (leader.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      if (!client.Connect(leader).ok()) {
        ++tally->transport_errors;
        tracker.Forget(leader);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
    }
    DecisionClient::Result r = client.Decide(request);
    switch (r.code) {
      case DecisionClient::Code::kOk:
        return true;
      case DecisionClient::Code::kNotLeader:
        ++tally->not_leader;
        tracker.Redirect(client.address(), r.leader_address);
        client.Close();
        break;
      case DecisionClient::Code::kRetry:
        ++tally->retries;
        break;
      case DecisionClient::Code::kTransport:
        ++tally->transport_errors;
        tracker.Forget(client.address());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        break;
      case DecisionClient::Code::kRejected:
        ++tally->rejected;
        if (tally->first_rejection.empty()) tally->first_rejection = r.message;
        return false;
    }
  }
}

// As DecideUntilApplied, for one batch: every request is re-sent until applied.
bool DecideBatchUntilApplied(LogBenchmark::LeaderTracker& tracker, Clock::time_point give_up,
                             std::vector<rpc::DecideRequest> pending, DecisionClient& client,
                             WorkerTally* tally) {
  while (!pending.empty()) {
    if (Interrupted() || Clock::now() > give_up) {
      tally->unfinished += pending.size();
      return false;
    }
    if (!client.connected()) {
      std::string leader = tracker.Leader();
      if (leader.empty() || !client.Connect(leader).ok()) {
        if (!leader.empty()) {
          ++tally->transport_errors;
          tracker.Forget(leader);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
    }
    std::vector<DecisionClient::Result> results = client.DecideBatch(pending);
    std::vector<rpc::DecideRequest> again;
    std::string redirect;
    bool transport = false, not_leader = false;
    for (size_t i = 0; i < results.size(); ++i) {
      switch (results[i].code) {
        case DecisionClient::Code::kOk:
          break;
        case DecisionClient::Code::kNotLeader:
          ++tally->not_leader;
          not_leader = true;
          redirect = results[i].leader_address;
          again.push_back(std::move(pending[i]));
          break;
        case DecisionClient::Code::kRetry:
          ++tally->retries;
          again.push_back(std::move(pending[i]));
          break;
        case DecisionClient::Code::kTransport:
          transport = true;
          again.push_back(std::move(pending[i]));
          break;
        case DecisionClient::Code::kRejected:
          ++tally->rejected;
          if (tally->first_rejection.empty()) tally->first_rejection = results[i].message;
          return false;
      }
    }
    if (transport) {
      ++tally->transport_errors;
      tracker.Forget(client.address());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else if (not_leader) {
      tracker.Redirect(client.address(), redirect);
      client.Close();
    }
    pending = std::move(again);
  }
  return true;
}

}  // namespace

LogBenchmark::LogBenchmark(CoordinatorCluster& cluster, std::string leader,
                           LogBenchmarkOptions options)
    : cluster_(cluster),
      options_(std::move(options)),
      tracker_(std::make_unique<LeaderTracker>(cluster, std::move(leader))) {}

LogBenchmark::~LogBenchmark() = default;

RunResult LogBenchmark::RunClosedLoop(int concurrency) {
  const int per_call = std::max(1, std::min(options_.proposers_per_call, concurrency));
  const int connections = (concurrency + per_call - 1) / per_call;
  RunResult r = Run("C=" + std::to_string(concurrency), connections, 0, per_call);
  r.concurrency = concurrency;
  return r;
}

RunResult LogBenchmark::RunPaced(double rate, int threads) {
  return Run("paced " + std::to_string(static_cast<int64_t>(rate)) + "/s", threads, rate, 1);
}

RunResult LogBenchmark::Run(const std::string& name, int threads, double rate, int per_call) {
  Shared shared(*tracker_, threads);
  shared.gtid_prefix = options_.gtid_prefix + "-r" + std::to_string(++run_number_);
  shared.rate = rate;
  shared.threads = threads;
  shared.call_timeout_ms = options_.call_timeout_ms;

  std::vector<WorkerTally> tallies(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&shared, i, per_call, tally = &tallies[static_cast<size_t>(i)]] {
      DecisionClient client(shared.call_timeout_ms);
      std::string leader = shared.tracker.Leader();
      if (!leader.empty() && !client.Connect(leader).ok()) {
        ++tally->transport_errors;
        shared.tracker.Forget(leader);
      }
      rpc::DecideRequest request;
      request.outcome = rpc::Outcome::COMMIT;
      request.participants = {"bench-shard-a", "bench-shard-b"};
      const std::string base = shared.gtid_prefix + "-t" + std::to_string(i) + "-";
      shared.ready.count_down();
      shared.go.wait();

      const bool paced = shared.rate > 0;
      // Paced: thread i sends at start + i/rate + k*threads/rate.
      const auto interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(paced ? shared.threads / shared.rate : 0));
      const auto offset = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(paced ? i / shared.rate : 0));
      const auto give_up = shared.measure_end + std::chrono::seconds(15);
      // Closed loop: until the window ends. Paced: every send scheduled before the window
      // ends, however late (cutting the late ones would hide exactly the slow replies).
      for (uint64_t seq = 0; (paced || !shared.stop.load()) && !Interrupted(); ++seq) {
        Clock::time_point send_at;
        if (paced) {
          send_at = shared.start + offset + static_cast<int64_t>(seq) * interval;
          if (send_at >= shared.measure_end) break;
          std::this_thread::sleep_until(send_at);
          if (send_at >= shared.measure_start &&
              Clock::now() - send_at > std::chrono::milliseconds(1)) {
            ++tally->late_sends;
          }
        } else {
          send_at = Clock::now();
          if (send_at >= shared.measure_end) break;
        }
        bool applied;
        if (per_call == 1) {
          request.gtid = base + std::to_string(seq);
          applied = DecideUntilApplied(shared.tracker, give_up, request, client, tally);
        } else {
          std::vector<rpc::DecideRequest> batch(static_cast<size_t>(per_call), request);
          for (int j = 0; j < per_call; ++j) {
            batch[static_cast<size_t>(j)].gtid =
                base + std::to_string(seq) + "." + std::to_string(j);
          }
          applied =
              DecideBatchUntilApplied(shared.tracker, give_up, std::move(batch), client, tally);
        }
        if (!applied) break;
        const auto done = Clock::now();
        // Closed loop: what completed inside the window. Paced: what was scheduled in it.
        const bool counted = paced ? send_at >= shared.measure_start
                                   : done >= shared.measure_start && done <= shared.measure_end;
        if (counted) {
          // Every proposer in the call waited from the send to the answer.
          for (int j = 0; j < per_call; ++j) {
            ++tally->ok;
            tally->latency.Add(done - send_at);
          }
        }
      }
    });
  }

  RunResult result;
  result.name = name;
  result.concurrency = threads;
  result.target_per_s = rate;
  shared.ready.wait();
  shared.start = Clock::now() + std::chrono::milliseconds(20);
  shared.measure_start = shared.start + options_.warmup;
  shared.measure_end = shared.measure_start + options_.duration;
  shared.go.count_down();

  if (SleepUntil(shared.measure_start)) {
    Snapshot before = TakeSnapshot(cluster_);
    int leader = cluster_.IndexOf(tracker_->Leader());
    if (SleepUntil(shared.measure_end)) {
      Snapshot after = TakeSnapshot(cluster_);
      result.usage = Compare(before, after, leader);
    }
  }
  shared.stop.store(true);
  for (auto& w : workers) w.join();

  result.seconds = std::chrono::duration<double>(shared.measure_end - shared.measure_start).count();
  for (auto& t : tallies) {
    result.ok += t.ok;
    result.not_leader += t.not_leader;
    result.retries += t.retries;
    result.transport_errors += t.transport_errors;
    result.rejected += t.rejected;
    result.unfinished += t.unfinished;
    result.late_sends += t.late_sends;
    if (result.first_rejection.empty()) result.first_rejection = t.first_rejection;
    result.latency.Merge(std::move(t.latency));
  }
  return result;
}

}  // namespace verdict::bench
