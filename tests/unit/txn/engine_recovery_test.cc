// ProtocolEngine: leader change at each protocol step, inquiries, stale-term gtids,
// resolve and the registry.
#include <gtest/gtest.h>

#include "engine_fixture.h"

namespace verdict::coordinator::txn {
namespace {

using MK = MessageKind;
using PC = ParticipantCode;
using BS = BranchStatus;

class EngineRecoveryTest : public EngineTest {
 protected:
  void SetUp() override { Lead(2); }

  // 2PC on a, b with both YES; the DECIDE COMMIT proposal is pending.
  std::string VotedYes() {
    std::string g = BeginWith({"a", "b"});
    tok_ = Commit(g);
    VoteAs(g, "a", Vote::kYes);
    VoteAs(g, "b", Vote::kYes);
    EXPECT_EQ(PendingCount(), 1u);
    return g;
  }
  RequestToken tok_ = 0;
};

TEST_F(EngineRecoveryTest, LeaderChange_BeforeVotes_NewLeaderPresumesAbortThroughTheLog) {
  std::string g = BeginWith({"a", "b"});
  tok_ = Commit(g);
  NewLeader(2, 3);
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kUnknown);
  // The new leader never collects the old gtid's votes.
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_TRUE(engine_->RegisterBranch(g, "c", "x", false).IsNotFound());
  // An inquiry: ABORT is proposed, and answered only once applied.
  RequestToken q = Inquire(g, "a");
  EXPECT_EQ(InquiryAnswer(q), nullptr);
  ASSERT_EQ(PendingCount(), 1u);
  auto d = std::get<DecideCmd>(PendingCommands()[0]);
  EXPECT_EQ(d.outcome, Outcome::kAbort);
  EXPECT_EQ(d.basis, DecideBasis::kPresumedAbort);
  CommitLog();
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kAborted);
  EXPECT_EQ(CountSent(MK::kAbort, "a"), 1u);  // phase two reaches the inquirer too
  // The client retrying on the new leader hears the same.
  EXPECT_EQ(ClientAnswer(Commit(g))->outcome, ClientOutcome::kAborted);
}

TEST_F(EngineRecoveryTest, LeaderChange_AfterVotes_DecisionLost_PresumedAbort) {
  std::string g = VotedYes();
  DropLog();  // the COMMIT entry never made it to a majority
  NewLeader(2, 3);
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kUnknown);
  RequestToken q = Inquire(g, "b");
  CommitLog();
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kAborted);
  EXPECT_EQ(*LogDecision(g), Outcome::kAbort);
}

TEST_F(EngineRecoveryTest, LeaderChange_AfterVotes_OldCommitEntrySurvives_CommitWins) {
  std::string g = VotedYes();
  NewLeader(2, 3);                   // the old leader's DECIDE COMMIT is in the new leader's log
  RequestToken q = Inquire(g, "a");  // not applied yet: unknown -> presumed ABORT proposed
  ASSERT_EQ(PendingCount(), 2u);
  CommitLog();  // COMMIT is applied first: it wins, the ABORT is a no-op
  EXPECT_EQ(*LogDecision(g), Outcome::kCommit);
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kCommitted);
  // The new leader adopted it: phase two to both, then END.
  EXPECT_GE(CountSent(MK::kCommit, "a"), 1u);
  EXPECT_GE(CountSent(MK::kCommit, "b"), 1u);
  EXPECT_EQ(CountSent(MK::kAbort), 0u);
  Ack(MK::kCommit, g, "a");
  Ack(MK::kCommit, g, "b");
  Advance(10);
  CommitLog();
  EXPECT_EQ(table_->Find(g).state, GtidState::kEndedCommit);
}

TEST_F(EngineRecoveryTest, LeaderChange_AfterDecisionBeforePhaseTwo_NewLeaderResumes) {
  std::string g = VotedYes();
  CommitLog();
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kCommitted);
  ClearSent();
  NewLeader(2, 3);
  EXPECT_EQ(CountSent(MK::kCommit, "a"), 1u);
  EXPECT_EQ(CountSent(MK::kCommit, "b"), 1u);
  EXPECT_EQ(InquiryAnswer(Inquire(g, "a"))->status, InquiryStatus::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
  Ack(MK::kCommit, g, "a");
  Ack(MK::kCommit, g, "b");
  Advance(10);
  CommitLog();
  EXPECT_TRUE(engine_->List().empty());
}

TEST_F(EngineRecoveryTest, LeaderChange_DuringPhaseTwo_ResendsToEveryoneUntilEnd) {
  std::string g = VotedYes();
  CommitLog();
  Ack(MK::kCommit, g, "a");
  ClearSent();
  NewLeader(3, 4);
  EXPECT_EQ(CountSent(MK::kCommit), 2u);  // volatile acks are gone: both again (idempotent)
  Ack(MK::kCommit, g, "a");
  Advance(100);
  EXPECT_GT(CountSent(MK::kCommit, "b"), 1u);
  Ack(MK::kCommit, g, "b");
  Advance(10);
  CommitLog();
  EXPECT_EQ(table_->Find(g).state, GtidState::kEndedCommit);
}

TEST_F(EngineRecoveryTest,
       LeaderChange_3pcAfterPrecommitApplied_ResendsPrecommit_NeverPresumesAbort) {
  std::string g = BeginWith({"a", "b"}, Protocol::k3PC);
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  CommitLog();  // intent applied
  ClearSent();
  NewLeader(2, 3);
  EXPECT_EQ(CountSent(MK::kPrecommit), 2u);
  RequestToken q = Inquire(g, "a");
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kPrecommitIntent);
  RequestToken c = Commit(g);     // a client retrying waits for the real outcome
  EXPECT_EQ(PendingCount(), 0u);  // no presumed abort
  Ack(MK::kPrecommit, g, "b", PC::kOk, BS::kPrecommitted);
  CommitLog();
  EXPECT_EQ(*LogDecision(g), Outcome::kCommit);
  EXPECT_EQ(ClientAnswer(c)->outcome, ClientOutcome::kCommitted);
}

TEST_F(EngineRecoveryTest, LeaderChange_3pcIntentNotYetApplied_PresumedAbortLosesToIntent) {
  std::string g = BeginWith({"a", "b"}, Protocol::k3PC);
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  NewLeader(2, 3);  // the PRECOMMIT entry is in the log, not applied yet
  RequestToken q = Inquire(g, "a");
  ASSERT_EQ(PendingCount(), 2u);  // PRECOMMIT, then our presumed ABORT
  CommitLog();
  EXPECT_EQ(table_->Find(g).state, GtidState::kIntent);  // the ABORT was refused
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kPrecommitIntent);
  EXPECT_GE(CountSent(MK::kPrecommit), 2u);
  // Adopted intent: after a while the leader fences, and aborts only with all fenced.
  Advance(2'000);
  EXPECT_EQ(CountSent(MK::kFence), 2u);
  Ack(MK::kFence, g, "a", PC::kOk, BS::kFenced);
  Ack(MK::kFence, g, "b", PC::kOk, BS::kFenced);
  CommitLog();
  EXPECT_EQ(*LogDecision(g), Outcome::kAbort);
}

TEST_F(EngineRecoveryTest, StaleTermGtid_IsNeverCommitted) {
  std::string g = BeginWith({"a", "b"});  // term 2
  Follow(3);
  Lead(5);  // the same node leads again, later
  EXPECT_EQ(Begin(), "5.1.1");
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  EXPECT_TRUE(engine_->RegisterBranch(g, "a", "b-a", false).IsNotFound());
  // The client hears UNKNOWN and nothing is logged: a one-phase or empty commit of the
  // earlier leadership would have left no entry, and a logged ABORT could contradict it.
  RequestToken c = Commit(g);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(ClientAnswer(c)->outcome, ClientOutcome::kUnknown);
  RequestToken a = Abort(g);
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(ClientAnswer(a)->outcome, ClientOutcome::kUnknown);
  // A prepared branch asking is what settles it: ABORT through the log, never COMMIT.
  RequestToken q = Inquire(g, "a");
  ASSERT_EQ(PendingCount(), 1u);
  EXPECT_EQ(std::get<DecideCmd>(PendingCommands()[0]).outcome, Outcome::kAbort);
  CommitLog();
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kAborted);
  EXPECT_EQ(ClientAnswer(Commit(g))->outcome, ClientOutcome::kAborted);
}

TEST_F(EngineRecoveryTest, OnePhaseCommit_OfAnEarlierLeadership_IsNeverReportedAborted) {
  std::string g = BeginWith({"a"});
  RequestToken c = Commit(g);
  EXPECT_EQ(CountSent(MK::kCommitOnePhase), 1u);  // no log entry for one-phase
  Follow(3);
  EXPECT_EQ(ClientAnswer(c)->outcome, ClientOutcome::kUnknown);
  Lead(4);
  // The branch committed on its own; the client retries at the new leader.
  RequestToken again = Commit(g);
  EXPECT_EQ(ClientAnswer(again)->outcome, ClientOutcome::kUnknown);
  EXPECT_EQ(PendingCount(), 0u);  // no ABORT recorded against the committed branch
  EXPECT_EQ(table_->Find(g).state, GtidState::kUnknown);
}

TEST_F(EngineRecoveryTest, Inquiry_AppliedCommitAndAbort_AnsweredFromTheTable) {
  ApplyForeign(DecideCmd{"1.1.1", Outcome::kCommit, DecideBasis::kVotes, {}, {}});
  ApplyForeign(DecideCmd{"1.1.2", Outcome::kAbort, DecideBasis::kPresumedAbort, {}, {}});
  ClearSent();
  size_t before = PendingCount();
  EXPECT_EQ(InquiryAnswer(Inquire("1.1.1", "a"))->status, InquiryStatus::kCommitted);
  EXPECT_EQ(InquiryAnswer(Inquire("1.1.2", "a"))->status, InquiryStatus::kAborted);
  EXPECT_EQ(PendingCount(), before);
}

TEST_F(EngineRecoveryTest, Inquiry_Unknown_AbortProposedFirst_AnsweredOnlyAfterApplied) {
  RequestToken q1 = Inquire("1.7.3", "a");
  RequestToken q2 = Inquire("1.7.3", "b");
  EXPECT_EQ(InquiryAnswer(q1), nullptr);
  EXPECT_EQ(InquiryAnswer(q2), nullptr);
  ASSERT_EQ(PendingCount(), 1u);  // one proposal for both
  Advance(600);  // not applied in time: re-proposed (harmless: first decision wins)
  ASSERT_EQ(PendingCount(), 2u);
  CommitFirst(1);
  EXPECT_EQ(InquiryAnswer(q1)->status, InquiryStatus::kAborted);
  EXPECT_EQ(InquiryAnswer(q2)->status, InquiryStatus::kAborted);
  CommitLog();
}

TEST_F(EngineRecoveryTest, Inquiry_EndedCommit_IsCommittedNotUnknown) {
  std::string g = VotedYes();
  CommitLog();
  Ack(MK::kCommit, g, "a");
  Ack(MK::kCommit, g, "b");
  Advance(10);
  CommitLog();
  ASSERT_TRUE(table_->records().empty());
  NewLeader(2, 3);
  RequestToken q = Inquire(g, "a");  // a late inquiry
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kCommitted);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(EngineRecoveryTest, Inquiry_UnloggedAbort_IsProposedBeforeAnswering) {
  std::string g = BeginWith({"a", "b"});
  RequestToken c = Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kNo);
  EXPECT_EQ(ClientAnswer(c)->outcome, ClientOutcome::kAborted);  // client: normal path
  RequestToken q = Inquire(g, "a");                              // agent: through the log
  EXPECT_EQ(InquiryAnswer(q), nullptr);
  CommitLog();
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kAborted);
  EXPECT_EQ(*LogDecision(g), Outcome::kAbort);
}

TEST_F(EngineRecoveryTest, Inquiry_DuringVoting_InProgress) {
  std::string g = BeginWith({"a", "b"});
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  EXPECT_EQ(InquiryAnswer(Inquire(g, "a"))->status, InquiryStatus::kInProgress);
  EXPECT_EQ(PendingCount(), 0u);
}

TEST(EngineMemoryTest, Inquiry_BeyondTableMemory_IsUnknownAndRaised) {
  TxnTable table(TxnTable::Options{1});
  EngineConfig c;
  c.node_id = 1;
  ProtocolEngine engine(c, table);
  table.ApplyCommand(DecideCmd{"1.1.1", Outcome::kCommit, DecideBasis::kVotes, {}, {}}, 2, 1);
  table.ApplyCommand(DecideCmd{"1.1.3", Outcome::kCommit, DecideBasis::kVotes, {}, {}}, 3, 1);
  table.ApplyCommand(EndCmd{{"1.1.1", "1.1.3"}}, 4, 1);
  engine.OnLeadershipChanged(true, 2);
  // 1.1.1 committed and its tombstone was dropped: it must not be presumed aborted.
  engine.Inquire(7, "1.1.1", BranchRef{"a", "x"});
  EngineOutput out = engine.TakeOutput();
  ASSERT_EQ(out.inquiry_replies.size(), 1u);
  EXPECT_EQ(out.inquiry_replies[0].status, InquiryStatus::kUnknown);
  EXPECT_TRUE(out.proposals.empty());
  ASSERT_EQ(out.hazards.size(), 1u);
  EXPECT_EQ(out.hazards[0].kind, HazardKind::kForgottenGtid);
}

TEST_F(EngineRecoveryTest, LeadershipLost_WaitersHearUnknown_InquirersNotLeader) {
  std::string g = VotedYes();
  RequestToken q = Inquire("1.1.1", "a");
  Follow(3);
  EXPECT_EQ(ClientAnswer(tok_)->outcome, ClientOutcome::kUnknown);
  EXPECT_EQ(InquiryAnswer(q)->status, InquiryStatus::kNotLeader);
  EXPECT_TRUE(engine_->List().empty());
  (void)g;
}

TEST_F(EngineRecoveryTest, Resolve_HeuristicDecisionIsProposedAndKeptForever) {
  engine_->Resolve(11, "1.5.5", Outcome::kCommit, HeuristicInfo{"alice", 123, "agent restored"});
  Drain();
  ASSERT_EQ(PendingCount(), 1u);
  CommitLog();
  ASSERT_EQ(admin_.size(), 1u);
  EXPECT_TRUE(admin_[0].status.ok()) << admin_[0].status.ToString();
  auto l = table_->Find("1.5.5");
  ASSERT_EQ(l.state, GtidState::kDecided);
  EXPECT_EQ(l.record->heuristic->who, "alice");
  Advance(10);
  CommitLog();  // END marks it ended, keeps it
  EXPECT_EQ(table_->Find("1.5.5").state, GtidState::kDecided);
  // Resolving a decided gtid is refused.
  engine_->Resolve(12, "1.5.5", Outcome::kAbort, HeuristicInfo{"bob", 1, ""});
  Drain();
  EXPECT_EQ(admin_.back().status.code(), Status::Code::kFailedPrecondition);
}

TEST_F(EngineRecoveryTest, Resolve_AbortOfAPrecommitIntentIsRefused) {
  std::string g = BeginWith({"a", "b"}, Protocol::k3PC);
  Commit(g);
  VoteAs(g, "a", Vote::kYes);
  VoteAs(g, "b", Vote::kYes);
  CommitLog();
  engine_->Resolve(11, g, Outcome::kAbort, HeuristicInfo{"op", 1, ""});
  Drain();
  EXPECT_EQ(admin_.back().status.code(), Status::Code::kFailedPrecondition);
  engine_->Resolve(12, g, Outcome::kCommit, HeuristicInfo{"op", 1, "agent gone"});
  Drain();
  CommitLog();
  EXPECT_TRUE(admin_.back().status.ok());
  EXPECT_EQ(*LogDecision(g), Outcome::kCommit);
}

TEST_F(EngineRecoveryTest, RegisterParticipant_AnsweredOnceApplied) {
  engine_->RegisterParticipant(21, RegisterParticipantCmd{"e", "e:9", "postgres"});
  Drain();
  EXPECT_TRUE(admin_.empty());
  CommitLog();
  ASSERT_EQ(admin_.size(), 1u);
  EXPECT_TRUE(admin_[0].status.ok());
  EXPECT_EQ(table_->FindParticipant("e")->address, "e:9");
}

// Found by verdict-sim (seed 9 of --workload txn): a leader whose Propose is refused while
// it transfers leadership steps its engine down (engine.h's driver contract); when the
// transfer times out it leads again in the SAME term. The engine used to restart its gtid
// sequence at 1 then, handing out a gtid that an earlier transaction of that term had.
TEST_F(EngineRecoveryTest, LeadershipRegainedInSameTerm_GtidsStayUnique) {
  std::string first = Begin();
  std::string second = Begin();
  Follow(2);  // Propose refused: NotLeader
  Lead(2);    // the transfer timed out: still the leader of term 2
  std::string third = Begin();
  EXPECT_NE(third, first);
  EXPECT_NE(third, second);
  Gtid id;
  ASSERT_TRUE(ParseGtid(third, &id));
  EXPECT_EQ(id.seq, 3u);
  // A new term starts a new sequence.
  Follow(3);
  Lead(4);
  ASSERT_TRUE(ParseGtid(Begin(), &id));
  EXPECT_EQ(id.term, 4u);
  EXPECT_EQ(id.seq, 1u);
}

}  // namespace
}  // namespace verdict::coordinator::txn
