// Crash tests of the coordinator group with real processes: concurrent clients decide
// while the leader is killed with SIGKILL, then every node is killed and restarted; every
// ACKNOWLEDGED decision must be present, with the same outcome, on every node afterwards.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/integration/coordinator/cluster_harness.h"

namespace verdict::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Clients that decide fresh gtids in a loop and remember what was acknowledged.
class DecidingClients {
 public:
  DecidingClients(std::vector<std::string> addresses, int clients)
      : addresses_(std::move(addresses)) {
    for (int c = 0; c < clients; ++c) threads_.emplace_back([this, c] { Run(c); });
  }
  ~DecidingClients() { Stop(); }

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  size_t acked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_.size();
  }
  std::map<std::string, rpc::Outcome::type> Acked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  uint64_t unacked() const { return unacked_; }
  uint64_t mismatches() const { return mismatches_; }

 private:
  void Run(int c) {
    std::mt19937 rng(c + 1);
    for (int i = 0; !stop_; ++i) {
      rpc::DecideRequest req;
      req.gtid = "crash-" + std::to_string(c) + "-" + std::to_string(i);
      req.outcome = rng() % 4 ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT;
      req.participants = {"p" + std::to_string(rng() % 5), "q"};
      rpc::DecideResponse resp;
      // Retries (same gtid) through leader changes for up to 20 s, in short rounds so that
      // Stop() is not held up while every node is down.
      Status s;
      for (auto give_up = Clock::now() + 20s; !stop_ && Clock::now() < give_up;) {
        s = tools::DecideOnLeader(addresses_, req, Clock::now() + 500ms, &resp, 3000);
        if (s.ok()) break;
      }
      if (!s.ok() || resp.code != rpc::ResultCode::OK) {
        ++unacked_;
        continue;
      }
      // Only this client ever decides this gtid: the applied outcome is the requested one.
      if (resp.outcome != req.outcome) ++mismatches_;
      std::lock_guard<std::mutex> lock(mu_);
      acked_[req.gtid] = resp.outcome;
    }
  }

  const std::vector<std::string> addresses_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> unacked_{0};
  std::atomic<uint64_t> mismatches_{0};
  mutable std::mutex mu_;
  std::map<std::string, rpc::Outcome::type> acked_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

// Prints a progress line with the time since the test started.
void Note(const std::string& what) {
  static const auto start = Clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  std::printf("[%6lld ms] %s\n", static_cast<long long>(ms), what.c_str());
  std::fflush(stdout);
}

// Waits until `clients` have `n` more acknowledgements than now (or `timeout` passes).
void WaitForProgress(const DecidingClients& clients, size_t n, std::chrono::seconds timeout) {
  size_t target = clients.acked() + n;
  auto deadline = Clock::now() + timeout;
  while (clients.acked() < target && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  Note(std::to_string(clients.acked()) + " decisions acknowledged so far");
}

TEST(CoordinatorCrashTest, KillLeaderMidStreamThenKillAll_AckedDecisionsSurvive) {
  CoordinatorCluster cluster(3);
  cluster.StartAll();
  int leader = cluster.WaitForLeader(20s);
  ASSERT_NE(leader, 0) << cluster.Log(1);

  DecidingClients clients(cluster.Addresses(), 8);
  WaitForProgress(clients, 500, 30s);
  ASSERT_GE(clients.acked(), 500u) << "no progress before the crash";

  // Three rounds: kill -9 the leader mid-stream; the other two elect a new one within a
  // few election timeouts (10 ticks of 50 ms, randomized up to 2x); the old leader
  // restarts and rejoins as a follower while the clients go on.
  for (int round = 0; round < 3; ++round) {
    Note("kill -9 leader " + std::to_string(leader));
    cluster.Kill(leader);
    auto killed_at = Clock::now();
    int new_leader = cluster.WaitForLeader(15s);
    ASSERT_NE(new_leader, 0) << "no new leader after killing node " << leader;
    EXPECT_NE(new_leader, leader);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at).count();
    Note("new leader " + std::to_string(new_leader) + " " + std::to_string(ms) +
         " ms after the kill");
    WaitForProgress(clients, 300, 30s);
    Note("restart node " + std::to_string(leader));
    cluster.Start(leader);
    WaitForProgress(clients, 300, 30s);
    leader = new_leader;
  }

  // Everything dies at once, mid-stream.
  Note("kill -9 every node");
  cluster.KillAll();
  clients.Stop();
  Note("clients stopped");
  std::map<std::string, rpc::Outcome::type> acked = clients.Acked();
  std::printf("%zu decisions acknowledged, %llu not acknowledged\n", acked.size(),
              static_cast<unsigned long long>(clients.unacked()));
  EXPECT_EQ(clients.mismatches(), 0u);
  ASSERT_GE(acked.size(), 2000u);

  cluster.StartAll();
  int final_leader = cluster.WaitForLeader(20s);
  ASSERT_NE(final_leader, 0);
  Note("restarted; leader " + std::to_string(final_leader));
  // The new leader commits an entry of its term; once every node has applied up to its
  // commit index, every acknowledged decision must be in every node's register.
  rpc::DecideResponse marker;
  ASSERT_TRUE(tools::DecideOnLeader(
                  cluster.Addresses(),
                  [] {
                    rpc::DecideRequest r;
                    r.gtid = "after-restart";
                    r.outcome = rpc::Outcome::COMMIT;
                    return r;
                  }(),
                  Clock::now() + 30s, &marker)
                  .ok());
  ASSERT_TRUE(cluster.WaitForApplied(marker.log_index, 30s));
  Note("every node applied index " + std::to_string(marker.log_index));

  for (int id = 1; id <= 3; ++id) {
    auto client = cluster.Client(id);
    ASSERT_TRUE(client);
    size_t missing = 0, wrong = 0;
    for (const auto& [gtid, outcome] : acked) {
      rpc::GetDecisionRequest req;
      req.gtid = gtid;
      req.consistency = rpc::Consistency::LOCAL;
      rpc::GetDecisionResponse resp;
      ASSERT_TRUE(client->GetDecision(req, &resp).ok());
      if (resp.code != rpc::ResultCode::OK) {
        if (missing++ < 5) ADD_FAILURE() << "node " << id << " lost acknowledged " << gtid;
      } else if (resp.outcome != outcome) {
        if (wrong++ < 5) ADD_FAILURE() << "node " << id << " changed the outcome of " << gtid;
      }
    }
    EXPECT_EQ(missing, 0u) << "node " << id;
    EXPECT_EQ(wrong, 0u) << "node " << id;
  }
  // A linearizable read through the leader agrees as well (sample).
  size_t checked = 0;
  for (const auto& [gtid, outcome] : acked) {
    if (checked++ % 50) continue;
    rpc::GetDecisionRequest req;
    req.gtid = gtid;
    rpc::GetDecisionResponse resp;
    ASSERT_TRUE(
        tools::GetDecisionOnLeader(cluster.Addresses(), req, Clock::now() + 20s, &resp).ok());
    EXPECT_EQ(resp.code, rpc::ResultCode::OK) << gtid;
    EXPECT_EQ(resp.outcome, outcome) << gtid;
  }
  for (int id = 1; id <= 3; ++id) {
    EXPECT_EQ(cluster.Log(id).find("PANIC"), std::string::npos) << cluster.Log(id);
    EXPECT_EQ(cluster.Log(id).find("fatal"), std::string::npos) << cluster.Log(id);
  }
}

}  // namespace
}  // namespace verdict::testing
