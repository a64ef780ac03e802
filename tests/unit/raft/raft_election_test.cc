// Leader election: initial election, re-election, quorum, many elections, pre-vote and
// check-quorum (Raft paper §5.2, dissertation §9.6; 6.824 lab 2A).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftElectionTest : public RaftScenarioTest {};

TEST_F(RaftElectionTest, InitialElection_OneLeaderWithinBound) {
  for (int nodes : {3, 5}) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      SCOPED_TRACE("nodes=" + std::to_string(nodes) + " seed=" + std::to_string(seed));
      RaftCluster& c = Start({.nodes = nodes, .seed = seed});
      int rounds = 0;
      while (c.Leader() == kNoNode && rounds < 10 * kElection) {
        c.TickAll();
        ++rounds;
      }
      NodeId leader = c.Leader();
      ASSERT_NE(leader, kNoNode);
      // Timeouts are drawn from [E, 2E); one split vote costs at most another 2E.
      EXPECT_LE(rounds, 4 * kElection);
      EXPECT_EQ(c.Leaders().size(), 1u);
      for (NodeId id : c.ids()) {
        EXPECT_EQ(c.node(id).term(), c.node(leader).term()) << "node " << id;
        EXPECT_EQ(c.node(id).leader(), leader) << "node " << id;
      }
    }
  }
}

TEST_F(RaftElectionTest, NoFaults_TermAndLeaderStayStable) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.StabilizeElection();
  ASSERT_NE(leader, kNoNode);
  Term term = c.node(leader).term();
  c.ResetCounters();

  c.TickAll(20 * kElection);

  EXPECT_EQ(c.Leader(), leader);
  for (NodeId id : c.ids()) EXPECT_EQ(c.node(id).term(), term) << "node " << id;
  EXPECT_EQ(c.Count([](const SentMessage& m) {
    return m.type == MessageType::kPreVote || m.type == MessageType::kVote;
  }),
            0)
      << "nobody should campaign while the leader is healthy";
}

TEST_F(RaftElectionTest, LeaderIsolated_RestElectNewLeader) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId old_leader = c.WaitLeader();
  ASSERT_NE(old_leader, kNoNode);

  c.Isolate(old_leader);
  NodeId new_leader = c.WaitLeader();

  ASSERT_NE(new_leader, kNoNode);
  EXPECT_NE(new_leader, old_leader);
  EXPECT_GT(c.node(new_leader).term(), c.leaders_by_term().begin()->first);
}

TEST_F(RaftElectionTest, OldLeaderRejoins_StepsDown) {
  // Without check-quorum the cut-off leader keeps believing it leads until it hears a
  // higher term.
  RaftCluster& c = Start({.nodes = 3, .check_quorum = false});
  NodeId old_leader = c.WaitLeader();
  ASSERT_NE(old_leader, kNoNode);
  c.Isolate(old_leader);
  NodeId new_leader = c.WaitLeader();
  ASSERT_NE(new_leader, kNoNode);
  ASSERT_EQ(c.node(old_leader).role(), Role::kLeader) << "setup: stale leader expected";
  Index stale;
  ASSERT_TRUE(c.Propose(old_leader, "stale-write", &stale).ok());

  c.Reconnect(old_leader);
  c.TickAll(2);

  EXPECT_EQ(c.node(old_leader).role(), Role::kFollower);
  EXPECT_EQ(c.node(old_leader).leader(), new_leader);
  EXPECT_EQ(c.node(old_leader).term(), c.node(new_leader).term());
  EXPECT_EQ(c.Leader(), new_leader);
  EXPECT_EQ(c.Leaders().size(), 1u);
  EXPECT_NE(c.ProposeAndWait("after-rejoin", 3), 0u);
  EXPECT_EQ(c.AppliedCount(stale, "stale-write"), 0);
}

TEST_F(RaftElectionTest, NoQuorum_NoLeaderUntilQuorumReturns) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId follower = Others(leader)[0];

  // Two of three gone: nobody may lead (check-quorum deposes the old leader).
  c.Isolate(leader);
  c.Isolate(follower);
  c.TickAll(6 * kElection);
  EXPECT_EQ(c.Leader(), kNoNode);
  EXPECT_TRUE(c.Leaders().empty()) << "a leader without a quorum survived check-quorum";

  // One returns: a quorum again, so a leader again.
  c.Reconnect(follower);
  NodeId again = c.WaitLeader();
  EXPECT_NE(again, kNoNode);
  EXPECT_NE(again, leader);

  // Everyone returns: still exactly one leader.
  c.Heal();
  c.TickAll(2 * kElection);
  EXPECT_NE(c.Leader(), kNoNode);
  EXPECT_EQ(c.Leaders().size(), 1u);
}

TEST_F(RaftElectionTest, ManyElections_SevenNodesRandomDisconnects_OneLeaderPerTerm) {
  for (uint64_t seed : {11, 12}) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    RaftCluster& c = Start({.nodes = 7, .seed = seed});
    std::mt19937_64 rng(seed);
    ASSERT_NE(c.WaitLeader(), kNoNode);
    for (int iteration = 0; iteration < 10; ++iteration) {
      std::vector<NodeId> ids = c.ids();
      std::shuffle(ids.begin(), ids.end(), rng);
      if (iteration % 2 == 0) {  // every other time the leader is among the three
        NodeId leader = c.Leader();
        std::iter_swap(ids.begin(), std::find(ids.begin(), ids.end(), leader));
      }
      for (int i = 0; i < 3; ++i) c.Isolate(ids[i]);
      // Four of seven remain connected: a quorum, so a leader among them.
      NodeId leader = c.WaitLeader();
      ASSERT_NE(leader, kNoNode) << "iteration " << iteration;
      EXPECT_TRUE(std::find(ids.begin() + 3, ids.end(), leader) != ids.end());
      c.Heal();
      c.TickAll(std::uniform_int_distribution<int>(0, 2 * kElection)(rng));
      ASSERT_NE(c.WaitLeader(), kNoNode) << "iteration " << iteration;
    }
    ASSERT_NE(c.WaitLeader(), kNoNode);
    // The election-safety check runs on every step; make sure it saw many terms.
    EXPECT_GE(c.leaders_by_term().size(), 5u);
  }
}

TEST_F(RaftElectionTest, PreVote_PartitionedFollowerTermDoesNotGrow) {
  RaftCluster& c = Start({.nodes = 3, .pre_vote = true});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  Term term = c.node(leader).term();
  NodeId follower = Others(leader)[0];

  c.Isolate(follower);
  c.TickAll(10 * kElection);
  EXPECT_EQ(c.node(follower).term(), term) << "pre-vote must keep the isolated term still";

  c.Reconnect(follower);
  c.TickAll(3 * kElection);
  EXPECT_EQ(c.Leader(), leader) << "the rejoining follower deposed the leader";
  EXPECT_EQ(c.node(leader).term(), term);
  EXPECT_EQ(c.node(follower).leader(), leader);
}

TEST_F(RaftElectionTest, WithoutPreVote_PartitionedFollowerTermGrows) {
  // The contrast that shows the test above measures something.
  RaftCluster& c = Start({.nodes = 3, .pre_vote = false});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  Term term = c.node(leader).term();
  NodeId follower = Others(leader)[0];

  c.Isolate(follower);
  c.TickAll(10 * kElection);

  EXPECT_GT(c.node(follower).term(), term);
}

TEST_F(RaftElectionTest, CheckQuorum_FollowerThatHeardFromLeaderIgnoresVotes) {
  RaftCluster& c = Start({.nodes = 3, .check_quorum = true});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.TickAll(2);
  std::vector<NodeId> followers = Others(leader);
  NodeId voter = followers[0], disruptor = followers[1];
  Term term = c.node(voter).term();
  c.ResetCounters();

  // The disruptor asks for votes in a higher term with an up-to-date log.
  for (MessageType type : {MessageType::kPreVote, MessageType::kVote}) {
    Message m;
    m.type = type;
    m.from = disruptor;
    m.to = voter;
    m.term = term + 1;
    m.index = c.node(disruptor).last_index();
    m.log_term = c.node(disruptor).last_term();
    c.Inject(m);
  }

  EXPECT_EQ(c.Count([&](const SentMessage& m) {
    return m.from == voter && !m.reject &&
           (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp);
  }),
            0)
      << "a follower in a leader's lease granted a vote";
  EXPECT_EQ(c.node(voter).term(), term);
  EXPECT_EQ(c.node(voter).leader(), leader);
  EXPECT_EQ(c.node(voter).vote(), c.disk(voter).hard_state.vote);
  c.TickAll(2);
  EXPECT_EQ(c.Leader(), leader);
}

TEST_F(RaftElectionTest, CheckQuorum_LeaderCutOffFromMajorityStepsDown) {
  RaftCluster& c = Start({.nodes = 5, .check_quorum = true});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  std::vector<NodeId> f = Others(leader);
  // The leader keeps one follower: 2 of 5.
  c.Partition({leader, f[0]}, {f[1], f[2], f[3]});

  int ticks = 0;
  while (c.node(leader).role() == Role::kLeader && ticks < 10 * kElection) {
    c.TickAll();
    ++ticks;
  }

  EXPECT_NE(c.node(leader).role(), Role::kLeader);
  EXPECT_LE(ticks, 2 * kElection) << "check-quorum should act within about an election timeout";
  NodeId next = c.WaitLeader();
  EXPECT_NE(next, kNoNode);
  EXPECT_NE(next, leader);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
