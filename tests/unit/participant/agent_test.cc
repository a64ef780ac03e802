// Agent: every call's happy path and out-of-order cases, timeouts, recovery from the
// journal, 3PC states, inquiry, cooperative termination between in-process agents, and
// registration — over the real SQLite RM and file journal, with a fake coordinator.
#include "participant/agent.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/env.h"
#include "participant/sqlite/sqlite_resource_manager.h"
#include "tests/unit/participant/agent_fakes.h"
#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant {
namespace {

using testing::FakeClock;
using testing::FakeCoordinator;
using testing::FakePeers;
using S = BranchState;

// One agent with its database and journal in a directory; can be "restarted".
class Node {
 public:
  Node(std::string name, std::string dir, FakeCoordinator& coord, FakePeers& peers,
       FakeClock& clock)
      : name_(std::move(name)), dir_(std::move(dir)), coord_(coord), peers_(peers), clock_(clock) {
    Start();
  }
  ~Node() { Stop(); }

  void Start() {
    sqlite::SqliteOptions so;
    so.path = dir_ + "/" + name_ + ".db";
    rm_ = sqlite::NewSqliteResourceManager(so);
    ASSERT_TRUE(rm_->Start().ok());
    ASSERT_TRUE(OpenFileBranchJournal(PosixEnv(), dir_ + "/" + name_, true, &journal_).ok());
    AgentOptions o;
    o.name = name_;
    o.address = Address();
    o.default_idle_timeout_ms = 5000;
    o.default_timeout_ms = 60000;
    o.default_lock_timeout_ms = 200;
    o.inquiry_after_ms = 1000;
    o.precommit_timeout_ms = 3000;
    agent_ = std::make_unique<Agent>(o, *rm_, *journal_, coord_, peers_, &clock_);
    Status s = agent_->Recover();
    ASSERT_TRUE(s.ok()) << s.ToString();
    peers_.Add(Address(), agent_.get());
  }
  void Stop() {  // a crash, as far as durable state goes: nothing is flushed on the way
    peers_.Add(Address(), nullptr);
    agent_.reset();
    if (rm_) rm_->Stop();
    rm_.reset();
    journal_.reset();
  }
  void Restart() {
    Stop();
    Start();
  }
  std::string Address() const { return name_ + ":1"; }
  Agent& agent() { return *agent_; }
  PeerRef Ref(const std::string& branch) const { return {name_, Address(), branch}; }

  // Creates the table on first use, with rows 1 and 2.
  void Setup() {
    BranchKey k{"setup-" + name_, "b"};
    Open(k);
    Exec(k, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    Exec(k, "INSERT INTO t VALUES (1, 0), (2, 0)");
    ASSERT_EQ(agent_->Commit(k, true).code, ReplyCode::kOk);
  }
  Reply Open(const BranchKey& k, Protocol p = Protocol::k2PC) {
    OpenArgs a;
    a.key = k;
    a.protocol = p;
    return agent_->Open(a);
  }
  ExecuteReply Exec(const BranchKey& k, const std::string& sql, std::vector<SqlValue> params = {},
                    int64_t seq = 0) {
    return agent_->Execute(k, sql, params, seq);
  }
  int64_t V(int id) {
    BranchKey k{"read" + std::to_string(reads_++), "r"};
    Open(k);
    ExecuteReply r = Exec(k, "SELECT v FROM t WHERE id = ?", {SqlValue::Integer(id)});
    agent_->Abort(k);
    return r.result.rows.empty() ? -1 : r.result.rows[0][0].integer;
  }

 private:
  std::string name_, dir_;
  FakeCoordinator& coord_;
  FakePeers& peers_;
  FakeClock& clock_;
  std::unique_ptr<ResourceManager> rm_;
  std::unique_ptr<BranchJournal> journal_;
  std::unique_ptr<Agent> agent_;
  int reads_ = 0;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<Node>("pa", dir_.path(), coord_, peers_, clock_);
    b_ = std::make_unique<Node>("pb", dir_.path(), coord_, peers_, clock_);
    a_->Setup();
    b_->Setup();
  }
  // Opens g on both agents (branch "b"), writes one row each, prepares both.
  void PrepareBoth(const std::string& g, Protocol p, int row = 1) {
    std::vector<PeerRef> parts = {a_->Ref("b"), b_->Ref("b")};
    for (Node* n : {a_.get(), b_.get()}) {
      ASSERT_EQ(n->Open({g, "b"}, p).code, ReplyCode::kOk);
      ASSERT_EQ(n->Exec({g, "b"}, "UPDATE t SET v = v + 1 WHERE id = ?", {SqlValue::Integer(row)})
                    .reply.code,
                ReplyCode::kOk);
      PrepareReply r = n->agent().Prepare({g, "b"}, parts);
      ASSERT_EQ(r.vote, Vote::kYes) << r.reply.message;
    }
  }
  S StateA(const std::string& g) { return a_->agent().GetStatus({g, "b"}).state; }
  S StateB(const std::string& g) { return b_->agent().GetStatus({g, "b"}).state; }
  void TickAll() {
    a_->agent().Tick();
    b_->agent().Tick();
  }

  testing::TempDir dir_;
  FakeClock clock_;
  FakeCoordinator coord_;
  FakePeers peers_;
  std::unique_ptr<Node> a_, b_;
};

TEST_F(AgentTest, TwoPhase_HappyPath) {
  BranchKey k{"g1", "b"};
  EXPECT_EQ(a_->Open(k).code, ReplyCode::kOk);
  EXPECT_EQ(a_->Open(k).code, ReplyCode::kOk);  // idempotent
  ExecuteReply e = a_->Exec(k, "UPDATE t SET v = ? WHERE id = 1", {SqlValue::Integer(5)});
  EXPECT_EQ(e.reply.code, ReplyCode::kOk);
  EXPECT_EQ(e.result.rows_affected, 1);
  PrepareReply p = a_->agent().Prepare(k, {a_->Ref("b")});
  EXPECT_EQ(p.vote, Vote::kYes);
  EXPECT_EQ(p.reply.state, S::kPrepared);
  EXPECT_EQ(a_->agent().Prepare(k, {a_->Ref("b")}).vote, Vote::kYes);  // repeated
  EXPECT_EQ(a_->agent().ListInDoubt().size(), 1u);
  EXPECT_EQ(a_->V(1), 0);
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kOk);  // repeated
  EXPECT_EQ(a_->V(1), 5);
  EXPECT_EQ(a_->agent().GetStatus(k).state, S::kCommitted);
  EXPECT_TRUE(a_->agent().ListInDoubt().empty());
}

TEST_F(AgentTest, OutOfOrderCallsChangeNothing) {
  BranchKey k{"g1", "b"};
  EXPECT_EQ(a_->Exec(k, "SELECT 1").reply.code, ReplyCode::kNotFound);
  EXPECT_EQ(a_->agent().Prepare(k, {}).reply.code, ReplyCode::kNotFound);
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kNotFound);  // hazard
  a_->Open(k);
  a_->Exec(k, "UPDATE t SET v = 9 WHERE id = 1");
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kWrongState);  // before prepare
  EXPECT_EQ(a_->agent().Precommit(k).code, ReplyCode::kWrongState);
  EXPECT_EQ(a_->agent().Fence(k, "x").code, ReplyCode::kWrongState);
  EXPECT_EQ(a_->agent().GetStatus(k).state, S::kActive);
  ASSERT_EQ(a_->agent().Prepare(k, {a_->Ref("b")}).vote, Vote::kYes);
  ExecuteReply e = a_->Exec(k, "UPDATE t SET v = 10 WHERE id = 1");  // after prepare
  EXPECT_EQ(e.reply.code, ReplyCode::kWrongState);
  EXPECT_EQ(e.reply.state, S::kPrepared);
  EXPECT_EQ(a_->Open(k).code, ReplyCode::kAlreadyExists);
  EXPECT_EQ(a_->agent().Precommit(k).code, ReplyCode::kWrongState);  // 2PC branch
  EXPECT_EQ(a_->agent().Abort(k).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Abort(k).code, ReplyCode::kOk);
  PrepareReply p = a_->agent().Prepare(k, {});  // after abort
  EXPECT_EQ(p.reply.code, ReplyCode::kWrongState);
  EXPECT_EQ(p.vote, Vote::kNo);
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kWrongState);
  EXPECT_EQ(a_->V(1), 0);
}

TEST_F(AgentTest, SqlErrorAbortsAndVotesNo) {
  BranchKey k{"g1", "b"};
  a_->Open(k);
  ExecuteReply e = a_->Exec(k, "INSERT INTO t VALUES (1, 1)");  // duplicate key
  EXPECT_EQ(e.reply.code, ReplyCode::kSqlError);
  EXPECT_EQ(e.reply.state, S::kAborted);
  PrepareReply p = a_->agent().Prepare(k, {a_->Ref("b")});
  EXPECT_EQ(p.vote, Vote::kNo);
  BranchKey k2{"g2", "b"};
  a_->Open(k2);
  EXPECT_EQ(a_->Exec(k2, "SELEKT").reply.code, ReplyCode::kSqlError);
  EXPECT_EQ(a_->agent().Prepare(k2, {}).vote, Vote::kNo);
}

TEST_F(AgentTest, LockTimeoutVotesNo) {
  PrepareBoth("g1", Protocol::k2PC);
  BranchKey k{"g2", "b"};
  a_->Open(k);
  ExecuteReply e = a_->Exec(k, "UPDATE t SET v = 100 WHERE id = 1");
  EXPECT_EQ(e.reply.code, ReplyCode::kLockTimeout);
  EXPECT_EQ(a_->agent().Prepare(k, {}).vote, Vote::kNo);
}

TEST_F(AgentTest, ReadOnlyVotesReadOnly) {
  BranchKey k{"g1", "b"};
  a_->Open(k);
  ExecuteReply e = a_->Exec(k, "SELECT id, v FROM t ORDER BY id");
  ASSERT_EQ(e.result.rows.size(), 2u);
  PrepareReply p = a_->agent().Prepare(k, {a_->Ref("b")});
  EXPECT_EQ(p.vote, Vote::kReadOnly);
  EXPECT_EQ(a_->agent().Prepare(k, {a_->Ref("b")}).vote, Vote::kReadOnly);
  EXPECT_TRUE(a_->agent().ListInDoubt().empty());
  // It left the transaction without learning the outcome: READ_ONLY, never COMMITTED.
  EXPECT_EQ(a_->agent().GetStatus(k).state, S::kReadOnly);
  // Durable: a restart does not turn it into "no record" (which a terminating peer would
  // tombstone and count as an abort).
  a_->Restart();
  EXPECT_EQ(a_->agent().GetStatus(k).state, S::kReadOnly);
  EXPECT_EQ(a_->agent().Prepare(k, {a_->Ref("b")}).vote, Vote::kReadOnly);
  EXPECT_EQ(a_->agent().AbortIfUnvoted(k).state, S::kReadOnly);
  // Either decision is accepted and changes nothing; PRECOMMIT is never accepted.
  EXPECT_EQ(a_->agent().Abort(k).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Commit(k, false).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Precommit(k).code, ReplyCode::kWrongState);
  EXPECT_EQ(a_->agent().GetStatus(k).state, S::kReadOnly);
}

// Bug 1 regression. Branch A votes READ_ONLY, B votes YES, C votes NO (SQL error) so the
// coordinator aborts; B never hears the ABORT and the coordinator group is unreachable.
// A must not count as evidence of a commit: B must never commit.
class ReadOnlyTerminationTest : public AgentTest, public ::testing::WithParamInterface<Protocol> {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    c_ = std::make_unique<Node>("pc", dir_.path(), coord_, peers_, clock_);
    c_->Setup();
  }
  void TearDown() override { c_.reset(); }
  std::vector<PeerRef> Parts() const { return {a_->Ref("b"), b_->Ref("b"), c_->Ref("b")}; }
  // A: READ_ONLY. B: YES. C: `c_votes_no` ? NO (aborted) : YES.
  void Vote3(const std::string& g, bool c_votes_no) {
    Protocol p = GetParam();
    BranchKey k{g, "b"};
    ASSERT_EQ(a_->Open(k, p).code, ReplyCode::kOk);
    ASSERT_EQ(a_->Exec(k, "SELECT v FROM t WHERE id = 1").reply.code, ReplyCode::kOk);
    ASSERT_EQ(a_->agent().Prepare(k, Parts()).vote, Vote::kReadOnly);
    ASSERT_EQ(b_->Open(k, p).code, ReplyCode::kOk);
    ASSERT_EQ(b_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1").reply.code, ReplyCode::kOk);
    ASSERT_EQ(b_->agent().Prepare(k, Parts()).vote, Vote::kYes);
    ASSERT_EQ(c_->Open(k, p).code, ReplyCode::kOk);
    if (c_votes_no) {
      ASSERT_EQ(c_->Exec(k, "INSERT INTO t VALUES (1, 1)").reply.code, ReplyCode::kSqlError);
      ASSERT_EQ(c_->agent().Prepare(k, Parts()).vote, Vote::kNo);
      // The coordinator aborts: C hears it, B's ABORT is lost.
      ASSERT_EQ(c_->agent().Abort(k).code, ReplyCode::kOk);
    } else {
      ASSERT_EQ(c_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1").reply.code, ReplyCode::kOk);
      ASSERT_EQ(c_->agent().Prepare(k, Parts()).vote, Vote::kYes);
    }
    coord_.SetReachable(false);
  }
  S StateC(const std::string& g) { return c_->agent().GetStatus({g, "b"}).state; }

  std::unique_ptr<Node> c_;
};

TEST_P(ReadOnlyTerminationTest, ReadOnlyPeerIsNoEvidenceOfCommit) {
  Vote3("g1", /*c_votes_no=*/true);
  EXPECT_EQ(StateA("g1"), S::kReadOnly);
  // C (the only proof of the abort) is unreachable: B must wait, not commit.
  peers_.SetDown(c_->Address(), true);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(10000);
    b_->agent().Tick();
    ASSERT_NE(StateB("g1"), S::kCommitted);
  }
  EXPECT_TRUE(BranchStateMachine::InDoubt(StateB("g1")));
  EXPECT_EQ(StateA("g1"), S::kReadOnly);
  // C reachable again: its ABORTED is the evidence; B aborts.
  peers_.SetDown(c_->Address(), false);
  clock_.Advance(60000);
  b_->agent().Tick();
  EXPECT_EQ(StateB("g1"), S::kAborted);
  EXPECT_EQ(StateA("g1"), S::kReadOnly);  // B's ABORT to A changes nothing
  EXPECT_EQ(StateC("g1"), S::kAborted);
  EXPECT_EQ(b_->V(1), 0);
}

// A's READ_ONLY vote is forgotten after --decided-retention-ms and A then answers "no
// record", as a branch that never voted would. B and C voted YES and the coordinator may
// have decided COMMIT: B must not tombstone A as unvoted and abort; it waits.
TEST_P(ReadOnlyTerminationTest, ForgottenReadOnlyPeerIsNotTakenForUnvoted) {
  Vote3("g1", /*c_votes_no=*/false);
  clock_.Advance(AgentOptions().decided_retention_ms + 1);
  a_->agent().Tick();  // A forgets its READ_ONLY vote
  EXPECT_EQ(StateA("g1"), S::kNone);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(10000);
    b_->agent().Tick();
    c_->agent().Tick();
  }
  EXPECT_TRUE(BranchStateMachine::InDoubt(StateB("g1")));
  EXPECT_TRUE(BranchStateMachine::InDoubt(StateC("g1")));
  EXPECT_EQ(StateA("g1"), S::kNone);  // no tombstone was forced on it
  // The coordinator group returns with COMMIT: everyone follows it.
  coord_.SetReachable(true);
  coord_.Set("g1", InquiryResult::kCommitted);
  clock_.Advance(60000);
  b_->agent().Tick();
  c_->agent().Tick();
  EXPECT_EQ(StateB("g1"), S::kCommitted);
  EXPECT_EQ(StateC("g1"), S::kCommitted);
}

TEST_P(ReadOnlyTerminationTest, ReadOnlyPeerIsNoEvidenceEvenAfterItsAgentRestarts) {
  Vote3("g1", /*c_votes_no=*/true);
  a_->Restart();  // A's READ_ONLY is durable: not "no record" (which would be aborted)
  peers_.SetDown(c_->Address(), true);
  clock_.Advance(10000);
  b_->agent().Tick();
  EXPECT_TRUE(BranchStateMachine::InDoubt(StateB("g1")));
  EXPECT_EQ(StateA("g1"), S::kReadOnly);
}

INSTANTIATE_TEST_SUITE_P(Protocols, ReadOnlyTerminationTest,
                         ::testing::Values(Protocol::k2PC, Protocol::k3PC),
                         [](const ::testing::TestParamInfo<Protocol>& i) {
                           return i.param == Protocol::k2PC ? "TwoPC" : "ThreePC";
                         });

// 3PC: once every YES voter is FENCED the READ_ONLY one may be ignored (it never accepts
// PRECOMMIT, so no COMMIT can follow); 2PC: all YES voters prepared, stay prepared.
TEST_F(AgentTest, Termination_ReadOnlyPeerIgnoredWhenEveryVoterIsFencedOrPrepared) {
  Node c("pc", dir_.path(), coord_, peers_, clock_);
  c.Setup();
  for (Protocol p : {Protocol::k2PC, Protocol::k3PC}) {
    const bool three = p == Protocol::k3PC;
    const std::string g = three ? "g3" : "g2";
    std::vector<PeerRef> parts = {a_->Ref("b"), b_->Ref("b"), c.Ref("b")};
    BranchKey k{g, "b"};
    a_->Open(k, p);
    ASSERT_EQ(a_->agent().Prepare(k, parts).vote, Vote::kReadOnly);
    for (Node* n : {b_.get(), &c}) {
      n->Open(k, p);
      ASSERT_EQ(
          n->Exec(k, "UPDATE t SET v = v + 1 WHERE id = ?", {SqlValue::Integer(three ? 2 : 1)})
              .reply.code,
          ReplyCode::kOk);
      ASSERT_EQ(n->agent().Prepare(k, parts).vote, Vote::kYes);
    }
    coord_.SetReachable(false);
    clock_.Advance(10000);
    b_->agent().Tick();
    if (!three) {
      EXPECT_EQ(StateB(g), S::kPrepared);
      EXPECT_EQ(c.agent().GetStatus(k).state, S::kPrepared);
    } else {
      EXPECT_EQ(StateB(g), S::kAborted);
      EXPECT_EQ(c.agent().GetStatus(k).state, S::kAborted);
      EXPECT_EQ(a_->agent().Precommit(k).code, ReplyCode::kWrongState);  // never counts
    }
    EXPECT_EQ(StateA(g), S::kReadOnly);
    coord_.SetReachable(true);
  }
}

TEST_F(AgentTest, OnePhaseCommit) {
  BranchKey k{"g1", "b"};
  a_->Open(k);
  a_->Exec(k, "UPDATE t SET v = 3 WHERE id = 2");
  EXPECT_EQ(a_->agent().Commit(k, true).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Commit(k, true).code, ReplyCode::kOk);
  EXPECT_EQ(a_->V(2), 3);
}

// Bug 2 regression: the RM cannot tell whether the one-phase COMMIT happened (the
// PostgreSQL connection died during COMMIT and the server could not be asked). The agent
// must answer "in doubt" (UNAVAILABLE, OUTCOME_UNKNOWN), never ABORTED or SQL_ERROR, and
// keep doing so for every later call.
TEST(AgentOnePhaseTest, UnknownOutcomeIsReportedInDoubtNeverAborted) {
  for (Status failure : {Status::IOError("connection lost during COMMIT; outcome unknown"),
                         Status::Unavailable("server unreachable; outcome unknown")}) {
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
    Agent agent(o, rm, *journal, coord, peers, &clock);
    ASSERT_TRUE(agent.Recover().ok());
    BranchKey k{"g1", "b"};
    OpenArgs a;
    a.key = k;
    ASSERT_EQ(agent.Open(a).code, ReplyCode::kOk);
    ASSERT_EQ(agent.Execute(k, "UPDATE t SET v = 1", {}, 0).reply.code, ReplyCode::kOk);
    rm.SetOnePhaseStatus(failure);
    Reply r = agent.Commit(k, true);
    EXPECT_EQ(r.code, ReplyCode::kUnavailable) << r.message;
    EXPECT_EQ(r.state, S::kOutcomeUnknown);
    EXPECT_NE(r.message.find("unknown"), std::string::npos) << r.message;
    // A retry (the coordinator re-sends on UNAVAILABLE) gets the same answer and does not
    // run COMMIT again on a branch the RM no longer holds.
    r = agent.Commit(k, true);
    EXPECT_EQ(r.code, ReplyCode::kUnavailable);
    EXPECT_EQ(r.state, S::kOutcomeUnknown);
    EXPECT_EQ(rm.OnePhaseCommits(), 1);
    // Nothing turns it into an outcome: status, an abort, timeouts.
    EXPECT_EQ(agent.GetStatus(k).state, S::kOutcomeUnknown);
    r = agent.Abort(k);
    EXPECT_EQ(r.code, ReplyCode::kUnavailable);
    EXPECT_EQ(r.state, S::kOutcomeUnknown);
    EXPECT_NE(agent.AbortIfUnvoted(k).state, S::kAborted);
    clock.Advance(3600 * 1000);
    agent.Tick();
    EXPECT_EQ(agent.GetStatus(k).state, S::kOutcomeUnknown);
    EXPECT_EQ(agent.Execute(k, "SELECT 1", {}, 0).reply.state, S::kOutcomeUnknown);
  }
}

// An agent over the fake RM, for the commit-evidence cases the real RMs cannot script.
class FakeRmAgent {
 public:
  FakeRmAgent() {
    EXPECT_TRUE(OpenFileBranchJournal(PosixEnv(), dir.path(), true, &journal).ok());
    AgentOptions o;
    o.name = "p1";
    o.address = "p1:1";
    agent = std::make_unique<Agent>(o, rm, *journal, coord, peers, &clock);
    EXPECT_TRUE(agent->Recover().ok());
  }
  testing::TempDir dir;
  testing::FakeResourceManager rm;
  FakeCoordinator coord;
  FakePeers peers;
  FakeClock clock;
  std::unique_ptr<BranchJournal> journal;
  std::unique_ptr<Agent> agent;
};

// ListInDoubt includes OUTCOME_UNKNOWN (its outcome is not known here); a retried COMMIT
// that finds the commit marker settles it as COMMITTED.
TEST(AgentOnePhaseTest, OutcomeUnknownIsListedInDoubtAndSettledByTheMarker) {
  FakeRmAgent f;
  BranchKey k{"g1", "b"};
  OpenArgs a;
  a.key = k;
  ASSERT_EQ(f.agent->Open(a).code, ReplyCode::kOk);
  f.rm.SetOnePhaseStatus(Status::IOError("connection lost during COMMIT"));
  ASSERT_EQ(f.agent->Commit(k, true).state, S::kOutcomeUnknown);
  std::vector<BranchStatus> in_doubt = f.agent->ListInDoubt();
  ASSERT_EQ(in_doubt.size(), 1u);
  EXPECT_EQ(in_doubt[0].key, k);
  EXPECT_EQ(in_doubt[0].state, S::kOutcomeUnknown);
  EXPECT_EQ(f.agent->Commit(k, true).code, ReplyCode::kUnavailable);  // no marker yet
  f.rm.AddCommitEvidence(k);
  Reply r = f.agent->Commit(k, true);
  EXPECT_EQ(r.code, ReplyCode::kOk) << r.message;
  EXPECT_EQ(r.state, S::kCommitted);
  EXPECT_TRUE(f.agent->ListInDoubt().empty());
  EXPECT_EQ(f.rm.OnePhaseCommits(), 1);
}

// No record and the database cannot be asked: never a tombstone, never "no such branch".
TEST(AgentEvidenceTest, UnreachableDatabaseIsNeverTakenForNoRecord) {
  FakeRmAgent f;
  BranchKey k{"g1", "b"};
  f.rm.SetEvidenceStatus(Status::Unavailable("database down"));
  Reply r = f.agent->AbortIfUnvoted(k);
  EXPECT_EQ(r.code, ReplyCode::kUnavailable) << r.message;
  BranchStatus st = f.agent->GetStatus(k);
  EXPECT_FALSE(st.lookup.ok());
  EXPECT_EQ(f.agent->Abort(k).code, ReplyCode::kUnavailable);
  EXPECT_EQ(f.agent->Commit(k, false).code, ReplyCode::kUnavailable);
  f.rm.SetEvidenceStatus(Status::OK());
  EXPECT_EQ(f.agent->GetStatus(k).state, S::kNone);  // no tombstone was written
  EXPECT_TRUE(f.agent->GetStatus(k).lookup.ok());
}

// A prepared branch whose database says "neither prepared nor committed" on COMMIT (an
// operator's manual ROLLBACK PREPARED): heuristic hazard, NOT_FOUND, stays in doubt.
TEST(AgentEvidenceTest, CommitOfABranchRolledBackBehindTheAgentIsAHazard) {
  FakeRmAgent f;
  BranchKey k{"g1", "b"};
  OpenArgs a;
  a.key = k;
  ASSERT_EQ(f.agent->Open(a).code, ReplyCode::kOk);
  ASSERT_EQ(f.agent->Prepare(k, {{"p1", "p1:1", "b"}}).vote, Vote::kYes);
  f.rm.SetCommitPreparedStatus(Status::NotFound("no prepared transaction, no marker"));
  Reply r = f.agent->Commit(k, false);
  EXPECT_EQ(r.code, ReplyCode::kNotFound) << r.message;
  EXPECT_EQ(r.state, S::kPrepared);
  EXPECT_EQ(f.agent->ListInDoubt().size(), 1u);
  EXPECT_EQ(f.agent->Abort(k).code, ReplyCode::kOk);
}

TEST(AgentOnePhaseTest, RolledBackByTheRmIsAborted) {
  testing::TempDir dir;
  testing::FakeResourceManager rm;
  FakeCoordinator coord;
  FakePeers peers;
  FakeClock clock;
  std::unique_ptr<BranchJournal> journal;
  ASSERT_TRUE(OpenFileBranchJournal(PosixEnv(), dir.path(), true, &journal).ok());
  AgentOptions o;
  o.name = "p1";
  Agent agent(o, rm, *journal, coord, peers, &clock);
  ASSERT_TRUE(agent.Recover().ok());
  OpenArgs a;
  a.key = {"g1", "b"};
  ASSERT_EQ(agent.Open(a).code, ReplyCode::kOk);
  rm.SetOnePhaseStatus(Status::Aborted("serialization failure"));
  Reply r = agent.Commit(a.key, true);
  EXPECT_EQ(r.code, ReplyCode::kSqlError);
  EXPECT_EQ(r.state, S::kAborted);
}

// After --decided-retention-ms a COMMITTED branch is forgotten; the SQLite marker row
// still proves the commit: a terminating peer's AbortIfUnvoted is refused, the status is
// COMMITTED, a repeated COMMIT is OK and an ABORT is refused — also after a restart.
TEST_F(AgentTest, ForgottenCommitted_RecalledFromTheCommitMarker) {
  PrepareBoth("g1", Protocol::k2PC);
  ASSERT_EQ(b_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  clock_.Advance(AgentOptions().decided_retention_ms + 1);
  b_->agent().Tick();
  for (int round = 0; round < 2; ++round) {
    Reply r = b_->agent().AbortIfUnvoted({"g1", "b"});
    EXPECT_EQ(r.code, ReplyCode::kWrongState);
    EXPECT_EQ(r.state, S::kCommitted);
    EXPECT_EQ(StateB("g1"), S::kCommitted);
    EXPECT_EQ(b_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
    EXPECT_EQ(b_->agent().Abort({"g1", "b"}).code, ReplyCode::kWrongState);
    EXPECT_EQ(b_->V(1), 1);
    clock_.Advance(AgentOptions().decided_retention_ms + 1);
    b_->agent().Tick();
  }
  // A forgotten ABORTED branch has no marker: presumed abort as before.
  PrepareBoth("g2", Protocol::k2PC, 2);
  ASSERT_EQ(b_->agent().Abort({"g2", "b"}).code, ReplyCode::kOk);
  clock_.Advance(AgentOptions().decided_retention_ms + 1);
  b_->agent().Tick();
  EXPECT_EQ(StateB("g2"), S::kNone);
  EXPECT_EQ(b_->agent().Commit({"g2", "b"}, false).code, ReplyCode::kNotFound);
  EXPECT_EQ(b_->agent().AbortIfUnvoted({"g2", "b"}).state, S::kAborted);
}

// Each finished branch is forgotten decided_retention_ms after it finished, not before
// and not all at once (the timer keeps them in the order they finished).
TEST_F(AgentTest, Forgetting_WaitsForTheRetentionOfEachBranch) {
  const int64_t half = AgentOptions().decided_retention_ms / 2;
  PrepareBoth("g1", Protocol::k2PC);
  ASSERT_EQ(b_->agent().Abort({"g1", "b"}).code, ReplyCode::kOk);
  b_->agent().Tick();
  clock_.Advance(half);
  PrepareBoth("g2", Protocol::k2PC, 2);
  ASSERT_EQ(b_->agent().Abort({"g2", "b"}).code, ReplyCode::kOk);
  b_->agent().Tick();
  EXPECT_EQ(StateB("g1"), S::kAborted);
  EXPECT_EQ(StateB("g2"), S::kAborted);
  clock_.Advance(half + 1);
  b_->agent().Tick();
  EXPECT_EQ(StateB("g1"), S::kNone);  // forgotten: no record (and no commit marker)
  EXPECT_EQ(StateB("g2"), S::kAborted);
  clock_.Advance(half);
  b_->agent().Tick();
  EXPECT_EQ(StateB("g2"), S::kNone);
}

// The bug itself: pb committed and forgot the branch; pa, in doubt with the coordinator
// group unreachable, terminates cooperatively. Before the fix pb answered "no record",
// was tombstoned by AbortIfUnvoted and pa aborted; now pa commits.
TEST_F(AgentTest, Termination_ForgottenCommittedPeerMeansCommit) {
  PrepareBoth("g1", Protocol::k2PC);
  ASSERT_EQ(b_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  coord_.SetReachable(false);
  clock_.Advance(AgentOptions().decided_retention_ms + 1);
  b_->agent().Tick();  // pb forgets g1
  a_->agent().Tick();  // pa inquires, nobody answers, asks pb
  EXPECT_EQ(StateA("g1"), S::kCommitted);
  EXPECT_EQ(StateB("g1"), S::kCommitted);
  EXPECT_EQ(a_->V(1), 1);
}

// pa votes YES in a transaction whose other branch (on pb) never opened, the coordinator
// group is silent, and pa's agent restarts. pb's "no record" means "never voted" only
// shortly after pa's vote (a forgotten READ_ONLY vote looks the same later on); the vote's
// wall-clock time is journaled, so the restarted pa still knows when it voted.
class UnvotedPeerAfterRestartTest : public AgentTest,
                                    public ::testing::WithParamInterface<Protocol> {
 protected:
  void VoteAloneThenRestart() {
    BranchKey k{"g1", "b"};
    ASSERT_EQ(a_->Open(k, GetParam()).code, ReplyCode::kOk);
    ASSERT_EQ(a_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1").reply.code, ReplyCode::kOk);
    ASSERT_EQ(a_->agent().Prepare(k, {a_->Ref("b"), b_->Ref("b")}).vote, Vote::kYes);
    coord_.SetReachable(false);
    a_->Restart();
    ASSERT_EQ(StateA("g1"), S::kPrepared);
  }
};

TEST_P(UnvotedPeerAfterRestartTest, SoonAfterTheVoteThePeerIsTombstonedAndTheBranchAborts) {
  VoteAloneThenRestart();
  clock_.Advance(10000);
  a_->agent().Tick();  // inquiry: nobody answers; pb has no record: tombstoned
  EXPECT_EQ(StateA("g1"), S::kAborted);
  EXPECT_EQ(StateB("g1"), S::kAborted);
  EXPECT_EQ(a_->V(1), 0);
}

TEST_P(UnvotedPeerAfterRestartTest, LongAfterTheVoteItWaitsForTheCoordinator) {
  VoteAloneThenRestart();
  clock_.Advance(AgentOptions().decided_retention_ms / 2 + 1000);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(10000);
    a_->agent().Tick();
  }
  EXPECT_EQ(StateA("g1"), S::kPrepared);
  EXPECT_EQ(StateB("g1"), S::kNone);  // no tombstone was forced on it
  coord_.SetReachable(true);
  coord_.Set("g1", InquiryResult::kAborted);
  clock_.Advance(60000);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kAborted);
}

TEST_P(UnvotedPeerAfterRestartTest, AWallClockSetBackBeforeTheVoteIsNotTrusted) {
  VoteAloneThenRestart();
  clock_.StepWall(-3600 * 1000);
  clock_.Advance(10000);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kPrepared);
  EXPECT_EQ(StateB("g1"), S::kNone);
}

INSTANTIATE_TEST_SUITE_P(Protocols, UnvotedPeerAfterRestartTest,
                         ::testing::Values(Protocol::k2PC, Protocol::k3PC),
                         [](const ::testing::TestParamInfo<Protocol>& i) {
                           return i.param == Protocol::k2PC ? "TwoPC" : "ThreePC";
                         });

TEST_F(AgentTest, ExecuteSeqDeduplicates) {
  BranchKey k{"g1", "b"};
  a_->Open(k);
  EXPECT_EQ(a_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1", {}, 1).reply.code, ReplyCode::kOk);
  EXPECT_EQ(a_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1", {}, 1).reply.code,
            ReplyCode::kOk);  // a retry, not run again
  EXPECT_EQ(a_->Exec(k, "SELECT 1", {}, 5).reply.code, ReplyCode::kInvalidArgument);
  a_->agent().Commit(k, true);
  EXPECT_EQ(a_->V(1), 1);
}

// Found by participant_request_fuzz: a retried statement replayed its first answer (OK,
// ACTIVE) after the branch had been aborted meanwhile.
TEST_F(AgentTest, RetriedStatementHearsAnAbortSinceItsFirstAnswer) {
  BranchKey k{"g1", "b"};
  a_->Open(k);
  EXPECT_EQ(a_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1", {}, 1).reply.code, ReplyCode::kOk);
  clock_.Advance(6000);  // past the idle timeout
  a_->agent().Tick();
  ExecuteReply retry = a_->Exec(k, "UPDATE t SET v = v + 1 WHERE id = 1", {}, 1);
  EXPECT_EQ(retry.reply.code, ReplyCode::kWrongState);
  EXPECT_EQ(retry.reply.state, S::kAborted);
  EXPECT_NE(retry.reply.message.find("idle timeout"), std::string::npos) << retry.reply.message;
  // A failed statement's retry still gets the statement's own error.
  BranchKey f{"g2", "b"};
  a_->Open(f);
  ExecuteReply first = a_->Exec(f, "INSERT INTO t VALUES (1, 1)", {}, 1);  // duplicate key
  ASSERT_EQ(first.reply.code, ReplyCode::kSqlError);
  ExecuteReply again = a_->Exec(f, "INSERT INTO t VALUES (1, 1)", {}, 1);
  EXPECT_EQ(again.reply.code, ReplyCode::kSqlError);
  EXPECT_EQ(again.reply.message, first.reply.message);
}

TEST_F(AgentTest, IdleTimeoutAndDeadlineAbortUnpreparedBranches) {
  BranchKey idle{"g1", "b"};
  a_->Open(idle);
  a_->Exec(idle, "UPDATE t SET v = 1 WHERE id = 1");
  OpenArgs late;
  late.key = {"g2", "b"};
  late.timeout_ms = 1000;
  late.idle_timeout_ms = 100000;
  a_->agent().Open(late);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(a_->agent().GetStatus(late.key).state, S::kAborted);
  EXPECT_EQ(a_->agent().GetStatus(idle).state, S::kActive);
  clock_.Advance(4000);
  a_->agent().Tick();
  EXPECT_EQ(a_->agent().GetStatus(idle).state, S::kAborted);
  EXPECT_EQ(a_->agent().Prepare(idle, {}).vote, Vote::kNo);
  // Its row lock is gone.
  BranchKey k{"g3", "b"};
  a_->Open(k);
  EXPECT_EQ(a_->Exec(k, "UPDATE t SET v = 2 WHERE id = 1").reply.code, ReplyCode::kOk);
}

TEST_F(AgentTest, PreparedBranchNeverAbortsOnItsOwn) {
  PrepareBoth("g1", Protocol::k2PC);
  coord_.SetReachable(false);
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(10000);
    TickAll();
  }
  EXPECT_EQ(StateA("g1"), S::kPrepared);
  EXPECT_EQ(StateB("g1"), S::kPrepared);
  EXPECT_GT(coord_.Inquiries(), 2);
}

TEST_F(AgentTest, Recover_PreparedBranchSurvivesRestartWithLocks) {
  PrepareBoth("g1", Protocol::k2PC);
  a_->Restart();
  EXPECT_EQ(StateA("g1"), S::kPrepared);
  BranchKey k{"g2", "b"};
  a_->Open(k);
  EXPECT_EQ(a_->Exec(k, "UPDATE t SET v = 50 WHERE id = 1").reply.code, ReplyCode::kLockTimeout);
  EXPECT_EQ(a_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  EXPECT_EQ(a_->V(1), 1);
  a_->Restart();
  EXPECT_EQ(StateA("g1"), S::kCommitted);
  EXPECT_EQ(a_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  EXPECT_EQ(a_->V(1), 1);
}

TEST_F(AgentTest, Recover_AbortLeavesNoTrace) {
  PrepareBoth("g1", Protocol::k2PC);
  a_->Restart();
  EXPECT_EQ(a_->agent().Abort({"g1", "b"}).code, ReplyCode::kOk);
  EXPECT_EQ(a_->V(1), 0);
  a_->Restart();
  EXPECT_EQ(StateA("g1"), S::kAborted);
  EXPECT_TRUE(a_->agent().ListInDoubt().empty());
}

TEST_F(AgentTest, AbortOfUnknownBranchIsADurableTombstone) {
  BranchKey k{"g9", "b"};
  EXPECT_EQ(a_->agent().Abort(k).code, ReplyCode::kOk);
  a_->Restart();
  EXPECT_EQ(a_->Open(k).code, ReplyCode::kAlreadyExists);
}

TEST_F(AgentTest, ThreePhase_StatesSurviveRestart) {
  PrepareBoth("g1", Protocol::k3PC);
  EXPECT_EQ(a_->agent().Precommit({"g1", "b"}).code, ReplyCode::kOk);
  EXPECT_EQ(b_->agent().Fence({"g1", "b"}, "test").code, ReplyCode::kOk);
  a_->Restart();
  b_->Restart();
  EXPECT_EQ(StateA("g1"), S::kPrecommitted);
  EXPECT_EQ(StateB("g1"), S::kFenced);
  Reply r = a_->agent().Fence({"g1", "b"}, "test");
  EXPECT_EQ(r.code, ReplyCode::kPrecommitted);
  EXPECT_EQ(r.state, S::kPrecommitted);
  r = b_->agent().Precommit({"g1", "b"});
  EXPECT_EQ(r.code, ReplyCode::kFenced);
  EXPECT_EQ(r.state, S::kFenced);
  // Both still obey a decision.
  EXPECT_EQ(b_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  EXPECT_EQ(a_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
}

TEST_F(AgentTest, ThreePhase_PrecommittedCommitsOnTimeoutWhenGroupSilent) {
  PrepareBoth("g1", Protocol::k3PC);
  ASSERT_EQ(a_->agent().Precommit({"g1", "b"}).code, ReplyCode::kOk);
  coord_.SetReachable(false);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kPrecommitted);  // before the timeout
  clock_.Advance(2000);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kCommitted);
  EXPECT_EQ(a_->V(1), 1);
}

TEST_F(AgentTest, Inquiry_AppliesTheCoordinatorsDecision) {
  PrepareBoth("g1", Protocol::k2PC);
  PrepareBoth("g2", Protocol::k2PC, 2);
  coord_.Set("g1", InquiryResult::kCommitted);
  coord_.Set("g2", InquiryResult::kAborted);
  clock_.Advance(500);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kPrepared);  // not yet due
  clock_.Advance(1000);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kCommitted);
  EXPECT_EQ(StateA("g2"), S::kAborted);
}

TEST_F(AgentTest, Termination2PC_PeerCommittedCommits) {
  PrepareBoth("g1", Protocol::k2PC);
  coord_.SetReachable(false);
  ASSERT_EQ(b_->agent().Commit({"g1", "b"}, false).code, ReplyCode::kOk);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kCommitted);
  EXPECT_EQ(a_->V(1), 1);
}

TEST_F(AgentTest, Termination2PC_UnvotedPeerIsAbortedThenAll) {
  std::vector<PeerRef> parts = {a_->Ref("b"), b_->Ref("b")};
  a_->Open({"g1", "b"});
  a_->Exec({"g1", "b"}, "UPDATE t SET v = 7 WHERE id = 1");
  ASSERT_EQ(a_->agent().Prepare({"g1", "b"}, parts).vote, Vote::kYes);
  b_->Open({"g1", "b"});  // has not voted
  coord_.SetReachable(false);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(StateB("g1"), S::kAborted);
  EXPECT_EQ(StateA("g1"), S::kAborted);
  EXPECT_EQ(b_->agent().Prepare({"g1", "b"}, parts).vote, Vote::kNo);
}

TEST_F(AgentTest, Termination2PC_AllPreparedStays) {
  PrepareBoth("g1", Protocol::k2PC);
  coord_.SetReachable(false);
  clock_.Advance(1500);
  TickAll();
  EXPECT_EQ(StateA("g1"), S::kPrepared);
  EXPECT_EQ(StateB("g1"), S::kPrepared);
}

TEST_F(AgentTest, Termination3PC_AllFencedAborts) {
  PrepareBoth("g1", Protocol::k3PC);
  coord_.SetReachable(false);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kAborted);
  EXPECT_EQ(StateB("g1"), S::kAborted);
  EXPECT_EQ(a_->V(1), 0);
  EXPECT_EQ(b_->V(1), 0);
}

TEST_F(AgentTest, Termination3PC_PrecommittedPeerMeansCommit) {
  PrepareBoth("g1", Protocol::k3PC);
  ASSERT_EQ(b_->agent().Precommit({"g1", "b"}).code, ReplyCode::kOk);
  coord_.SetReachable(false);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kCommitted);
}

TEST_F(AgentTest, Termination3PC_UnreachablePeerStays) {
  PrepareBoth("g1", Protocol::k3PC);
  coord_.SetReachable(false);
  peers_.SetDown(b_->Address(), true);
  clock_.Advance(1500);
  a_->agent().Tick();
  EXPECT_NE(StateA("g1"), S::kAborted);
  EXPECT_NE(StateA("g1"), S::kCommitted);
  peers_.SetDown(b_->Address(), false);
  clock_.Advance(60000);
  a_->agent().Tick();
  EXPECT_EQ(StateA("g1"), S::kAborted);
  EXPECT_EQ(StateB("g1"), S::kAborted);
}

TEST_F(AgentTest, Registration_RetriesUntilALeaderAccepts) {
  {
    std::lock_guard<std::mutex> l(coord_.mu_);
    coord_.refuse_registrations = 3;
  }
  a_->agent().StartBackground();
  for (int i = 0; i < 100 && !a_->agent().registered(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  a_->agent().StopBackground();
  EXPECT_TRUE(a_->agent().registered());
  EXPECT_EQ(coord_.Registered().at("pa"), "pa:1");
}

}  // namespace
}  // namespace verdict::participant
