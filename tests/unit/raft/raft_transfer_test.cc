// Leadership transfer (dissertation §3.10): to an up-to-date follower, to a slow follower
// that must catch up first, and to a dead one (the transfer times out and the leader resumes
// accepting proposals). Proposals fail with NotLeader while a transfer is under way.
#include <gtest/gtest.h>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftTransferTest : public RaftScenarioTest {};

TEST_F(RaftTransferTest, TransferLeadership_UpToDateFollowerTakesOver) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  NodeId target = Others(leader)[1];
  Term term = c.node(leader).term();
  c.ResetCounters();

  ASSERT_TRUE(c.TransferLeadership(leader, target).ok());
  EXPECT_EQ(c.node(leader).transfer_target(), target);
  c.DeliverAll();

  EXPECT_GE(c.Count(MessageType::kTimeoutNow), 1);
  EXPECT_EQ(c.node(target).role(), Role::kLeader);
  EXPECT_EQ(c.node(target).term(), term + 1);
  EXPECT_EQ(c.node(leader).role(), Role::kFollower);
  EXPECT_EQ(c.Leader(), target);
  EXPECT_NE(c.ProposeAndWait("b", 3), 0u);
}

TEST_F(RaftTransferTest, Propose_DuringTransfer_FailsNotLeader) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId target = Others(leader)[0];

  Index last = c.node(leader).last_index();
  ASSERT_TRUE(c.TransferLeadership(leader, target).ok());

  EXPECT_TRUE(c.Propose(leader, "refused").IsNotLeader());
  EXPECT_EQ(c.node(leader).last_index(), last) << "a refused proposal was appended";
  c.DeliverAll();
  EXPECT_EQ(c.node(target).role(), Role::kLeader);
  EXPECT_TRUE(c.Propose(leader, "follower now").IsNotLeader());
}

TEST_F(RaftTransferTest, TransferLeadership_BadRequests) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId follower = Others(leader)[0];

  EXPECT_TRUE(c.TransferLeadership(follower, leader).IsNotLeader());
  EXPECT_EQ(c.TransferLeadership(leader, 42).code(), Status::Code::kInvalidArgument)
      << "not a voter";
  EXPECT_EQ(c.node(leader).transfer_target(), kNoNode);
  EXPECT_NE(c.ProposeAndWait("still leading", 3), 0u);
  EXPECT_EQ(c.Leader(), leader);
}

TEST_F(RaftTransferTest, TransferLeadership_SlowFollowerCatchesUpFirst) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId slow = Others(leader)[0];
  c.Isolate(slow);
  Index last = 0;
  for (int i = 0; i < 10; ++i) last = c.ProposeAndWait(Cmd("x", i), 2);
  ASSERT_NE(last, 0u);
  c.Reconnect(slow);
  ASSERT_LT(c.node(slow).last_index(), last);

  ASSERT_TRUE(c.TransferLeadership(leader, slow).ok());
  EXPECT_TRUE(c.Propose(leader, "during").IsNotLeader());
  int rounds = 0;
  while (c.node(slow).role() != Role::kLeader && rounds < kElection) {
    c.TickAll();
    ++rounds;
  }

  EXPECT_EQ(c.node(slow).role(), Role::kLeader) << "the transfer should finish within a timeout";
  EXPECT_GE(c.node(slow).last_index(), last);
  EXPECT_EQ(c.node(slow).TermAt(last), c.committed().at(last).term);
  EXPECT_NE(c.ProposeAndWait("after", 3), 0u);
  EXPECT_EQ(c.AppliedCount(last, Cmd("x", 9)), 3);
}

TEST_F(RaftTransferTest, TransferLeadership_TargetDown_TimesOutAndLeaderResumes) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId target = Others(leader)[0];
  Term term = c.node(leader).term();
  c.Crash(target);

  ASSERT_TRUE(c.TransferLeadership(leader, target).ok());
  EXPECT_TRUE(c.Propose(leader, "during").IsNotLeader());
  int rounds = 0;
  while (c.node(leader).transfer_target() != kNoNode && rounds < 5 * kElection) {
    c.TickAll();
    ++rounds;
  }

  EXPECT_EQ(c.node(leader).transfer_target(), kNoNode);
  EXPECT_LE(rounds, 2 * kElection) << "abandoned after about an election timeout";
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
  EXPECT_EQ(c.node(leader).term(), term);
  Index index;
  EXPECT_TRUE(c.Propose(leader, "resumed", &index).ok());
  EXPECT_NE(c.ProposeAndWait("resumed-2", 2), 0u);
  EXPECT_EQ(c.Leader(), leader);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
