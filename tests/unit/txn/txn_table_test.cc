#include "coordinator/txn/txn_table.h"

#include <gtest/gtest.h>

#include <random>

namespace verdict::coordinator::txn {
namespace {

class TxnTableTest : public ::testing::Test {
 protected:
  ApplyResult Apply(const TxnCommand& cmd) {
    raft::Entry e{/*term=*/3, ++index_, raft::EntryType::kNormal, EncodeCommand(cmd)};
    ApplyResult r;
    Status s = table_.Apply(e, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }
  ApplyResult Decide(const std::string& g, Outcome o, DecideBasis b = DecideBasis::kVotes) {
    return Apply(DecideCmd{g, o, b, {{"a", "x"}, {"b", "y"}}, {}});
  }
  ApplyResult Precommit(const std::string& g) {
    return Apply(PrecommitCmd{g, {{"a", "x"}, {"b", "y"}}});
  }
  ApplyResult End(std::vector<std::string> gtids) { return Apply(EndCmd{std::move(gtids)}); }
  GtidState State(const std::string& g) { return table_.Find(g).state; }

  TxnTable table_;
  uint64_t index_ = 1;  // entry 1 is the bootstrap membership entry
};

using Code = ApplyResult::Code;

TEST_F(TxnTableTest, Apply_NoopAndConfChangeAdvanceOnly) {
  ApplyResult r;
  ASSERT_TRUE(table_.Apply({1, 1, raft::EntryType::kConfChange, "whatever"}, &r).ok());
  EXPECT_EQ(r.code, Code::kNoop);
  ASSERT_TRUE(table_.Apply({1, 2, raft::EntryType::kNormal, ""}, &r).ok());
  EXPECT_EQ(r.code, Code::kNoop);
  EXPECT_EQ(table_.applied_index(), 2u);
  EXPECT_TRUE(table_.records().empty());
}

TEST_F(TxnTableTest, Apply_GarbageIsCorruptionAndChangesNothing) {
  ApplyResult r;
  Status s = table_.Apply({1, 2, raft::EntryType::kNormal, "\x03garbage"}, &r);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_EQ(table_.applied_index(), 0u);
}

TEST_F(TxnTableTest, Decide_FirstDecisionWins) {
  EXPECT_EQ(Decide("1.1.1", Outcome::kCommit).code, Code::kDecided);
  ApplyResult r = Decide("1.1.1", Outcome::kAbort, DecideBasis::kPresumedAbort);
  EXPECT_EQ(r.code, Code::kAlreadyDecided);
  EXPECT_EQ(r.decision, Outcome::kCommit);
  EXPECT_EQ(table_.counters().overridden, 1u);
  EXPECT_EQ(*table_.Find("1.1.1").record->decision, Outcome::kCommit);
}

TEST_F(TxnTableTest, Precommit_AfterDecisionIsRejected) {
  Decide("1.1.1", Outcome::kAbort, DecideBasis::kPresumedAbort);
  ApplyResult r = Precommit("1.1.1");
  EXPECT_EQ(r.code, Code::kPrecommitRejected);
  EXPECT_EQ(r.decision, Outcome::kAbort);
  EXPECT_FALSE(table_.Find("1.1.1").record->precommit);
}

TEST_F(TxnTableTest, Precommit_IsAnIntentThenCommitDecides) {
  EXPECT_EQ(Precommit("1.1.1").code, Code::kPrecommitAccepted);
  EXPECT_EQ(Precommit("1.1.1").code, Code::kPrecommitAccepted);  // repeated: no-op
  EXPECT_EQ(State("1.1.1"), GtidState::kIntent);
  EXPECT_EQ(Decide("1.1.1", Outcome::kCommit, DecideBasis::kPrecommitAck).code, Code::kDecided);
  EXPECT_EQ(State("1.1.1"), GtidState::kDecided);
  EXPECT_TRUE(table_.Find("1.1.1").record->precommit);
}

TEST_F(TxnTableTest, AbortAfterPrecommit_OnlyWhenFencedOrHeuristic) {
  Precommit("1.1.1");
  ApplyResult r = Decide("1.1.1", Outcome::kAbort, DecideBasis::kPresumedAbort);
  EXPECT_EQ(r.code, Code::kDecideRejected);
  EXPECT_TRUE(r.intent);
  EXPECT_FALSE(r.decision);
  EXPECT_EQ(State("1.1.1"), GtidState::kIntent);
  EXPECT_EQ(Decide("1.1.1", Outcome::kAbort, DecideBasis::kFenced).code, Code::kDecided);

  Precommit("1.1.2");
  EXPECT_EQ(
      Apply(
          DecideCmd{
              "1.1.2", Outcome::kAbort, DecideBasis::kHeuristic, {}, HeuristicInfo{"op", 5, "why"}})
          .code,
      Code::kDecided);
  // The intent's branches stay when the decision names none.
  EXPECT_EQ(table_.Find("1.1.2").record->participants.size(), 2u);
}

TEST_F(TxnTableTest, End_CommitLeavesTombstone_LateInquiryIsNotUnknown) {
  Decide("4.1.1", Outcome::kCommit);
  Decide("4.1.2", Outcome::kAbort, DecideBasis::kPresumedAbort);
  ApplyResult r = End({"4.1.1", "4.1.2", "4.1.99", "not-decided"});
  EXPECT_EQ(r.code, Code::kEnded);
  EXPECT_EQ(r.forgotten, 2u);
  EXPECT_TRUE(table_.records().empty());
  // A late inquiry about the ended COMMIT finds the tombstone, not "unknown".
  EXPECT_EQ(State("4.1.1"), GtidState::kEndedCommit);
  // An ended ABORT is simply unknown: presumed abort gives the same answer.
  EXPECT_EQ(State("4.1.2"), GtidState::kUnknown);
  // A presumed ABORT proposed for the ended COMMIT cannot win; PRECOMMIT neither.
  r = Decide("4.1.1", Outcome::kAbort, DecideBasis::kPresumedAbort);
  EXPECT_EQ(r.code, Code::kAlreadyDecided);
  EXPECT_EQ(r.decision, Outcome::kCommit);
  EXPECT_EQ(Precommit("4.1.1").code, Code::kPrecommitRejected);
  EXPECT_EQ(State("4.1.1"), GtidState::kEndedCommit);
}

TEST_F(TxnTableTest, End_KeepsIntentsHeuristicsAndForeignGtids) {
  Precommit("4.1.1");
  Apply(DecideCmd{
      "4.1.2", Outcome::kCommit, DecideBasis::kHeuristic, {}, HeuristicInfo{"bob", 1, "manual"}});
  Apply(DecideCmd{"legacy", Outcome::kCommit, DecideBasis::kLegacy, {{"p", ""}}, {}});
  End({"4.1.1", "4.1.2", "legacy"});
  EXPECT_EQ(State("4.1.1"), GtidState::kIntent);
  ASSERT_EQ(State("4.1.2"), GtidState::kDecided);
  EXPECT_TRUE(table_.Find("4.1.2").record->ended);
  EXPECT_EQ(table_.Find("4.1.2").record->heuristic->who, "bob");
  EXPECT_TRUE(table_.Find("legacy").record->ended);
}

TEST_F(TxnTableTest, Tombstones_MergeIntoRanges) {
  for (int s : {1, 2, 3, 5, 6, 4}) {
    std::string g = "2.1." + std::to_string(s);
    Decide(g, Outcome::kCommit);
    End({g});
  }
  EXPECT_EQ(table_.tombstone_ranges(), 1u);
  for (int s = 1; s <= 6; ++s)
    EXPECT_EQ(State("2.1." + std::to_string(s)), GtidState::kEndedCommit);
  EXPECT_EQ(State("2.1.7"), GtidState::kUnknown);
}

TEST(TxnTableMemory, Eviction_RaisesHorizon_OlderUnknownIsBeyondMemory) {
  TxnTable table(TxnTable::Options{/*max_commit_tombstone_ranges=*/2});
  uint64_t index = 1;
  auto commit_and_end = [&](const std::string& g) {
    table.ApplyCommand(DecideCmd{g, Outcome::kCommit, DecideBasis::kVotes, {}, {}}, ++index, 1);
    table.ApplyCommand(EndCmd{{g}}, ++index, 1);
  };
  commit_and_end("1.1.1");
  commit_and_end("1.1.3");
  commit_and_end("2.1.1");  // three ranges > 2: the lowest, [1.1.1], is dropped
  EXPECT_EQ(table.tombstone_ranges(), 2u);
  EXPECT_EQ(table.horizon(), (Gtid{1, 1, 1}));
  EXPECT_EQ(table.Find("1.1.1").state, GtidState::kBeyondMemory);
  EXPECT_EQ(table.Find("1.1.3").state, GtidState::kEndedCommit);
  EXPECT_EQ(table.Find("1.1.2").state, GtidState::kUnknown);  // above the horizon
  EXPECT_EQ(table.Find("2.1.1").state, GtidState::kEndedCommit);
}

TEST_F(TxnTableTest, Register_InsertsAndReplaces) {
  EXPECT_EQ(Apply(RegisterParticipantCmd{"a", "h:1", "sqlite"}).code, Code::kRegistered);
  Apply(RegisterParticipantCmd{"a", "h:2", "postgres"});
  ASSERT_NE(table_.FindParticipant("a"), nullptr);
  EXPECT_EQ(table_.FindParticipant("a")->address, "h:2");
  EXPECT_EQ(table_.FindParticipant("b"), nullptr);
}

TEST_F(TxnTableTest, Snapshot_RoundTrip) {
  Apply(RegisterParticipantCmd{"a", "h:1", "sqlite"});
  Precommit("5.1.1");
  Decide("5.1.2", Outcome::kCommit);
  Decide("5.1.3", Outcome::kCommit);
  End({"5.1.3"});
  Apply(DecideCmd{"5.1.4",
                  Outcome::kAbort,
                  DecideBasis::kHeuristic,
                  {{"a", "x"}},
                  HeuristicInfo{"carol", -5, ""}});
  Apply(DecideCmd{"old", Outcome::kAbort, DecideBasis::kLegacy, {{"p", ""}}, {}});
  std::string snap = table_.Serialize();
  TxnTable copy;
  ASSERT_TRUE(copy.Restore(snap).ok());
  EXPECT_TRUE(copy == table_);
  EXPECT_EQ(copy.Serialize(), snap);
  EXPECT_EQ(copy.Find("5.1.3").state, GtidState::kEndedCommit);
  EXPECT_EQ(copy.Find("5.1.4").record->heuristic->when_unix_ms, -5);
}

TEST_F(TxnTableTest, Restore_GarbageIsCorruptionAndLeavesTableUnchanged) {
  Decide("5.1.2", Outcome::kCommit);
  Decide("5.1.3", Outcome::kCommit);
  End({"5.1.3"});
  std::string snap = table_.Serialize();
  TxnTable target;
  target.ApplyCommand(DecideCmd{"keep", Outcome::kAbort, DecideBasis::kLegacy, {}, {}}, 9, 1);
  std::string before = target.Serialize();
  for (size_t n = 0; n < snap.size(); ++n) {
    EXPECT_TRUE(target.Restore(snap.substr(0, n)).IsCorruption()) << "truncated to " << n;
  }
  EXPECT_TRUE(target.Restore(snap + "x").IsCorruption());
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = snap;
    junk[rng() % junk.size()] = static_cast<char>(rng());
    (void)target.Restore(junk);  // may be accepted if it still parses; must not crash
    ASSERT_TRUE(target.Restore(before).ok());
  }
  std::string random(64, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  EXPECT_TRUE(target.Restore(random).IsCorruption());
  EXPECT_EQ(target.Serialize(), before);
}

TEST(TxnTableLegacy, Restore_AcceptsDecisionRegisterSnapshot) {
  DecisionRegister reg;
  reg.Apply(DecideCommand{"g1", Outcome::kCommit, {"p1"}}, 5);
  reg.Apply(DecideCommand{"g2", Outcome::kAbort, {}}, 7);
  TxnTable table;
  ASSERT_TRUE(table.Restore(reg.Serialize()).ok());
  ASSERT_EQ(table.Find("g1").state, GtidState::kDecided);
  EXPECT_EQ(table.Find("g1").record->basis, DecideBasis::kLegacy);
  EXPECT_EQ(table.Find("g1").record->decision_index, 5u);
  EXPECT_EQ(table.Find("g1").record->participants, (std::vector<BranchRef>{{"p1", ""}}));
  EXPECT_EQ(*table.Find("g2").record->decision, Outcome::kAbort);
  EXPECT_EQ(table.counters().commits, 1u);
  std::string bad = reg.Serialize();
  bad.pop_back();
  EXPECT_TRUE(table.Restore(bad).IsCorruption());
}

TEST(TxnTableDeterminism, SameEntriesSameTable) {
  TxnTable a, b;
  std::mt19937 rng(3);
  for (uint64_t i = 2; i < 400; ++i) {
    std::string g = "1.1." + std::to_string(rng() % 50 + 1);
    TxnCommand cmd;
    switch (rng() % 4) {
      case 0:
        cmd = PrecommitCmd{g, {{"a", "x"}}};
        break;
      case 1:
        cmd = DecideCmd{g,
                        rng() % 2 ? Outcome::kCommit : Outcome::kAbort,
                        rng() % 2 ? DecideBasis::kFenced : DecideBasis::kPresumedAbort,
                        {},
                        {}};
        break;
      case 2:
        cmd = EndCmd{{g}};
        break;
      default:
        cmd = RegisterParticipantCmd{g, "h", ""};
        break;
    }
    a.ApplyCommand(cmd, i, 1);
    b.ApplyCommand(cmd, i, 1);
  }
  EXPECT_TRUE(a == b);
  EXPECT_EQ(a.Serialize(), b.Serialize());
}

}  // namespace
}  // namespace verdict::coordinator::txn
