// Read-index (dissertation §6.4): a read state covers every write acknowledged before the
// request; followers forward to the leader; a deposed leader never releases one.
#include <gtest/gtest.h>

#include <optional>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftReadIndexTest : public RaftScenarioTest {
 protected:
  std::optional<AppliedLog::Read> ReadFor(NodeId id, const std::string& context) const {
    for (const AppliedLog::Read& r : cluster_->applied(id).reads) {
      if (r.state.context == context) return r;
    }
    return std::nullopt;
  }

  // Ticks (with delivery) until `id` receives the read state for `context`.
  std::optional<AppliedLog::Read> WaitRead(NodeId id, const std::string& context) {
    for (int r = 0; r < 5 && !ReadFor(id, context); ++r) {
      cluster_->DeliverAll();
      if (!ReadFor(id, context)) cluster_->TickAll();
    }
    return ReadFor(id, context);
  }
};

TEST_F(RaftReadIndexTest, ReadIndex_OnLeader_CoversAcknowledgedWrites) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  Index acknowledged = 0;
  for (int i = 0; i < 3; ++i) acknowledged = c.ProposeAndWait(Cmd("w", i), 3);
  ASSERT_NE(acknowledged, 0u);

  c.ReadIndex(leader, "r1");
  std::optional<AppliedLog::Read> read = WaitRead(leader, "r1");

  ASSERT_TRUE(read.has_value()) << "no read state released";
  EXPECT_GE(read->state.index, acknowledged);
  EXPECT_GE(read->state.index, c.node(leader).commit_index());
  EXPECT_EQ(c.applied(leader).reads.size(), 1u);
}

TEST_F(RaftReadIndexTest, ReadIndex_OnFollower_ForwardedToLeader) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  Index acknowledged = c.ProposeAndWait("w", 3);
  ASSERT_NE(acknowledged, 0u);
  NodeId follower = Others(leader)[0];
  c.ResetCounters();

  c.ReadIndex(follower, "r2");
  std::optional<AppliedLog::Read> read = WaitRead(follower, "r2");

  EXPECT_GE(c.Count([&](const SentMessage& m) {
    return m.type == MessageType::kReadIndex && m.from == follower && m.to == leader;
  }),
            1);
  ASSERT_TRUE(read.has_value());
  EXPECT_GE(read->state.index, acknowledged);
  EXPECT_FALSE(ReadFor(leader, "r2").has_value()) << "the answer belongs to the follower";
}

TEST_F(RaftReadIndexTest, ReadIndex_PartitionedStaleLeader_NeverReleases) {
  RaftCluster& c = Start({.nodes = 5});
  NodeId old_leader = c.WaitLeader();
  ASSERT_NE(old_leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("w1", 5), 0u);
  std::vector<NodeId> f = Others(old_leader);
  std::vector<NodeId> majority = {f[1], f[2], f[3]};

  // The old leader keeps one follower; the other three elect a leader and take a write the
  // old leader never sees. Only the majority's clocks run, so the old leader still
  // believes it leads.
  c.Partition({old_leader, f[0]}, majority);
  NodeId new_leader = kNoNode;
  for (int r = 0; r < 10 * kElection && new_leader == kNoNode; ++r) {
    c.TickNodes(majority);
    new_leader = c.LeaderOf(majority);
  }
  ASSERT_NE(new_leader, kNoNode);
  Index newer = c.ProposeAndWait("w2", 3);
  ASSERT_NE(newer, 0u);
  ASSERT_EQ(c.node(old_leader).role(), Role::kLeader) << "setup: stale leader expected";

  // It asks its own follower (2 of 5 acknowledge) and must not answer.
  c.ReadIndex(old_leader, "stale");
  c.DeliverAll();
  c.TickNodes({old_leader, f[0]}, kElection / 2);
  EXPECT_FALSE(ReadFor(old_leader, "stale").has_value())
      << "a read state without a quorum: it would miss write " << newer;

  // Nor after the partition heals and it learns of the new term.
  c.Heal();
  c.TickAll(2 * kElection);
  EXPECT_FALSE(ReadFor(old_leader, "stale").has_value());
  EXPECT_NE(c.node(old_leader).role(), Role::kLeader);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
