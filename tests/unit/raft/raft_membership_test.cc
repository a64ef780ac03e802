// Single-server membership changes (dissertation §4.1): add a voter (it catches up and then
// counts in quorums), remove a follower, remove the leader; one change at a time.
#include <gtest/gtest.h>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftMembershipTest : public RaftScenarioTest {
 protected:
  static ConfChange Add(NodeId id) {
    return {ConfChange::Kind::kAddVoter, id, "n" + std::to_string(id), {}};
  }
  static ConfChange Remove(NodeId id) { return {ConfChange::Kind::kRemoveVoter, id, "", {}}; }

  // Proposes `change` on the leader and ticks until it is committed there.
  bool ChangeAndCommit(NodeId leader, const ConfChange& change) {
    Index index;
    if (!cluster_->ProposeConfChange(leader, change, &index).ok()) return false;
    for (int r = 0; r < 3 * kElection; ++r) {
      if (cluster_->IsUp(leader) && cluster_->node(leader).commit_index() >= index) return true;
      cluster_->TickAll();
    }
    return false;
  }
};

TEST_F(RaftMembershipTest, AddVoter_NewNodeCatchesUpAndCountsInQuorums) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 5; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("a", i), 3), 0u);

  c.AddNode(4);  // empty initial membership: waits to hear from the leader
  ASSERT_TRUE(ChangeAndCommit(leader, Add(4)));
  c.TickAll(3);

  EXPECT_TRUE(c.node(leader).membership().Contains(4));
  EXPECT_EQ(c.node(leader).membership().voters.size(), 4u);
  EXPECT_EQ(c.node(4).membership(), c.node(leader).membership())
      << "the new node must learn the full membership from the log";
  EXPECT_EQ(c.node(4).leader(), leader);
  ASSERT_NE(c.ProposeAndWait("b", 4), 0u);
  EXPECT_EQ(c.applied(4).entries, c.applied(leader).entries);

  // Four voters: a quorum is three. Leader + one old follower is not enough...
  std::vector<NodeId> f;
  for (NodeId id : Others(leader)) {
    if (id != 4) f.push_back(id);
  }
  c.Isolate(f[0]);
  c.Isolate(4);
  Index index;
  ASSERT_TRUE(c.Propose(leader, "needs three", &index).ok());
  c.TickAll(3);
  EXPECT_LT(c.node(leader).commit_index(), index) << "committed with 2 of 4 voters";

  // ...and the new node's acknowledgement makes the third (the next write brings it the
  // entry it missed).
  c.Reconnect(4);
  c.Isolate(f[0]);
  Index next;
  ASSERT_TRUE(c.Propose(leader, "next", &next).ok());
  c.TickAll(3);
  EXPECT_GE(c.node(leader).commit_index(), next);
}

TEST_F(RaftMembershipTest, AddVoter_IsolatedNewNode_NeverLeadsWithoutQuorum) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  c.AddNode(4);
  ASSERT_TRUE(ChangeAndCommit(leader, Add(4)));
  ASSERT_NE(c.ProposeAndWait("b", 4), 0u);

  // Cut off, the new voter may campaign but must not win: it needs 3 of 4 votes.
  c.Isolate(4);
  c.TickAll(6 * kElection);
  EXPECT_NE(c.node(4).role(), Role::kLeader)
      << "node 4 leads with membership " << ::testing::PrintToString(c.node(4).membership());

  // With everyone back there is exactly one leader per term (checked on every step).
  c.Heal();
  ASSERT_NE(c.ProposeAndWait("c", 4), 0u);
}

TEST_F(RaftMembershipTest, AddVoter_AfterCompaction_CatchesUpBySnapshot) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 10; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("a", i), 3), 0u);
  for (NodeId id : c.ids()) ASSERT_TRUE(c.Compact(id).ok());

  c.AddNode(4);
  ASSERT_TRUE(ChangeAndCommit(leader, Add(4)));
  ASSERT_NE(c.ProposeAndWait("b", 4), 0u);

  EXPECT_EQ(c.applied(4).snapshots_applied, 1);
  EXPECT_EQ(c.applied(4).entries, c.applied(leader).entries);
  EXPECT_EQ(c.node(4).membership(), c.node(leader).membership());
  // It survives a restart with what it learned.
  c.Crash(4);
  c.Restart(4);
  EXPECT_EQ(c.node(4).membership(), c.node(leader).membership());
  ASSERT_NE(c.ProposeAndWait("c", 4), 0u);
}

TEST_F(RaftMembershipTest, RemoveVoter_Followers_QuorumShrinks) {
  RaftCluster& c = Start({.nodes = 5});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 5), 0u);
  std::vector<NodeId> f = Others(leader);

  ASSERT_TRUE(ChangeAndCommit(leader, Remove(f[2])));
  ASSERT_TRUE(ChangeAndCommit(leader, Remove(f[3])));
  EXPECT_EQ(c.node(leader).membership().voters.size(), 3u);
  EXPECT_FALSE(c.node(leader).membership().Contains(f[2]));
  EXPECT_FALSE(c.node(f[0]).membership().Contains(f[3]));

  // Three voters left; two of them are a quorum (two of five would not be).
  c.Crash(f[2]);
  c.Crash(f[3]);
  c.Crash(f[1]);
  Index index = c.ProposeAndWait("two of three", 2);
  EXPECT_NE(index, 0u);
  EXPECT_EQ(c.Leader(), leader);
}

TEST_F(RaftMembershipTest, RemoveVoter_Leader_StepsDownAndRestElect) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId old_leader = c.WaitLeader();
  ASSERT_NE(old_leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  std::vector<NodeId> rest = Others(old_leader);

  Index index;
  ASSERT_TRUE(c.ProposeConfChange(old_leader, Remove(old_leader), &index).ok());
  int rounds = 0;
  NodeId new_leader = kNoNode;
  while (rounds < 10 * kElection) {
    c.TickAll();
    ++rounds;
    new_leader = c.Leader();
    if (new_leader != kNoNode && new_leader != old_leader) break;
  }

  ASSERT_NE(new_leader, kNoNode);
  EXPECT_NE(new_leader, old_leader);
  EXPECT_NE(c.node(old_leader).role(), Role::kLeader);
  EXPECT_GE(c.node(new_leader).commit_index(), index);
  EXPECT_FALSE(c.node(new_leader).membership().Contains(old_leader));
  Index after = c.ProposeAndWait("after", 2);
  ASSERT_NE(after, 0u);
  for (NodeId id : rest) EXPECT_GE(c.applied(id).applied_index, after) << "node " << id;

  // The removed server does not disturb the new configuration.
  Term term = c.node(new_leader).term();
  c.TickAll(5 * kElection);
  EXPECT_EQ(c.Leader(), new_leader);
  EXPECT_EQ(c.node(new_leader).term(), term);
}

TEST_F(RaftMembershipTest, ProposeConfChange_SecondWhileFirstUncommitted_Refused) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  std::vector<NodeId> f = Others(leader);
  c.AddNode(4);
  c.AddNode(5);
  c.Isolate(f[0]);
  c.Isolate(f[1]);  // nothing can commit

  ASSERT_TRUE(c.ProposeConfChange(leader, Add(4)).ok());
  EXPECT_EQ(c.ProposeConfChange(leader, Add(5)).code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(c.ProposeConfChange(leader, Remove(f[0])).code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(c.node(leader).membership().Contains(4)) << "in force once in the log";
  EXPECT_FALSE(c.node(leader).membership().Contains(5));

  c.Heal();
  c.TickAll(5);
  ASSERT_NE(c.ProposeAndWait("committed", 4), 0u);
  EXPECT_TRUE(c.ProposeConfChange(c.Leader(), Add(5)).ok()) << "the first one committed";
}

TEST_F(RaftMembershipTest, ProposeConfChange_InvalidChanges_Refused) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId follower = Others(leader)[0];
  Index last = c.node(leader).last_index();

  EXPECT_TRUE(c.ProposeConfChange(follower, Add(4)).IsNotLeader());
  EXPECT_EQ(c.ProposeConfChange(leader, Add(follower)).code(), Status::Code::kFailedPrecondition)
      << "already a voter";
  EXPECT_EQ(c.ProposeConfChange(leader, Remove(9)).code(), Status::Code::kFailedPrecondition)
      << "not a voter";
  EXPECT_EQ(c.node(leader).last_index(), last) << "a refused change was appended";
  EXPECT_EQ(c.node(leader).membership().voters.size(), 3u);
}

TEST_F(RaftMembershipTest, ProposeConfChange_RemovingTheLastVoter_Refused) {
  RaftCluster& c = Start({.nodes = 1});
  NodeId leader = c.WaitLeader();
  ASSERT_EQ(leader, 1u);
  EXPECT_EQ(c.ProposeConfChange(1, Remove(1)).code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(c.ProposeAndWait("alone", 1), 0u);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
