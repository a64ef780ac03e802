// Agent over a resource manager whose prepare is durable by itself (DurablePrepare(), like
// PostgreSQL): a 2PC branch's PREPARED record is appended lazily and, when a crash loses
// it, the branch is adopted from the database as PREPARED — never "no record", never
// tombstoned by a peer; 3PC PREPARED and every later 3PC record stay synced; a failed
// PREPARE that may have left the branch prepared journals its NO before replying, and the
// leftover is rolled back. A "crash" destroys the agent and journal without a flush.
#include <gtest/gtest.h>

#include "common/env.h"
#include "participant/agent.h"
#include "tests/unit/participant/agent_fakes.h"
#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant {
namespace {

using testing::FakeClock;
using testing::FakeCoordinator;
using testing::FakePeers;
using S = BranchState;

class DurablePrepareTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Crash(); }

  void Start() {
    ASSERT_TRUE(OpenFileBranchJournal(PosixEnv(), dir_.path(), true, &journal_).ok());
    AgentOptions o;
    o.name = "p1";
    o.address = "p1:1";
    o.inquiry_after_ms = 1000;
    o.orphan_safety_ms = 1000;
    agent_ = std::make_unique<Agent>(o, rm_, *journal_, coord_, peers_, &clock_);
    Status s = agent_->Recover();
    ASSERT_TRUE(s.ok()) << s.ToString();
    peers_.Add("p1:1", agent_.get());
  }
  // kill -9: whatever the journal has not written is lost; the database keeps its state.
  void Crash() {
    peers_.Add("p1:1", nullptr);
    agent_.reset();
    journal_.reset();
  }
  void Restart() {
    Crash();
    Start();
  }
  uint64_t JournalBytes() {
    std::string data;
    if (!PosixEnv()->FileExists(dir_.File("branches.journal"))) return 0;
    EXPECT_TRUE(PosixEnv()->ReadFile(dir_.File("branches.journal"), &data).ok());
    return data.size();
  }
  Vote PrepareNew(const BranchKey& k, Protocol p = Protocol::k2PC) {
    OpenArgs a;
    a.key = k;
    a.protocol = p;
    EXPECT_EQ(agent_->Open(a).code, ReplyCode::kOk);
    return agent_->Prepare(k, {{"p1", "p1:1", k.branch}, {"p2", "p2:1", "b"}}).vote;
  }

  testing::TempDir dir_;
  testing::FakeResourceManager rm_{/*durable_prepare=*/true};
  FakeCoordinator coord_;
  FakePeers peers_;
  FakeClock clock_;
  std::unique_ptr<BranchJournal> journal_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(DurablePrepareTest, Prepare2PC_RecordIsNotWaitedFor) {
  BranchKey k{"g1", "b"};
  ASSERT_EQ(PrepareNew(k), Vote::kYes);
  EXPECT_EQ(JournalBytes(), 0u);  // acknowledged before the record reached the file
  EXPECT_TRUE(rm_.HoldsPrepared(k));
  agent_->Tick();  // the timer writes and syncs it
  EXPECT_GT(JournalBytes(), 0u);
  Restart();
  BranchStatus st = agent_->GetStatus(k);
  EXPECT_EQ(st.state, S::kPrepared);
  EXPECT_EQ(st.participants.size(), 2u);  // from the journal this time
}

// kill -9 right after the YES, the lazy record lost: the branch comes back PREPARED from
// the database; a peer's AbortIfUnvoted is refused; COMMIT works exactly once.
TEST_F(DurablePrepareTest, LostPreparedRecord_BranchIsAdoptedFromTheDatabase) {
  BranchKey k{"g1", "b"};
  ASSERT_EQ(PrepareNew(k), Vote::kYes);
  Restart();
  BranchStatus st = agent_->GetStatus(k);
  ASSERT_TRUE(st.lookup.ok());
  EXPECT_EQ(st.state, S::kPrepared);
  EXPECT_EQ(st.protocol, Protocol::k2PC);
  EXPECT_TRUE(st.participants.empty());  // lost with the record
  EXPECT_EQ(agent_->ListInDoubt().size(), 1u);
  Reply r = agent_->AbortIfUnvoted(k);
  EXPECT_EQ(r.code, ReplyCode::kWrongState) << r.message;
  EXPECT_EQ(r.state, S::kPrepared);
  EXPECT_TRUE(rm_.HoldsPrepared(k));
  EXPECT_EQ(agent_->Prepare(k, {}).vote, Vote::kYes);  // a retried PREPARE: the same YES
  EXPECT_EQ(agent_->Commit(k, false).code, ReplyCode::kOk);
  EXPECT_TRUE(rm_.HasCommitEvidence(k));
  EXPECT_FALSE(rm_.HoldsPrepared(k));
  Restart();  // the lazy COMMITTED record is lost too: the commit marker answers
  EXPECT_EQ(agent_->GetStatus(k).state, S::kCommitted);
  EXPECT_EQ(agent_->Commit(k, false).code, ReplyCode::kOk);
  EXPECT_EQ(agent_->AbortIfUnvoted(k).code, ReplyCode::kWrongState);
}

TEST_F(DurablePrepareTest, LostPreparedRecord_AbortDecisionRollsBackAndIsDurable) {
  BranchKey k{"g1", "b"};
  ASSERT_EQ(PrepareNew(k), Vote::kYes);
  Restart();
  EXPECT_EQ(agent_->Abort(k).code, ReplyCode::kOk);
  EXPECT_FALSE(rm_.HoldsPrepared(k));
  Restart();
  EXPECT_EQ(agent_->GetStatus(k).state, S::kAborted);  // the ABORTED record was synced
}

// A branch the agent has no record of while it runs (an earlier incarnation's, found
// before ReconcileOrphans adopted it): no-record calls ask the database first.
TEST_F(DurablePrepareTest, NoRecordButPreparedInTheDatabase_NeverTombstoned) {
  BranchKey k{"g9", "b"};
  rm_.AddPrepared(k);
  EXPECT_EQ(agent_->GetStatus(k).state, S::kPrepared);
  BranchKey k2{"g10", "b"};
  rm_.AddPrepared(k2);
  Reply r = agent_->AbortIfUnvoted(k2);
  EXPECT_EQ(r.code, ReplyCode::kWrongState);
  EXPECT_EQ(r.state, S::kPrepared);
  EXPECT_TRUE(rm_.HoldsPrepared(k2));
  BranchKey k3{"g11", "b"};
  rm_.AddPrepared(k3);
  EXPECT_EQ(agent_->Commit(k3, false).code, ReplyCode::kOk);  // the decision applies
  EXPECT_TRUE(rm_.HasCommitEvidence(k3));
  // The database cannot be asked: UNAVAILABLE, never a tombstone.
  BranchKey k4{"g12", "b"};
  rm_.AddPrepared(k4);
  rm_.SetEvidenceStatus(Status::Unavailable("database down"));
  EXPECT_EQ(agent_->AbortIfUnvoted(k4).code, ReplyCode::kUnavailable);
  rm_.SetEvidenceStatus(Status::OK());
  EXPECT_EQ(agent_->AbortIfUnvoted(k4).code, ReplyCode::kWrongState);
  // Truly unknown: presumed abort, as before.
  EXPECT_EQ(agent_->AbortIfUnvoted({"g13", "b"}).code, ReplyCode::kOk);
}

TEST_F(DurablePrepareTest, Orphans_AdoptedThenResolvedByInquiry) {
  BranchKey k{"g5", "b"};
  rm_.AddPrepared(k);
  clock_.Advance(2000);
  agent_->Tick();  // reconciliation adopts it
  ASSERT_EQ(agent_->ListInDoubt().size(), 1u);
  coord_.Set("g5", InquiryResult::kCommitted);
  clock_.Advance(2000);
  agent_->Tick();  // inquiry
  EXPECT_EQ(agent_->GetStatus(k).state, S::kCommitted);
  EXPECT_TRUE(rm_.HasCommitEvidence(k));
}

TEST_F(DurablePrepareTest, Orphans_CoordinatorSilent_StaysPreparedForever) {
  BranchKey k{"g5", "b"};
  ASSERT_EQ(PrepareNew(k), Vote::kYes);
  Restart();
  coord_.SetReachable(false);
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(60000);
    agent_->Tick();
  }
  EXPECT_EQ(agent_->GetStatus(k).state, S::kPrepared);  // never aborts on its own
  EXPECT_TRUE(rm_.HoldsPrepared(k));
}

// 3PC needs its protocol and participant list: PREPARED, PRECOMMITTED and FENCED are
// synced before the reply.
TEST_F(DurablePrepareTest, ThreePhase_RecordsAreSynced) {
  BranchKey k{"g1", "b"};
  ASSERT_EQ(PrepareNew(k, Protocol::k3PC), Vote::kYes);
  uint64_t after_prepare = JournalBytes();
  EXPECT_GT(after_prepare, 0u);
  BranchKey k2{"g2", "b"};
  ASSERT_EQ(PrepareNew(k2, Protocol::k3PC), Vote::kYes);
  ASSERT_EQ(agent_->Precommit(k).code, ReplyCode::kOk);
  ASSERT_EQ(agent_->Fence(k2, "p2").code, ReplyCode::kOk);
  Restart();
  BranchStatus st = agent_->GetStatus(k);
  EXPECT_EQ(st.state, S::kPrecommitted);
  EXPECT_EQ(st.protocol, Protocol::k3PC);
  EXPECT_EQ(st.participants.size(), 2u);
  EXPECT_EQ(agent_->GetStatus(k2).state, S::kFenced);
  EXPECT_EQ(agent_->Precommit(k2).code, ReplyCode::kFenced);
}

// The connection died during PREPARE and the undo failed: the database may hold it
// prepared. The NO is journaled (synced) before the reply; recovery then rolls the
// leftover back instead of adopting it, and it never votes YES.
TEST_F(DurablePrepareTest, PrepareMayHaveLeftItPrepared_NoIsDurable) {
  BranchKey k{"g1", "b"};
  rm_.SetPrepareFailure(Status::Unavailable("connection lost"), /*maybe_prepared=*/true);
  rm_.SetRollbackPreparedStatus(Status::Unavailable("database down"));
  ASSERT_EQ(PrepareNew(k), Vote::kNo);
  EXPECT_GT(JournalBytes(), 0u);
  EXPECT_TRUE(rm_.HoldsPrepared(k));
  Restart();  // rollback still failing: ABORTED from the journal, leftover kept
  EXPECT_EQ(agent_->GetStatus(k).state, S::kAborted);
  EXPECT_NE(agent_->Prepare(k, {}).vote, Vote::kYes);
  EXPECT_EQ(agent_->AbortIfUnvoted(k).code, ReplyCode::kOk);
  rm_.SetRollbackPreparedStatus(Status::OK());
  clock_.Advance(2000);
  agent_->Tick();  // ReconcileOrphans finishes the rollback
  EXPECT_FALSE(rm_.HoldsPrepared(k));
  EXPECT_EQ(agent_->GetStatus(k).state, S::kAborted);
}

// Without a durable-prepare RM (SQLite), PREPARED is synced before the YES.
TEST(DurablePrepareOffTest, PreparedRecordIsSynced) {
  testing::TempDir dir;
  testing::FakeResourceManager rm;
  FakeCoordinator coord;
  FakePeers peers;
  FakeClock clock;
  std::unique_ptr<BranchJournal> journal;
  ASSERT_TRUE(OpenFileBranchJournal(PosixEnv(), dir.path(), true, &journal).ok());
  AgentOptions o;
  o.name = "p1";
  o.address = "p1:1";
  auto agent = std::make_unique<Agent>(o, rm, *journal, coord, peers, &clock);
  ASSERT_TRUE(agent->Recover().ok());
  OpenArgs a;
  a.key = {"g1", "b"};
  ASSERT_EQ(agent->Open(a).code, ReplyCode::kOk);
  ASSERT_EQ(agent->Prepare(a.key, {}).vote, Vote::kYes);
  agent.reset();
  journal.reset();
  ASSERT_TRUE(OpenFileBranchJournal(PosixEnv(), dir.path(), true, &journal).ok());
  agent = std::make_unique<Agent>(o, rm, *journal, coord, peers, &clock);
  ASSERT_TRUE(agent->Recover().ok());
  EXPECT_EQ(agent->GetStatus(a.key).state, S::kPrepared);
}

}  // namespace
}  // namespace verdict::participant
