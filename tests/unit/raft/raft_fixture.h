// Base fixture of the Raft scenario tests: owns one RaftCluster and checks the cluster-wide
// invariants when a test ends. Thread-compatible.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/raft/raft_cluster.h"

namespace verdict::coordinator::raft::testing {

class RaftScenarioTest : public ::testing::Test {
 protected:
  static constexpr int kElection = 10;  // ClusterOptions' default election_ticks

  // Starts a fresh cluster (checking the previous one, if any, first).
  RaftCluster& Start(const ClusterOptions& options) {
    CheckCluster();
    cluster_ = std::make_unique<RaftCluster>(options);
    return *cluster_;
  }

  void TearDown() override { CheckCluster(); }

  // Every live node but `id`.
  std::vector<NodeId> Others(NodeId id) const {
    std::vector<NodeId> out;
    for (NodeId x : cluster_->UpIds()) {
      if (x != id) out.push_back(x);
    }
    return out;
  }

  static std::string Cmd(const std::string& prefix, int i) {
    return prefix + "-" + std::to_string(i);
  }

  std::unique_ptr<RaftCluster> cluster_;

 private:
  void CheckCluster() {
    if (!cluster_) return;
    cluster_->CheckInvariants();
    EXPECT_EQ(cluster_->early_answers(), 0)
        << "contract: append acknowledgements and vote grants belong in "
           "Ready::messages_after_persist; first one in Ready::messages: "
        << cluster_->first_early_answer();
  }
};

inline bool IsType(const SentMessage& m, MessageType t) { return m.type == t; }

}  // namespace verdict::coordinator::raft::testing
