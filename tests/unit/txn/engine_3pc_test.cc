// ProtocolEngine: 3PC (DESIGN §4): logged intent before PRECOMMIT, commit on the first ack,
// abort after PRECOMMIT only with every branch fenced.
#include <gtest/gtest.h>

#include "engine_fixture.h"

namespace verdict::coordinator::txn {
namespace {

using MK = MessageKind;
using PC = ParticipantCode;
using BS = BranchStatus;

class Engine3pcTest : public EngineTest {
 protected:
  void SetUp() override { Lead(2); }

  // Begins a 3PC transaction on a, b, c, gets every YES and applies the intent.
  std::string Precommitted(int64_t deadline_ms = 10'000) {
    std::string g = BeginWith({"a", "b", "c"}, Protocol::k3PC, deadline_ms);
    tok_ = Commit(g);
    for (const char* p : {"a", "b", "c"}) VoteAs(g, p, Vote::kYes);
    EXPECT_EQ(CountSent(MK::kPrecommit), 0u);  // not before the intent is applied
    CommitLog();
    EXPECT_EQ(table_->Find(g).state, GtidState::kIntent);
    return g;
  }
  RequestToken tok_ = 0;
};

TEST_F(Engine3pcTest, HappyPath_IntentApplied_PrecommitSent_FirstAckCommits) {
  std::string g = BeginWith({"a", "b", "c"}, Protocol::k3PC);
  RequestToken tok = Commit(g);
  EXPECT_EQ(Sent(MK::kPrepare, "a")[0].protocol, Protocol::k3PC);
  for (const char* p : {"a", "b", "c"}) VoteAs(g, p, Vote::kYes);
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_TRUE(std::holds_alternative<PrecommitCmd>(PendingCommands()[0]));
  EXPECT_EQ(CountSent(MK::kPrecommit), 0u);
  EXPECT_EQ(InquiryAnswer(Inquire(g, "a"))->status, InquiryStatus::kInProgress);
  CommitLog();
  EXPECT_EQ(CountSent(MK::kPrecommit), 3u);
  EXPECT_EQ(ClientAnswer(tok), nullptr);
  EXPECT_EQ(InquiryAnswer(Inquire(g, "a"))->status, InquiryStatus::kPrecommitIntent);
  Ack(MK::kPrecommit, g, "b", PC::kOk, BS::kPrecommitted);
  ASSERT_EQ(PendingCount(), 1u);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.outcome, Outcome::kCommit);
  EXPECT_EQ(d.basis, DecideBasis::kPrecommitAck);
  Ack(MK::kPrecommit, g, "a", PC::kOk, BS::kPrecommitted);  // more acks: no second proposal
  EXPECT_EQ(PendingCount(), 1u);
  EXPECT_EQ(ClientAnswer(tok), nullptr);
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kCommitted);
  EXPECT_EQ(CountSent(MK::kCommit), 3u);
  for (const char* p : {"a", "b", "c"}) Ack(MK::kCommit, g, p);
  Advance(10);
  CommitLog();
  EXPECT_EQ(table_->Find(g).state, GtidState::kEndedCommit);
}

TEST_F(Engine3pcTest, Deadline_AfterPrecommit_FencesEveryone_AbortsOnlyWhenAllFenced) {
  std::string g = Precommitted(/*deadline_ms=*/500);
  Advance(500);
  EXPECT_EQ(CountSent(MK::kFence), 3u);
  Ack(MK::kFence, g, "a", PC::kOk, BS::kFenced);
  Ack(MK::kFence, g, "b", PC::kOk, BS::kFenced);
  EXPECT_EQ(PendingCount(), 0u);  // two of three is not enough
  Advance(100);
  EXPECT_GT(CountSent(MK::kFence, "c"), 1u);  // re-sent
  EXPECT_EQ(CountSent(MK::kFence, "a"), 1u);
  Ack(MK::kFence, g, "c", PC::kOk, BS::kFenced);
  ASSERT_EQ(PendingCount(), 1u);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.outcome, Outcome::kAbort);
  EXPECT_EQ(d.basis, DecideBasis::kFenced);
  EXPECT_EQ(ClientAnswer(tok_), nullptr);
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(CountSent(MK::kAbort), 3u);
}

TEST_F(Engine3pcTest, FencedReply_IsNotADecision_EngineFencesAndAPrecommittedBranchWins) {
  std::string g = Precommitted();
  Reply(MK::kPrecommit, g, "a", PC::kFenced, BS::kFenced);
  EXPECT_EQ(PendingCount(), 0u);         // no abort on one FENCED reply
  EXPECT_EQ(CountSent(MK::kFence), 3u);  // the engine joins the termination
  Ack(MK::kFence, g, "a", PC::kOk, BS::kFenced);
  Reply(MK::kFence, g, "b", PC::kPrecommitted, BS::kPrecommitted);  // b is precommitted
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_EQ(std::get<DecideCmd>(PendingCommands()[0]).outcome, Outcome::kCommit);
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kCommitted);
  // FENCED branches obey COMMIT.
  EXPECT_EQ(CountSent(MK::kCommit), 3u);
}

TEST_F(Engine3pcTest, LatePrecommitAck_WhileFencing_Commits) {
  std::string g = Precommitted(500);
  Advance(500);
  Ack(MK::kFence, g, "a", PC::kOk, BS::kFenced);
  Ack(MK::kPrecommit, g, "c", PC::kOk, BS::kPrecommitted);
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_EQ(std::get<DecideCmd>(PendingCommands()[0]).outcome, Outcome::kCommit);
}

TEST_F(Engine3pcTest, BranchAbortedByTermination_AfterPrecommit_LogsFencedAbort) {
  std::string g = Precommitted();
  Reply(MK::kPrecommit, g, "a", PC::kWrongState, BS::kAborted);
  ASSERT_EQ(PendingCount(), 1u);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.outcome, Outcome::kAbort);
  EXPECT_EQ(d.basis, DecideBasis::kFenced);
}

TEST_F(Engine3pcTest, ClientAbort_AfterPrecommit_FencesInsteadOfAborting) {
  std::string g = Precommitted();
  RequestToken t = Abort(g);
  EXPECT_EQ(ClientAnswer(t), nullptr);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(CountSent(MK::kFence), 3u);
  for (const char* p : {"a", "b", "c"}) Ack(MK::kFence, g, p, PC::kOk, BS::kFenced);
  CommitLog();
  EXPECT_EQ(ClientAnswer(t)->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kAborted);
}

TEST_F(Engine3pcTest, NoVote_Aborts_BeforeAnyIntent_Unlogged) {
  std::string g = BeginWith({"a", "b"}, Protocol::k3PC);
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kNo);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine3pcTest, ReadOnlyBranch_GetsNeitherPrecommitNorFence) {
  std::string g = BeginWith({"a", "b", "c"}, Protocol::k3PC, 500);
  Commit(g);
  VoteAs(g, "a", Vote::kReadOnly);
  VoteAs(g, "b", Vote::kYes);
  VoteAs(g, "c", Vote::kYes);
  EXPECT_EQ(std::get<PrecommitCmd>(PendingCommands()[0]).participants.size(), 2u);
  CommitLog();
  Advance(500);
  EXPECT_EQ(CountSent(MK::kPrecommit, "a"), 0u);
  EXPECT_EQ(CountSent(MK::kFence, "a"), 0u);
  // A read-only branch reports COMMITTED; that is no evidence for anything.
  Reply(MK::kFence, g, "a", PC::kWrongState, BS::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(Engine3pcTest, IntentRejected_WhenADecisionCameFirst_FollowsTheLog) {
  std::string g = BeginWith({"a", "b"}, Protocol::k3PC);
  RequestToken tok = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  // Another entry (e.g. an operator's resolve) decided ABORT before the intent applied.
  ApplyForeign(
      DecideCmd{g, Outcome::kAbort, DecideBasis::kHeuristic, {}, HeuristicInfo{"op", 1, "test"}});
  CommitLog();
  EXPECT_EQ(CountSent(MK::kPrecommit), 0u);
  EXPECT_EQ(ClientAnswer(tok)->outcome, ClientOutcome::kAborted);
  EXPECT_EQ(CountSent(MK::kAbort), 2u);
}

}  // namespace
}  // namespace verdict::coordinator::txn
