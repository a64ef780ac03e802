// The coordinator's transaction service end to end (issue 4, DESIGN §3-§4): 3 real
// verdict-coordinator processes and 4 real verdict-participant agents — s1, s2 on SQLite
// files, p1, p2 on two databases of one real PostgreSQL server — running cross-shard
// transfers the way an SDK does (Begin on the leader; OpenBranch + Execute on each shard's
// agent; RegisterBranch; Commit). After each transaction the data on every shard must match
// the decision the group applied, and nothing may stay in doubt. One cluster serves the whole
// suite; each test uses its own accounts or checks deltas against a snapshot.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>

#include "tests/support/pg_server.h"
#include "tests/support/txn_cluster.h"

namespace verdict::test_support {
namespace {

using namespace std::chrono_literals;
using P = rpc::Protocol;
using St = rpc::BranchState;

constexpr auto kSettle = 20s;  // bound on phase two, END and inquiries after an answer

std::string ProtocolName(P::type p) { return p == P::THREE_PC ? "3PC" : "2PC"; }

// One PostgreSQL server and one cluster for the whole binary (every test suite below).
class TxnEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    PgServerOptions options;
    options.max_connections = 300;
    pg = std::make_unique<PgServer>(options);
    status = pg->Start();
    if (!status.ok()) return;
    cluster = std::make_unique<TxnCluster>(pg.get());
    status = cluster->Start();
  }
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->failed_test_count() > 0 && cluster) {
      std::fprintf(stderr, "%s\n",
                   cluster->PreserveLogs("/tmp/verdict-txn-logs/txn_process_test").c_str());
    }
    cluster.reset();
    pg.reset();
  }

  std::unique_ptr<PgServer> pg;
  std::unique_ptr<TxnCluster> cluster;
  Status status = Status::FailedPrecondition("the environment was not set up");
};

TxnEnvironment* const env =
    static_cast<TxnEnvironment*>(::testing::AddGlobalTestEnvironment(new TxnEnvironment));

class TxnServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env->status.ok()) << "cluster did not start: " << env->status.ToString();
    leader_id_ = cluster().WaitForLeader(20s);
    ASSERT_NE(leader_id_, 0) << cluster().LogTails(20);
    leader_ = cluster().Client(leader_id_);
  }

  TxnCluster& cluster() { return *env->cluster; }

  Balances Snapshot() {
    Balances b;
    Status s = cluster().Snapshot(&b);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return b;
  }

  // The checks shared by every finished transaction: its answer, the data on every shard,
  // the applied decision on every coordinator, the branches' states, nothing in doubt.
  void ExpectFinished(const TxnRun& run, const TxnSpec& spec, const Balances& before,
                      rpc::TxnOutcome::type want) {
    ASSERT_TRUE(run.commit_status.ok()) << run.commit_status.ToString();
    ASSERT_EQ(run.commit.code, rpc::ResultCode::OK)
        << ResultCodeName(run.commit.code) << " " << run.commit.message;
    ASSERT_EQ(TxnOutcomeName(run.commit.outcome), TxnOutcomeName(want))
        << "reason: " << run.commit.reason;
    ExpectOutcomeApplied(run.gtid, spec, before, want);
  }

  void ExpectOutcomeApplied(const std::string& gtid, const TxnSpec& spec, const Balances& before,
                            rpc::TxnOutcome::type want) {
    const bool committed = want == rpc::TxnOutcome::COMMITTED;
    std::string detail;
    EXPECT_TRUE(cluster().WaitForBalances(committed ? TxnCluster::Applied(before, spec) : before,
                                          kSettle, &detail))
        << gtid << ": " << detail;

    int writers = 0;
    for (const auto& br : spec.branches) writers += br.updates.empty() ? 0 : 1;
    if (committed && writers >= 2) {
      // A multi-writer commit is decided through the log: every node applies COMMIT.
      EXPECT_TRUE(cluster().WaitForDecisionEverywhere(gtid, rpc::Outcome::COMMIT, kSettle, &detail))
          << detail;
    } else if (!committed) {
      // An abort may be unlogged (presumed abort) or forgotten after END; never COMMIT.
      for (const auto& [id, text] : cluster().DecisionsByNode(gtid)) {
        EXPECT_NE(text, "COMMIT") << gtid << " was answered ABORTED but node " << id
                                  << " applied COMMIT";
      }
    }
    rpc::TxnInfoResponse info;
    Status s = leader_->GetTxn(gtid, &info);
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (info.code == rpc::ResultCode::OK && info.info.__isset.decision) {
      EXPECT_EQ(info.info.decision, committed ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT)
          << gtid << " phase=" << info.info.phase << " basis=" << info.info.basis;
    }

    for (const auto& br : spec.branches) {
      std::vector<St::type> states;
      if (!committed) {
        states = {St::ABORTED};
      } else if (br.updates.empty()) {
        states = {St::READ_ONLY};
      } else {
        states = {St::COMMITTED};
      }
      EXPECT_TRUE(
          cluster().WaitBranchState(br.shard, gtid, br.BranchName(), states, kSettle, &detail))
          << detail;
    }
    EXPECT_TRUE(cluster().WaitNothingInDoubt(kSettle, &detail)) << detail;
    EXPECT_EQ(cluster().Hazards(), "");
  }

  int leader_id_ = 0;
  std::unique_ptr<TxnClient> leader_;
};

class TxnProtocolTest : public TxnServiceTest, public ::testing::WithParamInterface<P::type> {};

INSTANTIATE_TEST_SUITE_P(Protocols, TxnProtocolTest, ::testing::Values(P::TWO_PC, P::THREE_PC),
                         [](const auto& info) { return ProtocolName(info.param); });

// ---- registration (also issue 3: agent -> real coordinator) ----------------------------

TEST_F(TxnServiceTest, ListParticipants_EveryAgentRegisteredWithAddressAndBackend) {
  rpc::ListParticipantsResponse r;
  Status s = leader_->ListParticipants(&r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(r.code, rpc::ResultCode::OK) << ResultCodeName(r.code);
  for (TxnAgent* agent : cluster().agents()) {
    bool found = false;
    for (const auto& p : r.participants) {
      if (p.name != agent->name()) continue;
      found = true;
      EXPECT_EQ(p.address, agent->address());
      EXPECT_EQ(p.backend, agent->backend() == Backend::kSqlite ? "sqlite" : "postgres");
    }
    EXPECT_TRUE(found) << agent->name() << " is not listed";
  }
  EXPECT_EQ(r.participants.size(), cluster().agents().size());
}

// ---- commit paths ----------------------------------------------------------------------

TEST_P(TxnProtocolTest, AllYes_CommitsOnEveryShard) {
  TxnSpec spec;
  spec.protocol = GetParam();
  spec.branches = {{"s1", {{0, -100}}}, {"s2", {{1, 25}}}, {"p1", {{2, 25}}}, {"p2", {{3, 50}}}};
  Balances before = Snapshot();
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectFinished(run, spec, before, rpc::TxnOutcome::COMMITTED);
  // Commit is idempotent: asking again gives the same answer.
  rpc::TxnOutcomeResponse again;
  ASSERT_TRUE(leader_->Commit(run.gtid, &again).ok());
  EXPECT_EQ(again.code, rpc::ResultCode::OK);
  EXPECT_EQ(TxnOutcomeName(again.outcome), "COMMITTED") << again.reason;
  EXPECT_EQ(Total(Snapshot()), Total(before));
}

TEST_P(TxnProtocolTest, SequentialTransfers_ConserveTotalAndMatchDecisions) {
  Balances before = Snapshot();
  const std::vector<std::string> shards = {"s1", "s2", "p1", "p2"};
  for (int i = 0; i < 6; ++i) {
    TxnSpec spec;
    spec.protocol = GetParam();
    const std::string& from = shards[i % 4];
    const std::string& to = shards[(i + 1 + i / 4) % 4];
    spec.branches = {{from, {{8, -(i + 1)}}}, {to, {{9, i + 1}}}};
    TxnRun run;
    Status s = cluster().RunTxn(*leader_, spec, &run);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectFinished(run, spec, before, rpc::TxnOutcome::COMMITTED);
    before = TxnCluster::Applied(before, spec);
  }
}

// ---- abort paths -----------------------------------------------------------------------

struct ViolationCase {
  P::type protocol;
  std::string violating_shard;
};

class TxnViolationTest : public TxnServiceTest,
                         public ::testing::WithParamInterface<ViolationCase> {};

INSTANTIATE_TEST_SUITE_P(
    Cases, TxnViolationTest,
    ::testing::Values(ViolationCase{P::TWO_PC, "p1"}, ViolationCase{P::TWO_PC, "s2"},
                      ViolationCase{P::THREE_PC, "p2"}, ViolationCase{P::THREE_PC, "s1"}),
    [](const auto& info) {
      return ProtocolName(info.param.protocol) + "_" + info.param.violating_shard;
    });

// One branch overdraws (CHECK (balance >= 0)): it fails with SQL_ERROR and votes NO; every
// other branch, prepared or not, is rolled back, and the client hears ABORTED.
TEST_P(TxnViolationTest, ConstraintViolation_AbortsEverywhere) {
  const auto& c = GetParam();
  Balances before = Snapshot();
  TxnSpec spec;
  spec.protocol = c.protocol;
  for (const std::string shard : {"s1", "s2", "p1", "p2"}) {
    int64_t delta = shard == c.violating_shard ? -(before[shard][4] + 1) : 7;
    spec.branches.push_back({shard, {{4, delta}}});
  }
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ParticipantCodeName(run.execute_codes["b-" + c.violating_shard]), "SQL_ERROR")
      << run.execute_messages["b-" + c.violating_shard];
  ExpectFinished(run, spec, before, rpc::TxnOutcome::ABORTED);
  // The answer is final: a repeated Commit is still ABORTED.
  rpc::TxnOutcomeResponse again;
  ASSERT_TRUE(leader_->Commit(run.gtid, &again).ok());
  EXPECT_EQ(TxnOutcomeName(again.outcome), "ABORTED");
}

TEST_P(TxnProtocolTest, ClientAbort_RollsBackEveryBranch) {
  TxnSpec spec;
  spec.protocol = GetParam();
  spec.branches = {{"s1", {{5, -10}}}, {"p1", {{5, 10}}}, {"p2", {{5, 3}}}};
  Balances before = Snapshot();
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run, /*commit=*/false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  rpc::TxnOutcomeResponse r;
  s = leader_->Abort(run.gtid, &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(r.code, rpc::ResultCode::OK) << ResultCodeName(r.code) << " " << r.message;
  EXPECT_EQ(TxnOutcomeName(r.outcome), "ABORTED") << r.reason;
  // The coordinator tells the branches (their idle timeout is 10 s, longer than this wait).
  std::string detail;
  for (const auto& br : spec.branches) {
    EXPECT_TRUE(
        cluster().WaitBranchState(br.shard, run.gtid, br.BranchName(), {St::ABORTED}, 5s, &detail))
        << detail;
  }
  // A Commit after the Abort cannot revive it.
  rpc::TxnOutcomeResponse commit;
  ASSERT_TRUE(leader_->Commit(run.gtid, &commit).ok());
  EXPECT_EQ(commit.code, rpc::ResultCode::OK);
  EXPECT_EQ(TxnOutcomeName(commit.outcome), "ABORTED");
  ExpectOutcomeApplied(run.gtid, spec, before, rpc::TxnOutcome::ABORTED);
}

// ---- optimizations ---------------------------------------------------------------------

// One participant: one-phase commit, no prepare and no decision entry (DESIGN §3.3).
TEST_P(TxnProtocolTest, OnePhase_SingleBranchCommitsWithoutLogEntry) {
  for (const std::string shard : {"s2", "p2"}) {
    SCOPED_TRACE(shard);
    TxnSpec spec;
    spec.protocol = GetParam();
    spec.branches = {{shard, {{6, -10}, {7, 10}}}};
    Balances before = Snapshot();
    TxnRun run;
    Status s = cluster().RunTxn(*leader_, spec, &run);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectFinished(run, spec, before, rpc::TxnOutcome::COMMITTED);
    std::string detail;
    EXPECT_TRUE(cluster().WaitForDecisionEverywhere(run.gtid, std::nullopt, 2s, &detail))
        << "a one-phase commit writes no decision entry: " << detail;
  }
}

TEST_P(TxnProtocolTest, OnePhase_SingleBranchWithSqlErrorAborts) {
  TxnSpec spec;
  spec.protocol = GetParam();
  Balances before = Snapshot();
  spec.branches = {{"p1", {{6, -(before["p1"][6] + 1)}}}};
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ParticipantCodeName(run.execute_codes["b-p1"]), "SQL_ERROR");
  ExpectFinished(run, spec, before, rpc::TxnOutcome::ABORTED);
}

// Read-only branches vote READ_ONLY and leave phase two; the writers commit. One read-only
// branch carries the hint, one does not (the vote decides either way).
TEST_P(TxnProtocolTest, ReadOnlyBranches_VoteReadOnlyAndWritersCommit) {
  TxnSpec spec;
  spec.protocol = GetParam();
  spec.branches = {{"s1", {{7, -5}}},
                   {"p1", {{7, 5}}},
                   {"s2", {}, /*read_only_hint=*/true},
                   {"p2", {}, /*read_only_hint=*/false}};
  Balances before = Snapshot();
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectFinished(run, spec, before, rpc::TxnOutcome::COMMITTED);
}

TEST_P(TxnProtocolTest, AllReadOnly_CommitsWithoutLogEntry) {
  TxnSpec spec;
  spec.protocol = GetParam();
  spec.branches = {{"s1", {}}, {"p2", {}}};
  Balances before = Snapshot();
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectFinished(run, spec, before, rpc::TxnOutcome::COMMITTED);
  std::string detail;
  EXPECT_TRUE(cluster().WaitForDecisionEverywhere(run.gtid, std::nullopt, 2s, &detail))
      << "all READ_ONLY: nothing is logged: " << detail;
}

// ---- what the coordinator reports ------------------------------------------------------

TEST_P(TxnProtocolTest, GetTxnAndListTxns_ShowARunningTransaction) {
  TxnSpec spec;
  spec.protocol = GetParam();
  spec.branches = {{"s2", {{3, -1}}}, {"p1", {{3, 1}}}};
  Balances before = Snapshot();
  TxnRun run;
  Status s = cluster().RunTxn(*leader_, spec, &run, /*commit=*/false);
  ASSERT_TRUE(s.ok()) << s.ToString();

  rpc::TxnInfoResponse info;
  ASSERT_TRUE(leader_->GetTxn(run.gtid, &info).ok());
  ASSERT_EQ(info.code, rpc::ResultCode::OK) << ResultCodeName(info.code) << " " << info.message;
  EXPECT_EQ(info.info.gtid, run.gtid);
  EXPECT_EQ(info.info.protocol, GetParam());
  EXPECT_TRUE(info.info.driven);
  EXPECT_FALSE(info.info.__isset.decision);
  EXPECT_FALSE(info.info.in_doubt);
  ASSERT_EQ(info.info.branches.size(), 2u);
  for (const auto& b : info.info.branches) {
    EXPECT_EQ(b.branch, "b-" + b.participant);
    EXPECT_EQ(b.address, cluster().agent(b.participant).address());
    EXPECT_EQ(b.vote, "");
  }
  rpc::ListTxnsResponse list;
  ASSERT_TRUE(leader_->ListTxns(false, &list).ok());
  ASSERT_EQ(list.code, rpc::ResultCode::OK);
  bool listed = false;
  for (const auto& t : list.txns) listed = listed || t.gtid == run.gtid;
  EXPECT_TRUE(listed) << run.gtid << " missing from ListTxns";

  rpc::TxnOutcomeResponse commit;
  ASSERT_TRUE(leader_->Commit(run.gtid, &commit).ok());
  EXPECT_EQ(TxnOutcomeName(commit.outcome), "COMMITTED") << commit.reason;
  ExpectOutcomeApplied(run.gtid, spec, before, rpc::TxnOutcome::COMMITTED);
}

// ---- bad calls -------------------------------------------------------------------------

TEST_F(TxnServiceTest, Follower_AnswersNotLeaderWithTheLeadersAddress) {
  std::string gtid;
  Status s = cluster().BeginOnly(*leader_, P::TWO_PC, &gtid);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string leader_address = cluster().coordinators().Address(leader_id_);
  for (int id = 1; id <= cluster().coordinators().size(); ++id) {
    if (id == leader_id_) continue;
    SCOPED_TRACE("follower " + std::to_string(id));
    auto f = cluster().Client(id);
    rpc::BeginResponse b;
    ASSERT_TRUE(f->Begin(P::TWO_PC, 0, &b).ok());
    EXPECT_EQ(ResultCodeName(b.code), "NOT_LEADER");
    ASSERT_TRUE(b.__isset.leader);
    EXPECT_EQ(b.leader.address, leader_address);
    EXPECT_EQ(b.leader.id, leader_id_);

    rpc::RegisterBranchResponse r;
    ASSERT_TRUE(f->RegisterBranch(gtid, "s1", "b-s1", false, &r).ok());
    EXPECT_EQ(ResultCodeName(r.code), "NOT_LEADER");
    EXPECT_TRUE(r.__isset.leader && r.leader.address == leader_address);

    rpc::TxnOutcomeResponse c;
    ASSERT_TRUE(f->Commit(gtid, &c).ok());
    EXPECT_EQ(ResultCodeName(c.code), "NOT_LEADER");
    EXPECT_TRUE(c.__isset.leader && c.leader.address == leader_address);
    ASSERT_TRUE(f->Abort(gtid, &c).ok());
    EXPECT_EQ(ResultCodeName(c.code), "NOT_LEADER");

    rpc::TxnInfoResponse t;
    ASSERT_TRUE(f->GetTxn(gtid, &t).ok());
    EXPECT_EQ(ResultCodeName(t.code), "NOT_LEADER");
    EXPECT_TRUE(t.__isset.leader && t.leader.address == leader_address);

    rpc::ListTxnsResponse l;
    ASSERT_TRUE(f->ListTxns(false, &l).ok());
    EXPECT_EQ(ResultCodeName(l.code), "NOT_LEADER");
  }
  // The follower refusals changed nothing: the transaction is still the leader's to abort.
  rpc::TxnOutcomeResponse a;
  ASSERT_TRUE(leader_->Abort(gtid, &a).ok());
  EXPECT_EQ(a.code, rpc::ResultCode::OK);
  EXPECT_EQ(TxnOutcomeName(a.outcome), "ABORTED");
}

TEST_F(TxnServiceTest, UnknownGtid_NotFoundOrUnknownAndNothingLogged) {
  rpc::NodeStatus st;
  ASSERT_TRUE(leader_->GetStatus(&st).ok());
  const std::string never_begun =
      std::to_string(st.term) + "." + std::to_string(leader_id_) + ".987654";

  rpc::TxnInfoResponse info;
  ASSERT_TRUE(leader_->GetTxn(never_begun, &info).ok());
  if (info.code == rpc::ResultCode::OK) {
    EXPECT_FALSE(info.info.__isset.decision);
    EXPECT_EQ(info.info.phase, "unknown");
  } else {
    EXPECT_EQ(ResultCodeName(info.code), "NOT_FOUND");
  }

  rpc::RegisterBranchResponse r;
  ASSERT_TRUE(leader_->RegisterBranch(never_begun, "s1", "b", false, &r).ok());
  EXPECT_EQ(ResultCodeName(r.code), "NOT_FOUND") << r.message;

  // A client asking about a gtid this leader does not drive and the log does not know hears
  // UNKNOWN, and nothing is logged (docs/transactions.md since ca0481e: a one-phase commit
  // of an earlier leadership leaves no entry either, so a logged presumed abort could
  // contradict it). Never COMMITTED.
  for (const std::string& gtid : {never_begun, std::string("1.9.77")}) {
    SCOPED_TRACE(gtid);
    rpc::TxnOutcomeResponse c;
    ASSERT_TRUE(leader_->Commit(gtid, &c).ok());
    EXPECT_EQ(c.code, rpc::ResultCode::OK) << ResultCodeName(c.code) << " " << c.message;
    EXPECT_EQ(TxnOutcomeName(c.outcome), "UNKNOWN") << c.reason;
    ASSERT_TRUE(leader_->Abort(gtid, &c).ok());
    EXPECT_EQ(c.code, rpc::ResultCode::OK);
    EXPECT_EQ(TxnOutcomeName(c.outcome), "UNKNOWN") << c.reason;
    for (const auto& [id, text] : cluster().DecisionsByNode(gtid)) {
      EXPECT_EQ(text, "none") << "node " << id << ": nothing may be logged for " << gtid;
    }
  }

  rpc::TxnOutcomeResponse bad;
  ASSERT_TRUE(leader_->Commit("", &bad).ok());
  EXPECT_EQ(ResultCodeName(bad.code), "INVALID_ARGUMENT");
  ASSERT_TRUE(leader_->GetTxn("", &info).ok());
  EXPECT_EQ(ResultCodeName(info.code), "INVALID_ARGUMENT");
}

TEST_F(TxnServiceTest, RegisterBranch_UnregisteredParticipant_NotFound) {
  std::string gtid;
  Status s = cluster().BeginOnly(*leader_, P::TWO_PC, &gtid);
  ASSERT_TRUE(s.ok()) << s.ToString();
  rpc::RegisterBranchResponse r;
  ASSERT_TRUE(leader_->RegisterBranch(gtid, "no-such-participant", "b", false, &r).ok());
  EXPECT_EQ(ResultCodeName(r.code), "NOT_FOUND") << r.message;
  rpc::TxnOutcomeResponse a;
  ASSERT_TRUE(leader_->Abort(gtid, &a).ok());
  EXPECT_EQ(TxnOutcomeName(a.outcome), "ABORTED");
}

// ---- concurrency -----------------------------------------------------------------------

// Several clients at once, 2PC and 3PC mixed, random pairs of shards (conflicts on rows
// make some branches vote NO). Every answer is COMMITTED or ABORTED; the shards end exactly
// at the initial balances plus the committed transfers, and nothing stays in doubt.
TEST_F(TxnServiceTest, ConcurrentTransfers_ExactlyTheCommittedOnesApply) {
  Balances before = Snapshot();
  constexpr int kThreads = 4, kPerThread = 8;
  const std::vector<std::string> shards = {"s1", "s2", "p1", "p2"};
  const std::string leader_address = cluster().coordinators().Address(leader_id_);
  std::vector<std::vector<std::pair<TxnSpec, TxnRun>>> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TxnClient leader(leader_address, 15000);
      std::map<std::string, std::unique_ptr<AgentClient>> own;
      std::map<std::string, AgentClient*> clients;
      for (const auto& shard : shards) {
        own[shard] = std::make_unique<AgentClient>(cluster().agent(shard).address(), 5000);
        clients[shard] = own[shard].get();
      }
      std::mt19937 rng(1000 + t);
      for (int i = 0; i < kPerThread; ++i) {
        TxnSpec spec;
        spec.protocol = (i + t) % 2 == 0 ? P::TWO_PC : P::THREE_PC;
        int a = rng() % 4, b = (a + 1 + rng() % 3) % 4;
        int64_t amount = 1 + rng() % 5;
        spec.branches = {{shards[a], {{int64_t(rng() % 10), -amount}}},
                         {shards[b], {{int64_t(rng() % 10), amount}}}};
        TxnRun run;
        Status s = cluster().RunTxn(leader, spec, &run, true, &clients);
        if (!s.ok()) {
          errors[t] = s.ToString();
          return;
        }
        results[t].push_back({spec, run});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");

  Balances want = before;
  int committed = 0;
  for (const auto& per_thread : results) {
    for (const auto& [spec, run] : per_thread) {
      ASSERT_TRUE(run.commit_status.ok()) << run.commit_status.ToString();
      ASSERT_EQ(run.commit.code, rpc::ResultCode::OK);
      const std::string outcome = TxnOutcomeName(run.commit.outcome);
      ASSERT_TRUE(outcome == "COMMITTED" || outcome == "ABORTED")
          << run.gtid << " " << outcome << " " << run.commit.reason;
      if (outcome == "COMMITTED") {
        ++committed;
        want = TxnCluster::Applied(want, spec);
      }
    }
  }
  EXPECT_GT(committed, 0);
  std::fprintf(stderr, "%d of %d concurrent transfers committed\n", committed,
               kThreads * kPerThread);
  std::string detail;
  EXPECT_TRUE(cluster().WaitForBalances(want, kSettle, &detail)) << detail;
  EXPECT_EQ(Total(want), Total(before));
  EXPECT_TRUE(cluster().WaitNothingInDoubt(kSettle, &detail)) << detail;
  EXPECT_EQ(cluster().Hazards(), "");
}

}  // namespace
}  // namespace verdict::test_support
