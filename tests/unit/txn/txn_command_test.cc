#include "coordinator/txn/txn_command.h"

#include <gtest/gtest.h>

namespace verdict::coordinator::txn {
namespace {

TxnCommand RoundTrip(const TxnCommand& c) {
  TxnCommand back;
  Status s = DecodeCommand(EncodeCommand(c), &back);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return back;
}

std::vector<TxnCommand> Samples() {
  return {
      PrecommitCmd{"3.1.7", {{"a", "b1"}, {"b", "b2"}}},
      DecideCmd{"3.1.7", Outcome::kCommit, DecideBasis::kVotes, {{"a", "b1"}}, {}},
      DecideCmd{"3.1.8", Outcome::kAbort, DecideBasis::kPresumedAbort, {}, {}},
      DecideCmd{"3.1.9", Outcome::kAbort, DecideBasis::kFenced, {{"a", "x"}, {"b", "y"}}, {}},
      DecideCmd{"3.1.9", Outcome::kCommit, DecideBasis::kPrecommitAck, {{"a", "x"}}, {}},
      DecideCmd{"3.1.10",
                Outcome::kCommit,
                DecideBasis::kHeuristic,
                {},
                HeuristicInfo{"alice", 1700000000123, "agent lost its disk"}},
      DecideCmd{"legacy-gtid", Outcome::kAbort, DecideBasis::kLegacy, {{"p1", ""}, {"p2", ""}}, {}},
      EndCmd{{"3.1.7", "3.1.8"}},
      RegisterParticipantCmd{"shard-a", "127.0.0.1:9000", "sqlite"},
  };
}

TEST(TxnCommand, Encode_RoundTripsEveryCommand) {
  for (const TxnCommand& c : Samples()) EXPECT_EQ(RoundTrip(c), c) << DescribeCommand(c);
}

TEST(TxnCommand, LegacyDecide_IsTagOneAndDecodesBothWays) {
  DecideCommand old{"g1", Outcome::kCommit, {"p1", "p2"}};
  std::string bytes = EncodeDecide(old);
  TxnCommand cmd;
  ASSERT_TRUE(DecodeCommand(bytes, &cmd).ok());
  const auto& d = std::get<DecideCmd>(cmd);
  EXPECT_EQ(d.basis, DecideBasis::kLegacy);
  EXPECT_EQ(d.outcome, Outcome::kCommit);
  EXPECT_EQ(d.participants, (std::vector<BranchRef>{{"p1", ""}, {"p2", ""}}));
  EXPECT_EQ(EncodeCommand(cmd), bytes);  // re-encodes as tag 1, byte for byte
  // And the old decoder still reads it; it refuses the new tags.
  DecideCommand back;
  EXPECT_TRUE(DecodeDecide(bytes, &back).ok());
  EXPECT_FALSE(DecodeDecide(EncodeCommand(Samples()[1]), &back).ok());
}

TEST(TxnCommand, Decode_RejectsEveryTruncation) {
  for (const TxnCommand& c : Samples()) {
    std::string bytes = EncodeCommand(c);
    for (size_t n = 0; n < bytes.size(); ++n) {
      TxnCommand out;
      EXPECT_FALSE(DecodeCommand(bytes.substr(0, n), &out).ok())
          << DescribeCommand(c) << " truncated to " << n;
    }
    TxnCommand out;
    EXPECT_FALSE(DecodeCommand(bytes + "x", &out).ok()) << "trailing byte " << DescribeCommand(c);
  }
}

TEST(TxnCommand, Decode_RejectsBadFields) {
  TxnCommand out;
  EXPECT_FALSE(DecodeCommand(std::string(1, '\x09'), &out).ok());  // unknown tag
  EXPECT_FALSE(DecodeCommand(std::string("\x00", 1), &out).ok());
  // DECIDE with a bad outcome, a bad basis, a heuristic flag without heuristic basis.
  std::string d = EncodeCommand(Samples()[1]);
  size_t outcome_at = 1 + 1 + 5;  // tag, len, "3.1.7"
  std::string bad = d;
  bad[outcome_at] = 7;
  EXPECT_FALSE(DecodeCommand(bad, &out).ok());
  bad = d;
  bad[outcome_at + 1] = 0;  // kLegacy is tag 1 only
  EXPECT_FALSE(DecodeCommand(bad, &out).ok());
  bad = d;
  bad[outcome_at + 1] = 9;
  EXPECT_FALSE(DecodeCommand(bad, &out).ok());
  bad = d;
  bad.back() = 1;  // heuristic flag, but basis kVotes and no record
  EXPECT_FALSE(DecodeCommand(bad, &out).ok());
  // Heuristic basis without the record.
  DecideCmd h = std::get<DecideCmd>(Samples()[5]);
  h.heuristic.reset();
  EXPECT_FALSE(DecodeCommand(EncodeCommand(h), &out).ok());
  // Empty gtid, empty branch name, empty END list, empty registration name.
  EXPECT_FALSE(DecodeCommand(EncodeCommand(PrecommitCmd{"", {}}), &out).ok());
  EXPECT_FALSE(DecodeCommand(EncodeCommand(PrecommitCmd{"g", {{"a", ""}}}), &out).ok());
  EXPECT_FALSE(DecodeCommand(EncodeCommand(EndCmd{}), &out).ok());
  EXPECT_FALSE(DecodeCommand(EncodeCommand(EndCmd{{""}}), &out).ok());
  EXPECT_FALSE(DecodeCommand(EncodeCommand(RegisterParticipantCmd{"", "a:1", ""}), &out).ok());
  // A huge count with no bytes behind it.
  std::string huge = "\x02\x01g\xff\xff\xff\xff\x0f";
  EXPECT_FALSE(DecodeCommand(huge, &out).ok());
}

}  // namespace
}  // namespace verdict::coordinator::txn
