// Log replication: agreement with failed followers, no commit without a majority, a stale
// leader's entries overwritten, fast backtracking over long divergent logs (Raft paper
// §5.3; 6.824 lab 2B).
#include <gtest/gtest.h>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftReplicationTest : public RaftScenarioTest {
 protected:
  // Rejected appends answered since the last ResetCounters().
  int RejectedAppends() const {
    return cluster_->Count(
        [](const SentMessage& m) { return m.type == MessageType::kAppendResp && m.reject; });
  }
};

TEST_F(RaftReplicationTest, Agreement_EveryNodeAppliesTheSameEntriesInOrder) {
  RaftCluster& c = Start({.nodes = 3});
  ASSERT_NE(c.WaitLeader(), kNoNode);

  for (int i = 0; i < 10; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("agree", i), 3), 0u) << i;

  for (NodeId id : c.ids()) {
    EXPECT_EQ(c.applied(id).entries, c.applied(c.Leader()).entries) << "node " << id;
  }
}

TEST_F(RaftReplicationTest, FollowerFails_MajorityCommits_FollowerCatchesUpOnReturn) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("before", 3), 0u);
  NodeId lost = Others(leader)[0];

  c.Isolate(lost);
  for (int i = 0; i < 5; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("without", i), 2), 0u) << i;

  c.Reconnect(lost);
  Index last = c.ProposeAndWait("after", 3);
  ASSERT_NE(last, 0u);
  EXPECT_EQ(c.applied(lost).entries, c.applied(c.Leader()).entries);
}

TEST_F(RaftReplicationTest, LostAppend_LeaderRetransmitsWithoutNewProposals) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  NodeId unlucky = Others(leader)[0];

  // The network loses every append to one follower for a moment.
  c.AddFilter(
      [unlucky](const Message& m) { return m.type == MessageType::kAppend && m.to == unlucky; });
  Index index;
  ASSERT_TRUE(c.Propose(leader, "b", &index).ok());
  c.DeliverAll();
  c.ClearFilters();
  ASSERT_LT(c.node(unlucky).last_index(), index);

  // No more writes arrive; heartbeats keep flowing. The leader must retry.
  c.TickAll(kElection);

  EXPECT_EQ(c.node(unlucky).last_index(), c.node(leader).last_index())
      << "Raft §5.3: the leader retries AppendEntries indefinitely";
  EXPECT_EQ(c.AppliedCount(index, "b"), 3);
}

TEST_F(RaftReplicationTest, ThreeOfFiveCut_NoCommitUntilTheyReturn) {
  RaftCluster& c = Start({.nodes = 5});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("before", 5), 0u);
  std::vector<NodeId> f = Others(leader);

  c.Isolate(f[1]);
  c.Isolate(f[2]);
  c.Isolate(f[3]);
  Index index;
  ASSERT_TRUE(c.Propose(leader, "minority", &index).ok());
  Index commit_before = c.node(leader).commit_index();
  c.TickAll(4 * kElection);

  EXPECT_LT(c.node(leader).commit_index(), index);
  EXPECT_EQ(c.node(leader).commit_index(), commit_before);
  EXPECT_EQ(c.AppliedCount(index, "minority"), 0);
  EXPECT_EQ(c.committed().count(index), 0u) << "committed with 2 of 5";

  c.Heal();
  EXPECT_NE(c.ProposeAndWait("healed", 5), 0u);
}

TEST_F(RaftReplicationTest, StaleLeaderRejoins_ItsUncommittedEntriesAreOverwritten) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader1 = c.WaitLeader();
  ASSERT_NE(leader1, kNoNode);
  ASSERT_NE(c.ProposeAndWait("101", 3), 0u);

  // The leader is cut off and accepts writes nobody else will see.
  c.Isolate(leader1);
  Index stale = 0;
  for (int i = 0; i < 3; ++i) {
    Index index;
    ASSERT_TRUE(c.Propose(leader1, Cmd("stale", i), &index).ok());
    if (i == 0) stale = index;
  }

  // The others elect a leader and commit.
  NodeId leader2 = c.WaitLeader();
  ASSERT_NE(leader2, kNoNode);
  ASSERT_NE(leader2, leader1);
  ASSERT_NE(c.ProposeAndWait("103", 2), 0u);

  // The new leader is cut off; the old one returns alongside the remaining follower.
  c.Heal();
  c.Isolate(leader2);
  ASSERT_NE(c.ProposeAndWait("104", 2), 0u);

  c.Heal();
  ASSERT_NE(c.ProposeAndWait("105", 3), 0u);

  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.AppliedCount(stale + i, Cmd("stale", i)), 0) << i;
  }
  EXPECT_EQ(c.applied(leader1).entries, c.applied(leader2).entries);
  const Raft& old = c.node(leader1);
  for (const Entry& e : old.Entries(old.first_index(), old.last_index() + 1)) {
    EXPECT_EQ(e.data.rfind("stale", 0), std::string::npos) << "left in the log: " << e.index;
  }
}

TEST_F(RaftReplicationTest, LongDivergentLogs_FastBacktrackingFewRejections) {
  constexpr int kDivergent = 100;
  RaftCluster& c = Start({.nodes = 5, .seed = 3});
  NodeId leader1 = c.WaitLeader();
  ASSERT_NE(leader1, kNoNode);
  ASSERT_NE(c.ProposeAndWait("first", 5), 0u);
  std::vector<NodeId> f = Others(leader1);
  NodeId follower1 = f[0];

  // Leader 1 and one follower take 100 entries that will never commit.
  c.Partition({leader1, follower1}, {f[1], f[2], f[3]});
  for (int i = 0; i < kDivergent; ++i) {
    ASSERT_TRUE(c.Propose(leader1, Cmd("lost1", i)).ok());
    c.DeliverAll();
  }
  ASSERT_EQ(c.node(follower1).last_index(), c.node(leader1).last_index());

  // The other three elect a leader and commit 100 entries.
  NodeId leader2 = c.WaitLeader();
  ASSERT_NE(leader2, kNoNode);
  ASSERT_NE(leader2, leader1);
  ASSERT_NE(leader2, follower1);
  for (int i = 0; i < kDivergent; ++i) {
    ASSERT_TRUE(c.Propose(leader2, Cmd("ok1", i)).ok());
    c.DeliverAll();
  }
  ASSERT_NE(c.ProposeAndWait("ok1-last", 3), 0u);

  // Leader 2 and one follower take another 100 entries that will never commit; the third
  // member of the majority joins leader 1's side.
  NodeId other = kNoNode, follower2 = kNoNode;
  for (NodeId id : {f[1], f[2], f[3]}) {
    if (id == leader2) continue;
    (other == kNoNode ? other : follower2) = id;
  }
  c.Heal();
  c.Partition({leader2, follower2}, {leader1, follower1, other});
  for (int i = 0; i < kDivergent; ++i) {
    ASSERT_TRUE(c.Propose(leader2, Cmd("lost2", i)).ok());
    c.DeliverAll();
  }

  // Only `other` has the committed entries, so it must win, then overwrite 100 entries on
  // two followers.
  c.ResetCounters();
  NodeId leader3 = c.WaitLeader();
  ASSERT_EQ(leader3, other);
  for (int i = 0; i < 10; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("ok2", i), 3), 0u) << i;
  int rejected_phase1 = RejectedAppends();
  EXPECT_EQ(c.applied(leader1).entries, c.applied(leader3).entries);

  // Everyone together: the second minority's 100 entries are overwritten too.
  c.ResetCounters();
  c.Heal();
  ASSERT_NE(c.ProposeAndWait("final", 5), 0u);
  int rejected_phase2 = RejectedAppends();

  RecordProperty("rejected_phase1", rejected_phase1);
  RecordProperty("rejected_phase2", rejected_phase2);
  // One divergent term per lagging follower here: a handful of rejections, not ~100.
  EXPECT_LE(rejected_phase1, 10) << "backtracking leader1/follower1 by entries, not terms?";
  EXPECT_LE(rejected_phase2, 10) << "backtracking leader2/follower2 by entries, not terms?";
  for (NodeId id : c.ids()) {
    EXPECT_EQ(c.applied(id).entries, c.applied(leader3).entries) << "node " << id;
  }
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
