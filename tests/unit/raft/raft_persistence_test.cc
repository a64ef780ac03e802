// Persistence and the durability contract of Ready: committed entries survive crashes of
// any set of nodes; a vote survives a restart; answers that promise durable state leave
// only after the write (Ready::messages_after_persist); the leader does not count its own
// copy of an entry before OnPersisted (6.824 lab 2C; raft.h file comment).
#include <gtest/gtest.h>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftPersistenceTest : public RaftScenarioTest {
 protected:
  int Sent(NodeId from, MessageType type, bool granted_only = true) const {
    return cluster_->Count([=](const SentMessage& m) {
      return m.from == from && m.type == type && (!granted_only || !m.reject);
    });
  }
};

TEST_F(RaftPersistenceTest, CrashAllRestartAll_CommittedEntriesSurvive) {
  RaftCluster& c = Start({.nodes = 3});
  ASSERT_NE(c.WaitLeader(), kNoNode);
  std::vector<Index> indexes;
  for (int i = 0; i < 5; ++i) {
    indexes.push_back(c.ProposeAndWait(Cmd("before", i), 3));
    ASSERT_NE(indexes.back(), 0u);
  }

  c.CrashAll();
  c.RestartAll();

  ASSERT_NE(c.ProposeAndWait("after", 3), 0u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(c.AppliedCount(indexes[i], Cmd("before", i)), 3) << i;
  }
}

TEST_F(RaftPersistenceTest, CrashLeaderOrFollowers_CommittedEntriesSurvive) {
  RaftCluster& c = Start({.nodes = 3});
  ASSERT_NE(c.WaitLeader(), kNoNode);
  Index first = c.ProposeAndWait("11", 3);
  ASSERT_NE(first, 0u);

  // The leader crashes and comes back at once.
  NodeId leader = c.Leader();
  c.Crash(leader);
  c.Restart(leader);
  ASSERT_NE(c.ProposeAndWait("12", 3), 0u);

  // The leader crashes; the others go on; it returns and catches up.
  leader = c.Leader();
  c.Crash(leader);
  Index while_down = c.ProposeAndWait("13", 2);
  ASSERT_NE(while_down, 0u);
  c.Restart(leader);
  ASSERT_NE(c.ProposeAndWait("14", 3), 0u);
  EXPECT_EQ(c.AppliedCount(while_down, "13"), 3);

  // A follower crashes; the others go on; it returns and catches up.
  NodeId follower = Others(c.Leader())[0];
  c.Crash(follower);
  Index without = c.ProposeAndWait("15", 2);
  ASSERT_NE(without, 0u);
  c.Restart(follower);
  ASSERT_NE(c.ProposeAndWait("16", 3), 0u);
  EXPECT_EQ(c.AppliedCount(without, "15"), 3);

  // Both followers crash: nothing commits; they return and the entry does.
  leader = c.Leader();
  for (NodeId id : Others(leader)) c.Crash(id);
  Index pending;
  ASSERT_TRUE(c.Propose(leader, "17", &pending).ok());
  c.TickAll(kElection);
  EXPECT_EQ(c.committed().count(pending), 0u);
  for (NodeId id : c.ids()) {
    if (!c.IsUp(id)) c.Restart(id);
  }
  ASSERT_NE(c.ProposeAndWait("18", 3), 0u);
  EXPECT_EQ(c.AppliedCount(first, "11"), 3);
}

TEST_F(RaftPersistenceTest, RepeatedCrashesOfChangingMajorities_CommittedEntriesSurvive) {
  RaftCluster& c = Start({.nodes = 5, .seed = 5});
  ASSERT_NE(c.WaitLeader(), kNoNode);
  std::vector<std::pair<Index, std::string>> done;
  for (int iteration = 0; iteration < 5; ++iteration) {
    std::string a = Cmd("all", iteration);
    done.push_back({c.ProposeAndWait(a, 5), a});
    ASSERT_NE(done.back().first, 0u);

    NodeId leader = c.Leader();
    ASSERT_NE(leader, kNoNode);
    NodeId x = leader % 5 + 1, y = x % 5 + 1;  // two nodes after the leader
    c.Crash(x);
    c.Crash(y);
    std::string b = Cmd("three", iteration);
    done.push_back({c.ProposeAndWait(b, 3), b});
    ASSERT_NE(done.back().first, 0u);

    // The three that carried the last write crash; the two that missed it return and
    // must not form a majority on their own.
    std::vector<NodeId> carried = c.UpIds();
    for (NodeId id : carried) c.Crash(id);
    c.Restart(x);
    c.Restart(y);
    c.TickAll(3 * kElection);
    EXPECT_TRUE(c.Leaders().empty()) << "two of five elected a leader";
    c.Restart(carried[0]);
    std::string d = Cmd("majority", iteration);
    done.push_back({c.ProposeAndWait(d, 3), d});
    ASSERT_NE(done.back().first, 0u);
    for (NodeId id : carried) {
      if (!c.IsUp(id)) c.Restart(id);
    }
  }
  ASSERT_NE(c.ProposeAndWait("end", 5), 0u);
  for (const auto& [index, data] : done) EXPECT_EQ(c.AppliedCount(index, data), 5) << data;
}

TEST_F(RaftPersistenceTest, VotedCrashedRestarted_RefusesSecondVoteInSameTerm) {
  RaftCluster& c = Start({.nodes = 3, .pre_vote = false, .check_quorum = false});
  c.Isolate(3);
  ASSERT_TRUE(c.ElectLeader(1));  // node 2's vote makes node 1 leader
  Term term = c.node(1).term();
  ASSERT_EQ(c.disk(2).hard_state.term, term);
  ASSERT_EQ(c.disk(2).hard_state.vote, 1u) << "the vote must be durable once granted";

  c.Crash(2);
  c.Restart(2);
  EXPECT_EQ(c.node(2).term(), term);
  EXPECT_EQ(c.node(2).vote(), 1u);

  // Node 3 campaigns in the same term with a log as good as anyone's.
  c.ResetCounters();
  Message m;
  m.type = MessageType::kVote;
  m.from = 3;
  m.to = 2;
  m.term = term;
  m.index = c.node(2).last_index();
  m.log_term = c.node(2).last_term();
  c.Inject(m);

  EXPECT_EQ(Sent(2, MessageType::kVoteResp), 0) << "voted twice in term " << term;
  EXPECT_EQ(c.node(2).vote(), 1u);
  EXPECT_EQ(c.disk(2).hard_state.vote, 1u);
}

TEST_F(RaftPersistenceTest, VoteGrant_LeavesOnlyAfterItIsDurable) {
  RaftCluster& c = Start({.nodes = 3, .pre_vote = false, .check_quorum = false});
  c.Isolate(3);
  c.SetDelayPersist(2, true);

  // Node 1 campaigns once; node 2 receives the request but its write is slow.
  auto requests = [&] {
    return c.Count([](const SentMessage& m) {
      return m.type == MessageType::kVote && m.from == 1 && m.to == 2;
    });
  };
  for (int i = 0; i < 4 * kElection && requests() == 0; ++i) c.Tick(1);
  ASSERT_EQ(requests(), 1);
  c.DeliverAll();

  EXPECT_EQ(Sent(2, MessageType::kVoteResp), 0) << "granted before the vote was durable";
  EXPECT_NE(c.node(1).role(), Role::kLeader);
  EXPECT_EQ(c.disk(2).hard_state.vote, kNoNode);

  c.CompletePersist(2);
  c.DeliverAll();

  EXPECT_EQ(c.disk(2).hard_state.vote, 1u);
  EXPECT_EQ(Sent(2, MessageType::kVoteResp), 1);
  EXPECT_EQ(c.Count([](const SentMessage& m) {
    return m.type == MessageType::kVoteResp && !m.reject && !m.after_persist;
  }),
            0);
  EXPECT_EQ(c.node(1).role(), Role::kLeader);
}

TEST_F(RaftPersistenceTest, FollowerAppendResponse_LeavesOnlyAfterItIsDurable) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  NodeId slow = Others(leader)[0];
  c.SetDelayPersist(slow, true);
  c.ResetCounters();

  Index index;
  ASSERT_TRUE(c.Propose(leader, "b", &index).ok());
  c.DeliverAll();

  EXPECT_EQ(c.node(slow).last_index(), index) << "the follower received the entry";
  EXPECT_GT(c.PendingWrites(slow), 0u);
  EXPECT_EQ(Sent(slow, MessageType::kAppendResp), 0) << "acknowledged before its write";
  EXPECT_LT(c.disk(slow).LastIndex(), index);

  c.CompletePersist(slow);
  c.DeliverAll();

  EXPECT_GE(Sent(slow, MessageType::kAppendResp), 1);
  EXPECT_EQ(c.Count([](const SentMessage& m) {
    return m.type == MessageType::kAppendResp && !m.reject && !m.after_persist;
  }),
            0)
      << "an append acknowledgement travelled in Ready::messages";
}

TEST_F(RaftPersistenceTest, Leader_DoesNotCountItselfBeforeOnPersisted) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  std::vector<NodeId> f = Others(leader);
  c.Isolate(f[1]);  // leader + f[0] is a quorum only if the leader's copy counts
  c.SetDelayPersist(leader, true);
  c.ResetCounters();

  Index index;
  ASSERT_TRUE(c.Propose(leader, "b", &index).ok());
  c.DeliverAll();

  EXPECT_GE(c.Count([&](const SentMessage& m) {
    return m.from == leader && m.to == f[0] && m.type == MessageType::kAppend && m.entries > 0;
  }),
            1)
      << "the leader replicates before its own write completes";
  EXPECT_EQ(c.disk(f[0]).LastIndex(), index);
  EXPECT_LT(c.node(leader).commit_index(), index)
      << "committed counting the leader's copy before it was durable";

  c.SetDelayPersist(leader, false);  // the write completes
  c.DeliverAll();

  EXPECT_GE(c.node(leader).commit_index(), index);
  EXPECT_GE(c.applied(leader).applied_index, index);
}

TEST_F(RaftPersistenceTest, FollowerCrashesBeforeItsWrite_NothingAcknowledgedIsLost) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  std::vector<NodeId> f = Others(leader);
  c.Isolate(f[1]);
  c.SetDelayPersist(f[0], true);

  Index index;
  ASSERT_TRUE(c.Propose(leader, "unsynced", &index).ok());
  c.DeliverAll();
  c.Crash(f[0]);  // its write never happened, and it never answered
  EXPECT_LT(c.node(leader).commit_index(), index);
  c.SetDelayPersist(f[0], false);
  c.Restart(f[0]);
  EXPECT_LT(c.node(f[0]).last_index(), index);

  c.TickAll(kElection);
  EXPECT_GE(c.node(leader).commit_index(), index) << "the leader must resend what was lost";
  c.Heal();
  ASSERT_NE(c.ProposeAndWait("after", 3), 0u);
  EXPECT_EQ(c.AppliedCount(index, "unsynced"), 3);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
