// Bad input: messages from unknown nodes, stale terms, duplicated and reordered appends,
// replayed appends whose entries are already present, appends beyond the log. No crash, no
// log damage, and the cluster keeps working.
#include <gtest/gtest.h>

#include <map>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftBadInputTest : public RaftScenarioTest {
 protected:
  struct NodeView {
    Term term;
    Index commit;
    NodeId leader;
    std::vector<Entry> log;
  };

  std::map<NodeId, NodeView> View() {
    std::map<NodeId, NodeView> out;
    for (NodeId id : cluster_->UpIds()) {
      Raft& r = cluster_->node(id);
      out[id] = {r.term(), r.commit_index(), r.leader(),
                 r.Entries(r.first_index(), r.last_index() + 1)};
    }
    return out;
  }

  void ExpectUnchanged(const std::map<NodeId, NodeView>& before) {
    for (const auto& [id, v] : before) {
      Raft& r = cluster_->node(id);
      EXPECT_EQ(r.term(), v.term) << "node " << id;
      EXPECT_EQ(r.commit_index(), v.commit) << "node " << id;
      EXPECT_EQ(r.leader(), v.leader) << "node " << id;
      EXPECT_EQ(r.Entries(r.first_index(), r.last_index() + 1), v.log) << "node " << id;
    }
  }

  static Message Make(MessageType type, NodeId from, NodeId to, Term term) {
    Message m;
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
  }
};

TEST_F(RaftBadInputTest, UnknownSender_IgnoredWithoutDamage) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  NodeId follower = Others(leader)[0];
  Term term = c.node(leader).term();
  constexpr NodeId kStranger = 99;
  std::map<NodeId, NodeView> before = View();

  for (NodeId to : {leader, follower}) {
    Message ack = Make(MessageType::kAppendResp, kStranger, to, term);
    ack.index = 1000;
    c.Inject(ack);
    Message nack = Make(MessageType::kAppendResp, kStranger, to, term);
    nack.reject = true;
    nack.reject_hint = 0;
    c.Inject(nack);
    c.Inject(Make(MessageType::kHeartbeatResp, kStranger, to, term));
    Message vote = Make(MessageType::kVoteResp, kStranger, to, term);
    c.Inject(vote);
    c.Inject(Make(MessageType::kPreVoteResp, kStranger, to, term));
    Message read = Make(MessageType::kReadIndex, kStranger, to, term);
    read.context = "stranger";
    c.Inject(read);
    Message answer = Make(MessageType::kReadIndexResp, kStranger, to, term);
    answer.index = 1000;
    answer.context = "stranger";
    c.Inject(answer);
  }
  c.DeliverAll();

  ExpectUnchanged(before);
  EXPECT_EQ(c.node(leader).progress(kStranger), nullptr);
  c.TickAll(2);
  EXPECT_EQ(c.Leader(), leader);
  EXPECT_NE(c.ProposeAndWait("b", 3), 0u);
}

TEST_F(RaftBadInputTest, StaleTermMessages_IgnoredWithoutDamage) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader1 = c.WaitLeader();
  ASSERT_NE(leader1, kNoNode);
  std::vector<Message> old_appends;
  c.OnSend([&](const Message& m, bool) {
    if (m.type == MessageType::kAppend && !m.entries.empty()) old_appends.push_back(m);
  });
  for (int i = 0; i < 3; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("a", i), 3), 0u);
  c.OnSend(nullptr);
  Term old_term = c.node(leader1).term();
  ASSERT_FALSE(old_appends.empty());

  // A new term begins.
  NodeId leader2 = Others(leader1)[0];
  ASSERT_TRUE(c.TransferLeadership(leader1, leader2).ok());
  c.DeliverAll();
  ASSERT_EQ(c.Leader(), leader2);
  for (int i = 0; i < 3; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("b", i), 3), 0u);
  c.TickAll(2);
  Index last = c.node(leader2).last_index();
  std::map<NodeId, NodeView> before = View();
  c.ResetCounters();

  for (NodeId to : Others(leader1)) {
    // Replays of the old leader's appends.
    for (Message m : old_appends) {
      m.to = to;
      c.Inject(m);
    }
    // A forged old-term append that conflicts with committed entries.
    Message evil = Make(MessageType::kAppend, leader1, to, old_term);
    evil.index = 1;
    evil.log_term = c.node(to).TermAt(1).value_or(0);
    evil.entries = {Entry{old_term, 2, EntryType::kNormal, "evil"}};
    evil.commit = last + 10;
    c.Inject(evil);
    Message hb = Make(MessageType::kHeartbeat, leader1, to, old_term);
    hb.commit = last + 10;
    c.Inject(hb);
    Message vote = Make(MessageType::kVote, leader1, to, old_term);
    vote.index = last + 100;
    vote.log_term = old_term + 100;
    c.Inject(vote);
    Message ack = Make(MessageType::kAppendResp, leader1, to, old_term);
    ack.index = last + 10;
    c.Inject(ack);
  }
  c.DeliverAll();

  ExpectUnchanged(before);
  EXPECT_EQ(
      c.Count([](const SentMessage& m) { return m.type == MessageType::kVoteResp && !m.reject; }),
      0);
  EXPECT_NE(c.ProposeAndWait("c", 3), 0u);
}

TEST_F(RaftBadInputTest, DuplicatedAndReorderedAppends_LogsConverge) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);

  // Five appends per follower queued, then doubled and delivered backwards.
  Index first = 0;
  for (int i = 0; i < 5; ++i) {
    Index index;
    ASSERT_TRUE(c.Propose(leader, Cmd("r", i), &index).ok());
    if (i == 0) first = index;
  }
  c.DuplicateQueued();
  c.ReverseQueued();
  c.DeliverAll();
  c.TickAll(3);

  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.AppliedCount(first + i, Cmd("r", i)), 3) << i;

  // And a while under random duplication, delay and reordering.
  c.SetFaults({.duplicate = 0.5, .delay = 0.3, .reorder = true});
  for (int i = 0; i < 30; ++i) {
    NodeId l = c.Leader();
    if (l != kNoNode) (void)c.Propose(l, Cmd("chaos", i));
    c.TickAll();
  }
  c.SetFaults({});
  ASSERT_NE(c.ProposeAndWait("final", 3), 0u);
  for (NodeId id : c.ids()) EXPECT_EQ(c.applied(id).entries, c.applied(leader).entries);
}

TEST_F(RaftBadInputTest, ReplayedAppendWithPresentEntries_DoesNotTruncate) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId follower = Others(leader)[0];
  std::vector<Message> captured;
  c.OnSend([&](const Message& m, bool) {
    if (m.type == MessageType::kAppend && m.to == follower && !m.entries.empty()) {
      captured.push_back(m);
    }
  });
  ASSERT_NE(c.ProposeAndWait("p0", 3), 0u);
  c.OnSend(nullptr);
  ASSERT_FALSE(captured.empty());
  for (int i = 1; i <= 5; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("p", i), 3), 0u);
  c.TickAll(2);
  std::map<NodeId, NodeView> before = View();

  // The old append arrives again: its entries are a prefix of what the follower holds.
  for (const Message& m : captured) c.Inject(m);
  c.DeliverAll();

  ExpectUnchanged(before);
  EXPECT_NE(c.ProposeAndWait("after", 3), 0u);
}

TEST_F(RaftBadInputTest, AppendBeyondTheLog_RejectedWithoutDamage) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  c.TickAll(2);
  NodeId follower = Others(leader)[0];
  Term term = c.node(leader).term();
  Index last = c.node(follower).last_index();
  std::map<NodeId, NodeView> before = View();
  c.ResetCounters();

  Message gap = Make(MessageType::kAppend, leader, follower, term);
  gap.index = last + 5;
  gap.log_term = term;
  gap.entries = {Entry{term, last + 6, EntryType::kNormal, "gap"}};
  gap.commit = c.node(leader).commit_index();
  c.Inject(gap);

  EXPECT_EQ(c.node(follower).last_index(), last);
  EXPECT_EQ(c.Count([&](const SentMessage& m) {
    return m.type == MessageType::kAppendResp && m.from == follower && !m.reject;
  }),
            0)
      << "acknowledged an append it cannot hold";
  c.DropIf([](const Message&) { return true; });  // the leader never sent it
  ExpectUnchanged(before);
  EXPECT_NE(c.ProposeAndWait("b", 3), 0u);
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
