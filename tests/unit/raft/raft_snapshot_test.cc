// Snapshots and log compaction: a lagging follower catches up by InstallSnapshot and then by
// entries; Compact's preconditions; crashing everything repeatedly never moves the applied
// index backwards (6.824 lab 2D).
#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "tests/unit/raft/raft_fixture.h"

namespace verdict::coordinator::raft::testing {
namespace {

class RaftSnapshotTest : public RaftScenarioTest {};

TEST_F(RaftSnapshotTest, LaggingFollower_CatchesUpBySnapshotThenByEntries) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(c.ProposeAndWait("a", 3), 0u);
  std::vector<NodeId> f = Others(leader);
  NodeId lagging = f[0];

  c.Isolate(lagging);
  for (int i = 0; i < 30; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("b", i), 2), 0u) << i;
  ASSERT_TRUE(c.Compact(leader).ok());
  ASSERT_TRUE(c.Compact(f[1]).ok());
  Index snap = c.node(leader).snapshot()->meta.index;
  EXPECT_EQ(c.node(leader).first_index(), snap + 1);
  EXPECT_EQ(c.disk(leader).SnapshotIndex(), snap);
  ASSERT_GT(c.node(leader).first_index(), c.node(lagging).last_index() + 1)
      << "setup: the entries the follower needs must be gone";

  // It returns; the next write makes the leader probe it (a lost append is retransmitted
  // without one too: see RaftReplicationTest.LostAppend_*).
  c.ResetCounters();
  c.Reconnect(lagging);
  ASSERT_TRUE(c.Propose(leader, "nudge").ok());
  c.TickAll(3);

  EXPECT_GE(c.Count([&](const SentMessage& m) {
    return m.type == MessageType::kSnapshot && m.to == lagging;
  }),
            1);
  EXPECT_EQ(c.applied(lagging).snapshots_applied, 1) << "its Ready carries the snapshot";
  EXPECT_EQ(c.disk(lagging).SnapshotIndex(), snap) << "and it stored it";
  EXPECT_GE(c.applied(lagging).applied_index, snap);

  // From here on, plain entries.
  c.ResetCounters();
  for (int i = 0; i < 5; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("c", i), 3), 0u) << i;
  EXPECT_EQ(c.Count(MessageType::kSnapshot), 0);
  EXPECT_EQ(c.applied(lagging).entries, c.applied(leader).entries);
  EXPECT_GT(c.disk(lagging).LastIndex(), snap);

  // And the snapshot is what it restarts from.
  c.Crash(lagging);
  c.Restart(lagging);
  EXPECT_EQ(c.node(lagging).snapshot()->meta.index, snap);
  EXPECT_GE(c.node(lagging).commit_index(), snap);
  ASSERT_NE(c.ProposeAndWait("d", 3), 0u);
  EXPECT_EQ(c.applied(lagging).entries, c.applied(leader).entries);
}

TEST_F(RaftSnapshotTest, Compact_RefusesUnappliedOrOldIndex) {
  RaftCluster& c = Start({.nodes = 3});
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 5; ++i) ASSERT_NE(c.ProposeAndWait(Cmd("a", i), 3), 0u);
  Raft& r = c.node(leader);
  auto data = std::make_shared<const std::string>("unused");
  Index applied = c.applied(leader).applied_index;

  EXPECT_EQ(r.Compact(applied + 1, data).code(), Status::Code::kInvalidArgument)
      << "not applied yet";
  ASSERT_TRUE(c.Compact(leader).ok());
  EXPECT_EQ(r.Compact(applied, data).code(), Status::Code::kInvalidArgument)
      << "not above the current snapshot";
  EXPECT_EQ(r.Compact(applied - 1, data).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.snapshot()->meta.index, applied);
  EXPECT_EQ(r.TermAt(applied), r.snapshot()->meta.term);
  EXPECT_FALSE(r.TermAt(applied - 1).has_value()) << "compacted away";
  EXPECT_EQ(r.snapshot()->meta.membership, r.membership());
  EXPECT_NE(c.ProposeAndWait("after", 3), 0u);
}

TEST_F(RaftSnapshotTest, CrashEverythingRepeatedly_AppliedIndexNeverGoesBack) {
  for (uint64_t seed : {21, 22}) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    RaftCluster& c = Start({.nodes = 3, .seed = seed});
    std::mt19937_64 rng(seed);
    auto chance = [&rng](int percent) {
      return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
    };
    std::map<NodeId, Index> applied_before_crash;
    for (int iteration = 0; iteration < 12; ++iteration) {
      ASSERT_NE(c.WaitLeader(), kNoNode) << iteration;
      NodeId lagging = kNoNode;
      if (chance(50)) {
        lagging = Others(c.Leader())[0];
        c.Isolate(lagging);
      }
      int n = std::uniform_int_distribution<int>(3, 12)(rng);
      for (int i = 0; i < n; ++i) {
        ASSERT_NE(
            c.ProposeAndWait(Cmd("it" + std::to_string(iteration), i), lagging == kNoNode ? 3 : 2),
            0u);
      }
      for (NodeId id : c.UpIds()) {
        if (chance(60) && c.applied(id).applied_index > c.disk(id).SnapshotIndex()) {
          ASSERT_TRUE(c.Compact(id).ok()) << "node " << id;
        }
      }
      // Some writes in flight when the power goes.
      NodeId leader = c.Leader();
      if (leader != kNoNode && chance(50)) {
        (void)c.Propose(leader, Cmd("inflight", iteration));
        c.DeliverIf([&rng](const Message&) { return rng() % 2 == 0; });
      }
      for (NodeId id : c.ids()) applied_before_crash[id] = c.applied(id).applied_index;

      c.CrashAll();
      c.Heal();
      c.RestartAll();
      for (NodeId id : c.ids()) {
        EXPECT_GE(c.applied(id).applied_index, c.disk(id).SnapshotIndex())
            << "the state machine restarts from the durable snapshot";
      }

      ASSERT_NE(c.ProposeAndWait(Cmd("recovered", iteration), 3), 0u) << iteration;
      for (NodeId id : c.ids()) {
        EXPECT_GE(c.applied(id).applied_index, applied_before_crash[id])
            << "node " << id << " applied less after recovery than before the crash";
      }
    }
    c.CheckInvariants();
  }
}

// Compaction at random moments under the randomized figure-8 faults: snapshots are sent
// over a lossy, reordering network, installed, lost in crashes and restored from disk, and
// no committed entry ever changes.
TEST_F(RaftSnapshotTest, RandomizedFaultsWithCompaction_CommittedEntriesNeverChange) {
  constexpr int kIterations = 600;
  for (uint64_t seed : {31, 32}) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    RaftCluster& c = Start({.nodes = 5, .seed = seed});
    std::mt19937_64 rng(seed);
    auto chance = [&rng](int percent) {
      return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
    };
    c.SetFaults({.drop = 0.05, .duplicate = 0.05, .delay = 0.2, .reorder = true});
    for (NodeId id : c.ids()) c.SetDelayPersist(id, true);
    int proposed = 0, compactions = 0;

    for (int it = 0; it < kIterations; ++it) {
      for (NodeId id : c.UpIds()) {
        if (c.node(id).role() != Role::kLeader) continue;
        for (int k = std::uniform_int_distribution<int>(1, 4)(rng); k > 0; --k) {
          (void)c.Propose(id, Cmd("z", proposed++));
        }
      }
      int rounds = std::uniform_int_distribution<int>(0, chance(10) ? 3 * kElection : 3)(rng);
      for (int r = 0; r < rounds; ++r) {
        c.TickAll(1);
        for (NodeId id : c.UpIds()) {
          if (chance(80)) c.CompletePersist(id, std::uniform_int_distribution<size_t>(1, 3)(rng));
        }
      }
      for (NodeId id : c.UpIds()) {
        if (chance(5) && c.applied(id).applied_index > c.node(id).first_index()) {
          EXPECT_TRUE(c.Compact(id).ok());
          ++compactions;
        }
      }
      if (chance(15)) {
        std::vector<NodeId> up = c.UpIds();
        c.Crash(up[std::uniform_int_distribution<size_t>(0, up.size() - 1)(rng)]);
      }
      if (c.UpIds().size() < 4) {
        NodeId s = std::uniform_int_distribution<NodeId>(1, 5)(rng);
        if (!c.IsUp(s)) c.Restart(s);
      }
      if (it % 20 == 0) c.CheckInvariants();
    }

    c.SetFaults({});
    for (NodeId id : c.ids()) {
      if (!c.IsUp(id)) c.Restart(id);
      c.SetDelayPersist(id, false);
    }
    ASSERT_NE(c.ProposeAndWait("final", 5, 1000), 0u);
    c.CheckInvariants();
    EXPECT_GE(compactions, 10);
    for (NodeId id : c.ids()) EXPECT_EQ(c.applied(id).entries, c.applied(c.Leader()).entries);
  }
}

}  // namespace
}  // namespace verdict::coordinator::raft::testing
