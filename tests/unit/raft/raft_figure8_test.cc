// Raft paper figure 8: a leader never commits an entry of an earlier term by counting
// replicas; and the 6.824 randomized figure-8 run (leaders crash often, the network drops,
// duplicates, delays and reorders, writes are lost on crash) in which committed entries
// never change.
#include <gtest/gtest.h>

#include <random>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftFigure8Test : public RaftScenarioTest {
 protected:
  // Builds the paper's figure 8 (c) with nodes S1..S5, one entry per append so the
  // replication can be cut between two entries. Returns false on a setup failure.
  //  (a) S1 leads term A and replicates "x" at index 2 to S2 only.
  //  (b) S1 crashes; S5 leads term B > A with votes of S3, S4 and appends its own entry
  //      at index 2 that reaches nobody; S5 crashes.
  //  (c) S1 restarts and leads term C > B with S2, S3, S4. It replicates "x" (term A) to
  //      S3 and S4 (a majority holds it) but the network strips its own term-C entry at
  //      index 3 from every append. Committing "x" now would be unsafe: see (d).
  bool BuildFigure8c() {
    RaftCluster& c = Start({.nodes = 5,
                            .pre_vote = false,
                            .check_quorum = false,
                            .max_entries_per_msg = 1,
                            .seed = 8});
    // (a)
    if (!c.ElectLeader(1)) return false;
    c.TickAll(1);  // the leader's no-op commits everywhere
    if (c.AppliedCount(c.node(1).last_index(), "") != 5) return false;
    c.Partition({1, 2}, {3, 4, 5});
    if (!c.Propose(1, "x", &x_index_, &term_a_).ok()) return false;
    c.DeliverAll();
    if (c.node(2).TermAt(x_index_) != term_a_) return false;
    c.Crash(1);
    c.Heal();
    // (b)
    c.AddFilter([](const Message& m) { return m.from == 5 && m.type == MessageType::kAppend; });
    if (!c.ElectLeader(5)) return false;
    term_b_ = c.node(5).term();
    if (c.node(5).TermAt(x_index_) != term_b_) return false;
    c.Crash(5);
    c.ClearFilters();
    // (c)
    c.Restart(1);
    Index own_entry = x_index_ + 1;
    c.AddRewrite([own_entry](Message* m) {
      if (m->from != 1 || m->type != MessageType::kAppend) return;
      while (!m->entries.empty() && m->entries.back().index >= own_entry) m->entries.pop_back();
    });
    if (!c.ElectLeader(1)) return false;
    term_c_ = c.node(1).term();
    c.TickAll(3);  // heartbeats and retries; the filter still holds back index 3
    for (NodeId id : {1, 3, 4}) {
      if (c.node(id).TermAt(x_index_) != term_a_) return false;
    }
    return term_a_ < term_b_ && term_b_ < term_c_;
  }

  Index x_index_ = 0;
  Term term_a_ = 0, term_b_ = 0, term_c_ = 0;
};

TEST_F(RaftFigure8Test, EarlierTermEntryOnMajority_LeaderDoesNotCommitByCounting) {
  ASSERT_TRUE(BuildFigure8c()) << "could not construct figure 8 (c); is "
                                  "max_entries_per_msg honoured?";
  RaftCluster& c = *cluster_;

  // "x" sits on S1, S3, S4 (3 of 5) but is from term A < C: not committed.
  EXPECT_LT(c.node(1).commit_index(), x_index_);
  EXPECT_EQ(c.committed().count(x_index_), 0u);

  // (d) S1 crashes; S5 (last term B > A) wins with S2, S3, S4 and overwrites index 2.
  c.Crash(1);
  c.ClearFilters();
  c.Restart(5);
  ASSERT_TRUE(c.ElectLeader(5));
  ASSERT_NE(c.ProposeAndWait("after-d", 4), 0u);

  EXPECT_EQ(c.AppliedCount(x_index_, "x"), 0);
  ASSERT_EQ(c.committed().count(x_index_), 1u);
  EXPECT_EQ(c.committed().at(x_index_).term, term_b_);
  for (NodeId id : {2, 3, 4}) EXPECT_EQ(c.node(id).TermAt(x_index_), term_b_) << id;
}

TEST_F(RaftFigure8Test, EarlierTermEntry_CommitsOnceOwnTermEntryReachesMajority) {
  ASSERT_TRUE(BuildFigure8c()) << "could not construct figure 8 (c)";
  RaftCluster& c = *cluster_;
  ASSERT_LT(c.node(1).commit_index(), x_index_);

  // (e) S1 replicates an entry of its own term C to a majority: now "x" commits with it.
  c.ClearFilters();
  Index y;
  ASSERT_TRUE(c.Propose(1, "y", &y).ok());
  c.TickAll(3);

  EXPECT_GE(c.node(1).commit_index(), y);
  EXPECT_EQ(c.AppliedCount(x_index_, "x"), 4) << "S1..S4 apply x";
  EXPECT_EQ(c.AppliedCount(y, "y"), 4) << "S1..S4 apply y";
  ASSERT_EQ(c.committed().count(x_index_ + 1), 1u);
  EXPECT_EQ(c.committed().at(x_index_).term, term_a_);
  EXPECT_EQ(c.committed().at(x_index_ + 1).term, term_c_);
}

// 6.824 TestFigure8Unreliable, with lost writes: leaders crash every iteration, the network
// misbehaves, nodes persist late and lose unsynced writes on crash. State-machine safety,
// election safety and leader completeness are checked on every step by the harness.
TEST_F(RaftFigure8Test, RandomizedLeaderCrashes_CommittedEntriesNeverChange) {
  constexpr int kIterations = 1000;
  for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    bool classic = seed % 2 == 0;  // half the runs without pre-vote and check-quorum
    RaftCluster& c =
        Start({.nodes = 5, .pre_vote = !classic, .check_quorum = !classic, .seed = seed});
    std::mt19937_64 rng(seed);
    auto chance = [&rng](int percent) {
      return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
    };
    c.SetFaults({.drop = 0.1, .duplicate = 0.05, .delay = 0.2, .reorder = true});
    for (NodeId id : c.ids()) c.SetDelayPersist(id, true);
    int proposed = 0;

    for (int it = 0; it < kIterations; ++it) {
      for (NodeId id : c.UpIds()) {
        if (c.node(id).role() != Role::kLeader) continue;
        for (int k = std::uniform_int_distribution<int>(1, 3)(rng); k > 0; --k) {
          (void)c.Propose(id, Cmd("s" + std::to_string(seed), proposed++));
        }
      }
      int rounds = chance(10) ? std::uniform_int_distribution<int>(0, 3 * kElection)(rng)
                              : std::uniform_int_distribution<int>(0, 3)(rng);
      for (int r = 0; r < rounds; ++r) {
        c.TickAll(1);
        for (NodeId id : c.UpIds()) {
          if (chance(80)) c.CompletePersist(id, std::uniform_int_distribution<size_t>(1, 3)(rng));
        }
      }
      std::vector<NodeId> leaders = c.Leaders();
      if (!leaders.empty() && chance(50)) c.Crash(leaders[0]);
      if (c.UpIds().size() < 3) {
        NodeId s = std::uniform_int_distribution<NodeId>(1, 5)(rng);
        if (!c.IsUp(s)) c.Restart(s);
      }
      if (it % 20 == 0) c.CheckInvariants();
    }

    // Heal everything: the cluster must agree on one more entry everywhere.
    c.SetFaults({});
    for (NodeId id : c.ids()) {
      if (!c.IsUp(id)) c.Restart(id);
      c.SetDelayPersist(id, false);
    }
    ASSERT_NE(c.ProposeAndWait("final", 5, 1000), 0u);
    c.CheckInvariants();
    EXPECT_GE(c.committed().size(), 20u) << "the run made too little progress to mean much";
  }
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
