// Shared fixture of the transaction-service crash tests: one real PostgreSQL server per test
// binary, a fresh TxnCluster (3 coordinators, agents s1, s2 on SQLite and p1, p2 on
// PostgreSQL) per test, and the verbs the crash stories use: start with a coordinator
// failpoint, wait for it to fire, restart dead coordinators without it, settle.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/txn_cluster.h"

namespace verdict::test_support {

using namespace std::chrono_literals;

class TxnCrashFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PgServerOptions options;
    options.max_connections = 300;  // agents of earlier tests may still be closing theirs
    pg_ = std::make_unique<PgServer>(options);
    pg_status_ = pg_->Start();
  }
  static void TearDownTestSuite() { pg_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(pg_status_.ok()) << "PostgreSQL did not start: " << pg_status_.ToString();
  }
  void TearDown() override {
    if (HasFailure() && cluster_) {
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      std::string name = std::string(info->test_suite_name()) + "." + info->name();
      for (char& c : name) {
        if (c == '/') c = '_';
      }
      std::fprintf(stderr, "%s\n", cluster_->PreserveLogs("/tmp/verdict-txn-logs/" + name).c_str());
      std::fprintf(stderr, "%s\n", cluster_->LogTails(25).c_str());
    }
    cluster_.reset();
  }

  // A fresh cluster whose coordinators all start with `failpoint` (may be empty).
  void StartCluster(const std::string& failpoint, TxnClusterOptions options = {}) {
    cluster_ = std::make_unique<TxnCluster>(pg_.get(), std::move(options));
    Status s = cluster_->Start(failpoint);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  TxnCluster& cluster() { return *cluster_; }

  // Restarts, without any failpoint, every coordinator that died by itself; returns how
  // many there were.
  int RestartDeadCoordinators() {
    int n = 0;
    for (int id : cluster_->ReapExitedCoordinators()) {
      ++n;
      cluster_->StartCoordinator(id, "");
    }
    return n;
  }
  // Restarts (without a failpoint) every coordinator that is not running.
  void RestartAllCoordinators() {
    for (int id = 1; id <= cluster_->coordinators().size(); ++id) {
      cluster_->StartCoordinator(id, "");
    }
  }

  // Polls `done` until it holds, restarting dead coordinators in between; false (with the
  // last detail) after `timeout`.
  bool Settle(std::chrono::milliseconds timeout, const std::function<bool(std::string*)>& done,
              std::string* detail, int* restarts = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int n = RestartDeadCoordinators();
      if (restarts) *restarts += n;
      if (done(detail)) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(200ms);
    }
  }

  // Every branch of `spec` (as run in `gtid`) is in one of `states` now.
  bool BranchesIn(const std::string& gtid, const TxnSpec& spec,
                  const std::vector<rpc::BranchState::type>& states, std::string* detail) {
    for (const auto& br : spec.branches) {
      if (!cluster_->WaitBranchState(br.shard, gtid, br.BranchName(), states, 0ms, detail)) {
        return false;
      }
    }
    return true;
  }

  // Polls the branches of `spec` on the running, unstopped agents for `window`; false (with
  // the offending state) as soon as one leaves `allowed`. A safety check over a window:
  // nothing may happen, so there is no event to wait for.
  bool BranchesStayIn(const std::string& gtid, const TxnSpec& spec,
                      const std::vector<rpc::BranchState::type>& allowed,
                      std::chrono::milliseconds window, std::string* detail) {
    auto deadline = std::chrono::steady_clock::now() + window;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& br : spec.branches) {
        TxnAgent& agent = cluster_->agent(br.shard);
        if (!agent.running() || agent.stopped()) continue;
        if (!cluster_->WaitBranchState(br.shard, gtid, br.BranchName(), allowed, 0ms, detail)) {
          return false;
        }
      }
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }

  // The four-shard transfer the crash stories run.
  static TxnSpec Transfer(rpc::Protocol::type protocol) {
    TxnSpec spec;
    spec.protocol = protocol;
    spec.deadline_ms = 8000;
    spec.branches = {{"s1", {{0, -100}}}, {"s2", {{1, 30}}}, {"p1", {{2, 30}}}, {"p2", {{3, 40}}}};
    return spec;
  }

  static std::unique_ptr<PgServer> pg_;
  static Status pg_status_;
  std::unique_ptr<TxnCluster> cluster_;
};

inline std::unique_ptr<PgServer> TxnCrashFixture::pg_;
inline Status TxnCrashFixture::pg_status_;

}  // namespace verdict::test_support
