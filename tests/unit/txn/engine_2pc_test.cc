// ProtocolEngine: 2PC with presumed abort, one-phase, read-only, timeouts, retries, END,
// duplicate and late messages.
#include <gtest/gtest.h>

#include "engine_fixture.h"

namespace verdict::coordinator::txn {
namespace {

using MK = MessageKind;
using PC = ParticipantCode;
using BS = BranchStatus;

class Engine2pcTest : public EngineTest {
 protected:
  void SetUp() override { Lead(2); }
};

TEST_F(Engine2pcTest, Begin_GtidCarriesTermAndNode) {
  std::string g1 = Begin(), g2 = Begin();
  EXPECT_EQ(g1, "2.1.1");
  EXPECT_EQ(g2, "2.1.2");
}

TEST_F(Engine2pcTest, Commit_AllYes_AnsweredOnlyOnceApplied_ThenPhaseTwoAndEnd) {
  std::string g = BeginWith({"a", "b"});
  RequestToken tok = Commit(g);
  // Parallel PREPARE, each carrying the full participant list with addresses.
  ASSERT_EQ(CountSent(MK::kPrepare), 2u);
  auto prep = Sent(MK::kPrepare, "a")[0];
  ASSERT_EQ(prep.participants.size(), 2u);
  EXPECT_EQ(prep.participants[1], (PeerBranch{"b", "b:1", "b-b"}));
  VoteAs(g, "a", Vote::kYes);
  EXPECT_EQ(PendingCount(), 0u);
  VoteAs(g, "b", Vote::kYes);
  // DECIDE COMMIT proposed; nobody hears of it before it is applied.
  ASSERT_EQ(PendingCount(), 1u);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.outcome, Outcome::kCommit);
  EXPECT_EQ(d.basis, DecideBasis::kVotes);
  EXPECT_EQ(ClientAnswer(tok), nullptr);
  EXPECT_EQ(CountSent(MK::kCommit), 0u);
  CommitLog();
  ASSERT_NE(ClientAnswer(tok), nullptr);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(CountSent(MK::kCommit), 2u);
  Ack(MK::kCommit, g, "a");
  Ack(MK::kCommit, g, "b");
  Advance(10);  // END is batched
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_TRUE(std::holds_alternative<EndCmd>(PendingCommands()[0]));
  CommitLog();
  EXPECT_FALSE(engine_->Describe(g).has_value());
  EXPECT_EQ(table_->Find(g).state, GtidState::kEndedCommit);
  // A repeated Commit after END still says COMMITTED, without a proposal.
  RequestToken again = Commit(g);
  EXPECT_EQ(ClientAnswer(again)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine2pcTest, Commit_OneNo_AbortsWithoutLogEntry) {
  std::string g = BeginWith({"a", "b", "c"});
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kNo);
  ASSERT_NE(ClientAnswer(tok), nullptr);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_NE(ClientAnswer(tok)->reason.find("voted NO"), std::string::npos);
  EXPECT_EQ(PendingCount(), 0u);  // presumed abort: no log entry
  // ABORT to the YES voter and the unvoted one, not to the NO voter.
  EXPECT_EQ(CountSent(MK::kAbort, "a"), 1u);
  EXPECT_EQ(CountSent(MK::kAbort, "c"), 1u);
  EXPECT_EQ(CountSent(MK::kAbort, "b"), 0u);
  // A late YES never revives it.
  VoteAs(g, "c", Vote::kYes);
  EXPECT_EQ(PendingCount(), 0u);
  Ack(MK::kAbort, g, "a", PC::kOk, BS::kAborted);
  Ack(MK::kAbort, g, "c", PC::kOk, BS::kAborted);
  EXPECT_FALSE(engine_->Describe(g).has_value());
  EXPECT_EQ(ClientAnswer(Commit(g))->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine2pcTest, Commit_VoteTimeout_Aborts_PrepareResentWithCappedBackoff) {
  std::string g = BeginWith({"a", "b"});
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  Advance(999);
  EXPECT_EQ(ClientAnswer(tok), nullptr);
  auto resends = Sent(MK::kPrepare, "b");
  ASSERT_GE(resends.size(), 5u);
  EXPECT_EQ(CountSent(MK::kPrepare, "a"), 1u);  // voted: not re-sent
  Advance(5);
  ASSERT_NE(ClientAnswer(tok), nullptr);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_NE(ClientAnswer(tok)->reason.find("vote timeout (b/b-b)"), std::string::npos);
  EXPECT_EQ(CountSent(MK::kAbort), 2u);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine2pcTest, Resends_UseCappedExponentialBackoff) {
  std::string g = BeginWith({"a", "b"});
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  CommitLog();
  std::vector<int64_t> at;
  for (int i = 0; i < 200; ++i) {
    size_t before = CountSent(MK::kCommit, "b");
    Advance(5);
    if (CountSent(MK::kCommit, "b") > before) at.push_back(now_);
  }
  ASSERT_GE(at.size(), 6u);
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < at.size(); ++i) gaps.push_back(at[i] - at[i - 1]);
  EXPECT_EQ(gaps[0], 20);  // 10 (first resend, counted from the send) then 20, 40, 80, 80
  EXPECT_EQ(gaps[1], 40);
  EXPECT_EQ(gaps[2], 80);
  EXPECT_EQ(gaps.back(), 80);  // capped
}

TEST_F(Engine2pcTest, Deadline_BeforeCommit_AbortsAndCleansBranches) {
  std::string g = BeginWith({"a", "b"}, Protocol::k2PC, /*deadline_ms=*/300);
  Advance(300);
  EXPECT_EQ(CountSent(MK::kAbort), 2u);
  RequestToken tok = Commit(g);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_NE(ClientAnswer(tok)->reason.find("deadline"), std::string::npos);
}

TEST_F(Engine2pcTest, Deadline_WhileVoting_Aborts) {
  std::string g = BeginWith({"a", "b"}, Protocol::k2PC, /*deadline_ms=*/200);
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  Advance(200);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_NE(ClientAnswer(tok)->reason.find("deadline"), std::string::npos);
}

TEST_F(Engine2pcTest, OnePhase_SingleBranch_NoPrepareNoDecisionEntry) {
  std::string g = BeginWith({"a"});
  RequestToken tok = Commit(g);
  EXPECT_EQ(CountSent(MK::kPrepare), 0u);
  ASSERT_EQ(CountSent(MK::kCommitOnePhase, "a"), 1u);
  Advance(10);  // unanswered: re-sent
  EXPECT_EQ(CountSent(MK::kCommitOnePhase, "a"), 2u);
  Ack(MK::kCommitOnePhase, g, "a");
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(table_->Find(g).state, GtidState::kUnknown);
  EXPECT_EQ(ClientAnswer(Commit(g))->outcome, ClientOutcome::kCommitted);  // remembered

  std::string g2 = BeginWith({"b"});
  RequestToken tok2 = Commit(g2);
  Reply(MK::kCommitOnePhase, g2, "b", PC::kSqlError, BS::kAborted);
  EXPECT_EQ(ClientAnswer(tok2)->outcome, ClientOutcome::kAborted);
}

TEST_F(Engine2pcTest, OnePhase_NoAnswerByDeadline_ClientHearsUnknown) {
  std::string g = BeginWith({"a"}, Protocol::k2PC, 100);
  RequestToken tok = Commit(g);
  Advance(100);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kUnknown);
}

TEST_F(Engine2pcTest, ReadOnly_LeavesPhaseTwo) {
  std::string g = BeginWith({"a", "b", "c"});
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kReadOnly);
  VoteAs(g, "b", Vote::kYes);
  VoteAs(g, "c", Vote::kYes);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.participants, (std::vector<BranchRef>{{"b", "b-b"}, {"c", "b-c"}}));
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(CountSent(MK::kCommit, "a"), 0u);
  EXPECT_EQ(CountSent(MK::kCommit), 2u);
}

TEST_F(Engine2pcTest, ReadOnly_AllBranches_CommitWithoutLog) {
  std::string g = BeginWith({"a", "b"});
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kReadOnly);
  VoteAs(g, "b", Vote::kReadOnly);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(CountSent(MK::kCommit), 0u);
}

TEST_F(Engine2pcTest, DuplicateAndLateMessages_ChangeNothing) {
  std::string g = BeginWith({"a", "b"});
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "a", Vote::kNo);  // a duplicate with another answer: the first vote stands
  VoteAs(g, "b", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  ASSERT_EQ(PendingCount(), 1u);
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  VoteAs(g, "a", Vote::kNo);                                        // after the decision
  Reply(MK::kPrepare, g, "zz", PC::kOk, BS::kPrepared, Vote::kNo);  // unknown branch
  Reply(MK::kCommit, "9.9.9", "a", PC::kOk, BS::kCommitted);        // unknown gtid
  Ack(MK::kAbort, g, "a", PC::kOk, BS::kAborted);                   // wrong kind
  Ack(MK::kCommit, g, "a");
  Ack(MK::kCommit, g, "a");  // twice
  EXPECT_EQ(PendingCount(), 0u);
  Ack(MK::kCommit, g, "b");
  Advance(10);
  ASSERT_EQ(PendingCount(), 1u);  // exactly one END
  CommitLog();
  Ack(MK::kCommit, g, "b");  // after END
  EXPECT_EQ(engine_->stats().hazards, 0u);
  EXPECT_GE(engine_->stats().stray_replies, 3u);
  EXPECT_EQ(*LogDecision(g), Outcome::kCommit);
}

TEST_F(Engine2pcTest, CommitAnsweredNotFound_IsAHeuristicHazard) {
  std::string g = BeginWith({"a", "b"});
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  CommitLog();
  Ack(MK::kCommit, g, "a", PC::kNotFound, BS::kNone);
  ASSERT_EQ(hazards_.size(), 1u);
  EXPECT_EQ(hazards_[0].kind, HazardKind::kCommitUnknownBranch);
  EXPECT_EQ(hazards_[0].gtid, g);
  EXPECT_EQ(hazards_[0].branch, (BranchRef{"a", "b-a"}));
  size_t before = CountSent(MK::kCommit, "a");
  Advance(200);
  EXPECT_EQ(CountSent(MK::kCommit, "a"), before);  // not retried forever
  Ack(MK::kCommit, g, "b");
  Advance(10);
  EXPECT_EQ(PendingCount(), 1u);  // END
}

TEST_F(Engine2pcTest, ClientAbort_BeforeCommit) {
  std::string g = BeginWith({"a", "b"});
  RequestToken tok = Abort(g);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(CountSent(MK::kAbort), 2u);
  EXPECT_TRUE(engine_->RegisterBranch(g, "c", "x", false).ok() == false);
}

TEST_F(Engine2pcTest, EmptyTransaction_CommitsTrivially) {
  std::string g = Begin();
  EXPECT_EQ(ClientAnswer(Commit(g))->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine2pcTest, RegisterBranch_Errors) {
  std::string g = Begin();
  EXPECT_TRUE(engine_->RegisterBranch(g, "nobody", "x", false).IsNotFound());
  EXPECT_TRUE(engine_->RegisterBranch("2.1.99", "a", "x", false).IsNotFound());
  EXPECT_TRUE(engine_->RegisterBranch(g, "a", "x", false).ok());
  EXPECT_TRUE(engine_->RegisterBranch(g, "a", "x", true).ok());  // idempotent
  EXPECT_TRUE(engine_->RegisterBranch(g, "b", "y", false).ok());
  Commit(g);
  EXPECT_EQ(engine_->RegisterBranch(g, "c", "z", false).code(), Status::Code::kFailedPrecondition);
}

TEST_F(Engine2pcTest, Follower_AnswersNotLeader) {
  Follow(3);
  std::string g;
  EXPECT_TRUE(engine_->Begin(Protocol::k2PC, 0, &g).IsNotLeader());
  EXPECT_EQ(ClientAnswer(Commit("2.1.1"))->outcome, ClientOutcome::kNotLeader);
  EXPECT_EQ(InquiryAnswer(Inquire("2.1.1", "a"))->status, InquiryStatus::kNotLeader);
}

TEST_F(Engine2pcTest, End_IsBatched) {
  std::vector<std::string> gs;
  for (int i = 0; i < 6; ++i) {
    std::string g = BeginWith({"a", "b"});
    Commit(g);
    VoteAs(g, "a", Vote::kYes);
    VoteAs(g, "b", Vote::kYes);
    gs.push_back(g);
  }
  CommitLog();
  for (const auto& g : gs) {
    Ack(MK::kCommit, g, "a");
    Ack(MK::kCommit, g, "b");
  }
  // end_batch_max is 4: one full batch at once, the rest after the delay.
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_EQ(std::get<EndCmd>(PendingCommands()[0]).gtids.size(), 4u);
  Advance(5);
  ASSERT_EQ(PendingCount(), 2u);
  EXPECT_EQ(std::get<EndCmd>(PendingCommands()[1]).gtids.size(), 2u);
  CommitLog();
  EXPECT_TRUE(engine_->List().empty());
  EXPECT_TRUE(table_->records().empty());
}

}  // namespace
}  // namespace verdict::coordinator::txn
