// Message economy: bounded messages per election, per proposed entry (with batching: many
// proposals before one GetReady go out as one append per follower) and per idle period
// (only heartbeats, at the rate heartbeat_ticks sets).
#include <gtest/gtest.h>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftMessageEconomyTest : public RaftScenarioTest {
 protected:
  static bool IsElection(const SentMessage& m) {
    return m.type == MessageType::kPreVote || m.type == MessageType::kPreVoteResp ||
           m.type == MessageType::kVote || m.type == MessageType::kVoteResp;
  }

  // A settled cluster: leader elected, an entry committed and known committed everywhere.
  NodeId Settle(RaftCluster& c) {
    NodeId leader = c.WaitLeader();
    if (leader == kNoNode || c.ProposeAndWait("settle", c.options().nodes) == 0) return kNoNode;
    c.TickAll(3);
    return leader;
  }
};

TEST_F(RaftMessageEconomyTest, Election_BoundedMessages) {
  for (int n : {3, 5}) {
    SCOPED_TRACE("nodes=" + std::to_string(n));
    RaftCluster& c = Start({.nodes = n});
    // Only node 1's clock runs, so it campaigns alone (no split votes to count).
    ASSERT_TRUE(c.ElectLeader(1));
    int election = c.Count(IsElection);
    int total = static_cast<int>(c.sent().size());
    RecordProperty("election_msgs_" + std::to_string(n), election);
    RecordProperty("total_msgs_" + std::to_string(n), total);

    // One request and one answer per peer for the pre-vote and the vote.
    EXPECT_LE(election, 4 * (n - 1));
    // Plus the leader's first append (and a commit notice) with their answers.
    EXPECT_LE(total, 8 * (n - 1));
    EXPECT_EQ(c.Leader(), 1u);
  }
}

TEST_F(RaftMessageEconomyTest, SteadyState_BoundedMessagesPerEntry) {
  for (int n : {3, 5}) {
    SCOPED_TRACE("nodes=" + std::to_string(n));
    RaftCluster& c = Start({.nodes = n});
    NodeId leader = Settle(c);
    ASSERT_NE(leader, kNoNode);
    c.ResetCounters();

    Index index;
    ASSERT_TRUE(c.Propose(leader, "one", &index).ok());
    c.DeliverAll();

    EXPECT_GE(c.node(leader).commit_index(), index);
    RecordProperty("per_entry_msgs_" + std::to_string(n), static_cast<int>(c.sent().size()));
    EXPECT_LE(c.Count(MessageType::kAppend), 2 * (n - 1));
    EXPECT_LE(c.Count(MessageType::kAppendResp), 2 * (n - 1));
    EXPECT_LE(static_cast<int>(c.sent().size()), 4 * (n - 1));
    EXPECT_EQ(c.Count(IsElection), 0);
  }
}

TEST_F(RaftMessageEconomyTest, Batching_ManyProposalsBeforeOneGetReady_OneAppendPerFollower) {
  constexpr int kBatch = 100;
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = Settle(c);
  ASSERT_NE(leader, kNoNode);
  Index first = c.node(leader).last_index() + 1;
  std::vector<std::string> batch;
  for (int i = 0; i < kBatch; ++i) batch.push_back(Cmd("batch", i));
  c.ResetCounters();

  ASSERT_TRUE(c.ProposeBatch(leader, batch).ok());

  for (NodeId f : Others(leader)) {
    EXPECT_EQ(c.Count([&](const SentMessage& m) {
      return m.type == MessageType::kAppend && m.from == leader && m.to == f;
    }),
              1)
        << "follower " << f << ": one append for the whole batch";
  }
  c.DeliverAll();
  c.TickAll(1);
  for (int i = 0; i < kBatch; ++i) {
    EXPECT_EQ(c.AppliedCount(first + i, Cmd("batch", i)), 3) << i;
  }
  for (NodeId f : Others(leader)) {
    EXPECT_LE(c.Count([&](const SentMessage& m) {
      return m.type == MessageType::kAppend && m.from == leader && m.to == f;
    }),
              3);
  }
}

TEST_F(RaftMessageEconomyTest, Idle_OnlyHeartbeatsAtConfiguredRate) {
  constexpr int kTicks = 60;
  for (int heartbeat : {1, 3}) {
    for (int n : {3, 5}) {
      SCOPED_TRACE("heartbeat_ticks=" + std::to_string(heartbeat) + " nodes=" + std::to_string(n));
      RaftCluster& c = Start({.nodes = n, .heartbeat_ticks = heartbeat});
      ASSERT_NE(Settle(c), kNoNode);
      c.ResetCounters();

      c.TickAll(kTicks);

      int per_follower = kTicks / heartbeat;
      int heartbeats = c.Count(MessageType::kHeartbeat);
      RecordProperty("heartbeats_h" + std::to_string(heartbeat) + "_n" + std::to_string(n),
                     heartbeats);
      EXPECT_GE(heartbeats, (per_follower - 1) * (n - 1));
      EXPECT_LE(heartbeats, (per_follower + 1) * (n - 1));
      EXPECT_LE(c.Count(MessageType::kHeartbeatResp), heartbeats);
      EXPECT_EQ(c.Count([](const SentMessage& m) {
        return m.type != MessageType::kHeartbeat && m.type != MessageType::kHeartbeatResp;
      }),
                0)
          << "an idle cluster sends only heartbeats";
    }
  }
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
