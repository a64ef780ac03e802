// PostgresResourceManager recovery against a real server: a new RM instance (agent restart)
// finds and resolves prepared branches exactly once; participants sharing a server do not
// collide; prepared branches survive an immediate server shutdown; the RM refuses a server
// with max_prepared_transactions = 0; concurrent branches.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/participant_pg/pg_rm_fixture.h"

namespace verdict::participant::postgres {
namespace {

using Code = Status::Code;

TEST_F(PgRmTest, NewInstance_SeesPreparedBranchAndCommitsItOnce) {
  std::string payload;
  {
    auto rm = NewRm();
    ASSERT_TRUE(BeginTransfer(rm.get(), Key("g1"), 1, 25).ok());
    ASSERT_TRUE(PrepareYes(rm.get(), Key("g1"), &payload).ok());
    ASSERT_TRUE(BeginTransfer(rm.get(), Key("g2"), 2, 25).ok());
    ASSERT_TRUE(PrepareYes(rm.get(), Key("g2")).ok());
    ASSERT_TRUE(BeginTransfer(rm.get(), Key("unprepared"), 3, 25).ok());
    // The agent "crashes": the RM goes away without deciding anything.
  }
  auto rm = NewRm();
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(rm->ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].key, Key("g1"));
  EXPECT_EQ(list[1].key, Key("g2"));
  // The agent re-establishes what its journal says is prepared.
  ASSERT_TRUE(rm->Restore(Key("g1"), payload).ok());
  ASSERT_TRUE(rm->Restore(Key("g2"), "").ok());
  ASSERT_TRUE(rm->CommitPrepared(Key("g1")).ok());
  ASSERT_TRUE(rm->CommitPrepared(Key("g1")).ok());
  ASSERT_TRUE(rm->RollbackPrepared(Key("g2")).ok());
  EXPECT_EQ(Balance(1), "125");
  EXPECT_EQ(Balance(2), "100");
  EXPECT_EQ(Balance(3), "100");
  EXPECT_TRUE(PreparedGids().empty());

  // A third instance that restores g1 again (the agent crashed before journaling COMMITTED)
  // answers a retried COMMIT with OK and commits nothing twice.
  auto rm3 = NewRm();
  ASSERT_TRUE(rm3->Restore(Key("g1"), payload).ok());
  ASSERT_TRUE(rm3->CommitPrepared(Key("g1")).ok());
  EXPECT_EQ(Balance(1), "125");
}

TEST_F(PgRmTest, NewInstance_WithoutRestoreCommitsWhatIsStillPrepared) {
  {
    auto rm = NewRm();
    ASSERT_TRUE(BeginTransfer(rm.get(), Key("g"), 1, 1).ok());
    ASSERT_TRUE(PrepareYes(rm.get(), Key("g")).ok());
  }
  auto rm = NewRm();
  ASSERT_TRUE(rm->CommitPrepared(Key("g")).ok());
  EXPECT_EQ(Balance(1), "101");
  // Gone from the server and never restored in this instance: the first call already
  // committed it here, so a retry is fine...
  ASSERT_TRUE(rm->CommitPrepared(Key("g")).ok());
  // ...and so is one from a fresh instance with no journal record: the commit marker,
  // written inside the branch before PREPARE TRANSACTION, proves the commit.
  auto rm2 = NewRm();
  EXPECT_TRUE(rm2->CommitPrepared(Key("g")).ok());
  bool committed = false;
  ASSERT_TRUE(rm2->CommitEvidence(Key("g"), &committed).ok());
  EXPECT_TRUE(committed);
  EXPECT_EQ(rm2->RollbackPrepared(Key("g")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(Balance(1), "101");
}

// Commit evidence: a marker is visible exactly for committed branches that wrote; a
// branch prepared here (or restored from the journal) and rolled back by an operator is
// NotFound on COMMIT (a heuristic hazard), not "already committed"; pruning removes
// markers only once they are old enough.
TEST_F(PgRmTest, CommitEvidence_ManualRollbackAndPruning) {
  auto rm = NewRm();
  auto evidence = [&](const std::string& g) {
    bool committed = true;
    Status s = rm->CommitEvidence(Key(g), &committed);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return committed;
  };
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("c"), 1, 1).ok());
  ASSERT_TRUE(PrepareYes(rm.get(), Key("c")).ok());
  EXPECT_FALSE(evidence("c"));  // in doubt: the marker is not visible yet
  ASSERT_TRUE(rm->CommitPrepared(Key("c")).ok());
  EXPECT_TRUE(evidence("c"));
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("m"), 2, 1).ok());
  std::string payload;
  ASSERT_TRUE(PrepareYes(rm.get(), Key("m"), &payload).ok());
  Sql("ROLLBACK PREPARED '" + payload + "'");
  Status s = rm->CommitPrepared(Key("m"));
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("outside Verdict"), std::string::npos) << s.ToString();
  EXPECT_FALSE(evidence("m"));
  EXPECT_TRUE(rm->RollbackPrepared(Key("m")).ok());
  // One-phase: marked if it wrote, not if it only read.
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("o"), 2, 5).ok());
  ASSERT_TRUE(rm->CommitOnePhase(Key("o")).ok());
  EXPECT_TRUE(evidence("o"));
  ASSERT_TRUE(rm->Begin(Key("r"), BranchOptions()).ok());
  ASSERT_TRUE(rm->Execute(Key("r"), "SELECT 1", {}, nullptr).ok());
  ASSERT_TRUE(rm->CommitOnePhase(Key("r")).ok());
  EXPECT_FALSE(evidence("r"));
  // A committed key cannot be prepared again (the marker's primary key): it votes NO.
  EXPECT_EQ(rm->Begin(Key("c"), BranchOptions()).code(), Code::kFailedPrecondition);
  auto other = NewRm();
  ASSERT_TRUE(BeginTransfer(other.get(), Key("c"), 1, 1).ok());
  PrepareResult pr;
  EXPECT_FALSE(other->Prepare(Key("c"), {}, &pr).ok());
  // Pruning: nothing is old enough for an hour; everything stamped is for 0 ms.
  int64_t pruned = -1;
  ASSERT_TRUE(rm->PruneCommitEvidence(3600 * 1000, &pruned).ok());
  EXPECT_EQ(pruned, 0);
  EXPECT_TRUE(evidence("c"));
  ASSERT_TRUE(rm->PruneCommitEvidence(0, &pruned).ok());
  EXPECT_GE(pruned, 2);
  EXPECT_FALSE(evidence("c"));
  EXPECT_FALSE(evidence("o"));
  EXPECT_EQ(Balance(1), "101");
}

TEST_F(PgRmTest, Restore_BadPayloadAndOpenBranch) {
  auto rm = NewRm();
  EXPECT_EQ(rm->Restore(Key("g"), "verdict:g:other:b0").code(), Code::kCorruption);
  EXPECT_EQ(rm->Restore(Key("g:x"), "").code(), Code::kInvalidArgument);
  ASSERT_TRUE(rm->Begin(Key("open"), BranchOptions()).ok());
  EXPECT_EQ(rm->Restore(Key("open"), "").code(), Code::kFailedPrecondition);
  ASSERT_TRUE(rm->Rollback(Key("open")).ok());
  // Restoring a branch that is no longer in the server is accepted (it was resolved before
  // the crash); a rollback of it is then OK.
  ASSERT_TRUE(rm->Restore(Key("gone"), "").ok());
  EXPECT_TRUE(rm->RollbackPrepared(Key("gone")).ok());
}

TEST_F(PgRmTest, TwoParticipants_DatabasesOfOneServerDoNotCollide) {
  const std::string other_db = db_ + "_b";
  ASSERT_TRUE(server_->CreateDatabase(other_db).ok());
  ASSERT_TRUE(
      server_->Exec(other_db, "CREATE TABLE accounts(id int PRIMARY KEY, balance bigint)").ok());
  ASSERT_TRUE(server_->Exec(other_db, "INSERT INTO accounts VALUES (1, 100)").ok());
  auto a = NewRm("shard_a");
  auto b = NewRm("shard_b", other_db);
  // The same gtid and branch name on both shards, both prepared at once.
  const BranchKey key = Key("same-gtid", "b0");
  ASSERT_TRUE(BeginTransfer(a.get(), key, 1, 10).ok());
  ASSERT_TRUE(BeginTransfer(b.get(), key, 1, -10).ok());
  ASSERT_TRUE(PrepareYes(a.get(), key).ok());
  ASSERT_TRUE(PrepareYes(b.get(), key).ok());
  EXPECT_EQ(PreparedGids(), (std::vector<std::string>{"verdict:same-gtid:shard_a:b0",
                                                      "verdict:same-gtid:shard_b:b0"}));
  std::vector<PreparedBranchInfo> la, lb;
  ASSERT_TRUE(a->ListPrepared(&la).ok());
  ASSERT_TRUE(b->ListPrepared(&lb).ok());
  ASSERT_EQ(la.size(), 1u);
  ASSERT_EQ(lb.size(), 1u);
  // Decided differently (as two different transactions could be): no cross-talk.
  ASSERT_TRUE(a->CommitPrepared(key).ok());
  ASSERT_TRUE(b->RollbackPrepared(key).ok());
  EXPECT_EQ(Balance(1), "110");
  EXPECT_EQ(Value("SELECT balance FROM accounts WHERE id = 1", other_db), "100");
  EXPECT_TRUE(PreparedGids().empty());
}

TEST_F(PgRmTest, TwoParticipants_SameDatabaseListOnlyTheirOwn) {
  auto a = NewRm("shard_a");
  auto c = NewRm("shard_c");
  ASSERT_TRUE(BeginTransfer(a.get(), Key("ga"), 1, 1).ok());
  ASSERT_TRUE(BeginTransfer(c.get(), Key("gc"), 2, 1).ok());
  ASSERT_TRUE(PrepareYes(a.get(), Key("ga")).ok());
  ASSERT_TRUE(PrepareYes(c.get(), Key("gc")).ok());
  // A foreign prepared transaction with no Verdict gid is ignored.
  Sql("BEGIN; UPDATE accounts SET balance = 0 WHERE id = 8; PREPARE TRANSACTION 'foreign:x'");
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(a->ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key, Key("ga"));
  // shard_a cannot commit shard_c's branch: its gid carries the other name.
  EXPECT_EQ(a->CommitPrepared(Key("gc")).code(), Code::kNotFound);
  ASSERT_TRUE(c->CommitPrepared(Key("gc")).ok());
  ASSERT_TRUE(a->RollbackPrepared(Key("ga")).ok());
  Sql("ROLLBACK PREPARED 'foreign:x'");
  EXPECT_EQ(Balance(1), "100");
  EXPECT_EQ(Balance(2), "101");
}

TEST_F(PgRmTest, Concurrent_BranchesPrepareAndCommit) {
  PostgresOptions o = Options();
  o.max_branch_connections = 8;
  PostgresResourceManager rm(o);
  ASSERT_TRUE(rm.Start().ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const BranchKey key{
            std::string("c").append(std::to_string(t)).append("-").append(std::to_string(i)), "b"};
        // Threads 0..3 share account 1 (lock waits), the rest use their own.
        const int id = t < 4 ? 1 : t;
        if (!BeginTransfer(&rm, key, id, 1, 5000).ok() || !PrepareYes(&rm, key).ok() ||
            !rm.CommitPrepared(key).ok()) {
          failures.fetch_add(1);
          rm.Rollback(key);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Balance(1), std::to_string(100 + 4 * kPerThread));
  EXPECT_EQ(Balance(7), std::to_string(100 + kPerThread));
  EXPECT_TRUE(PreparedGids().empty());
}

// Tests that need a server of their own (stopped, restarted or configured differently).
class PgRmOwnServerTest : public ::testing::Test {
 protected:
  void StartServer(test_support::PgServerOptions options = {}) {
    server_ = std::make_unique<test_support::PgServer>(options);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(server_
                    ->Exec("postgres",
                           "CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL);"
                           "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g")
                    .ok());
  }
  PostgresOptions Options() {
    PostgresOptions o;
    o.dsn = server_->Dsn("postgres");
    o.participant_name = "shard_x";
    o.connect_timeout_ms = 2000;
    return o;
  }
  std::string Value(const std::string& sql) {
    std::string v;
    Status s = server_->QueryValue("postgres", sql, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }
  Status Transfer(ResourceManager* rm, const BranchKey& key, int id, int delta) {
    VERDICT_RETURN_IF_ERROR(rm->Begin(key, BranchOptions()));
    QueryResult r;
    return rm->Execute(key, "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                       {SqlValue::Integer(delta), SqlValue::Integer(id)}, &r);
  }
  Status PrepareYes(ResourceManager* rm, const BranchKey& key) {
    PrepareResult pr;
    VERDICT_RETURN_IF_ERROR(rm->Prepare(key, {"shard_x"}, &pr));
    return pr.vote == PrepareVote::kYes ? Status::OK() : Status::Aborted("not YES");
  }

  std::unique_ptr<test_support::PgServer> server_;
};

TEST_F(PgRmOwnServerTest, Start_RefusesMaxPreparedTransactionsZero) {
  test_support::PgServerOptions options;
  options.max_prepared_transactions = 0;
  StartServer(options);
  PostgresResourceManager rm(Options());
  Status s = rm.Start();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("max_prepared_transactions = 0"), std::string::npos) << s.ToString();
  EXPECT_EQ(rm.Begin(BranchKey{"g", "b"}, BranchOptions()).code(), Code::kFailedPrecondition);
}

TEST_F(PgRmOwnServerTest, Prepare_BeyondMaxPreparedTransactionsVotesNo) {
  test_support::PgServerOptions options;
  options.max_prepared_transactions = 2;
  StartServer(options);
  PostgresResourceManager rm(Options());
  ASSERT_TRUE(rm.Start().ok());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        Transfer(&rm, BranchKey{std::string("g").append(std::to_string(i)), "b"}, i, 1).ok());
  }
  ASSERT_TRUE(PrepareYes(&rm, BranchKey{"g1", "b"}).ok());
  ASSERT_TRUE(PrepareYes(&rm, BranchKey{"g2", "b"}).ok());
  Status s = PrepareYes(&rm, BranchKey{"g3", "b"});
  EXPECT_EQ(s.code(), Code::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("max_prepared_transactions"), std::string::npos) << s.ToString();
  EXPECT_EQ(Value("SELECT balance FROM accounts WHERE id = 3"), "100");
  ASSERT_TRUE(rm.CommitPrepared(BranchKey{"g1", "b"}).ok());
  ASSERT_TRUE(rm.CommitPrepared(BranchKey{"g2", "b"}).ok());
}

TEST_F(PgRmOwnServerTest, ImmediateShutdown_PreparedBranchesSurviveAndAreResolved) {
  StartServer();
  PostgresResourceManager rm(Options());
  ASSERT_TRUE(rm.Start().ok());
  const BranchKey commit1{"c1", "b"}, commit2{"c2", "b"}, abort1{"a1", "b"}, open{"o1", "b"};
  ASSERT_TRUE(Transfer(&rm, commit1, 1, 10).ok());
  ASSERT_TRUE(Transfer(&rm, commit2, 2, 20).ok());
  ASSERT_TRUE(Transfer(&rm, abort1, 3, 30).ok());
  ASSERT_TRUE(Transfer(&rm, open, 4, 40).ok());
  ASSERT_TRUE(PrepareYes(&rm, commit1).ok());
  ASSERT_TRUE(PrepareYes(&rm, commit2).ok());
  ASSERT_TRUE(PrepareYes(&rm, abort1).ok());
  const uint64_t losses_before = rm.connection_losses();

  ASSERT_TRUE(server_->ImmediateShutdown().ok());
  // While the server is down phase two cannot finish: a retryable error, nothing lost.
  EXPECT_EQ(rm.CommitPrepared(commit1).code(), Code::kUnavailable);
  ASSERT_TRUE(server_->Restart().ok()) << server_->LogTail();

  // The open, unprepared branch died with its connection: it fails and votes NO.
  QueryResult r;
  Status s = rm.Execute(open, "SELECT 1", {}, &r);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  PrepareResult pr;
  EXPECT_FALSE(rm.Prepare(open, {"shard_x"}, &pr).ok());
  ASSERT_TRUE(rm.Rollback(open).ok());

  // The prepared ones survived the crash and are resolved through fresh connections.
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(rm.ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 3u);
  ASSERT_TRUE(rm.CommitPrepared(commit1).ok());
  ASSERT_TRUE(rm.CommitPrepared(commit2).ok());
  ASSERT_TRUE(rm.RollbackPrepared(abort1).ok());
  ASSERT_TRUE(rm.CommitPrepared(commit1).ok());
  EXPECT_GT(rm.connection_losses(), losses_before);
  EXPECT_EQ(Value("SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts WHERE id <= 4"),
            "110,120,100,100");
  EXPECT_EQ(Value("SELECT count(*) FROM pg_prepared_xacts"), "0");

  // New branches work again on the same RM.
  ASSERT_TRUE(Transfer(&rm, BranchKey{"after", "b"}, 5, 1).ok());
  ASSERT_TRUE(rm.CommitOnePhase(BranchKey{"after", "b"}).ok());
  EXPECT_EQ(Value("SELECT balance FROM accounts WHERE id = 5"), "101");
}

TEST_F(PgRmOwnServerTest, ImmediateShutdown_ThenNewRmInstanceResolves) {
  StartServer();
  {
    PostgresResourceManager rm(Options());
    ASSERT_TRUE(rm.Start().ok());
    ASSERT_TRUE(Transfer(&rm, BranchKey{"g", "b"}, 1, 5).ok());
    ASSERT_TRUE(PrepareYes(&rm, BranchKey{"g", "b"}).ok());
    ASSERT_TRUE(server_->ImmediateShutdown().ok());
  }
  ASSERT_TRUE(server_->Restart().ok());
  PostgresResourceManager rm(Options());
  ASSERT_TRUE(rm.Start().ok());
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(rm.ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 1u);
  ASSERT_TRUE(rm.Restore(list[0].key, "").ok());
  ASSERT_TRUE(rm.CommitPrepared(list[0].key).ok());
  EXPECT_EQ(Value("SELECT balance FROM accounts WHERE id = 1"), "105");
}

TEST_F(PgRmOwnServerTest, Begin_WhileServerDownRetriesUntilItIsBack) {
  StartServer();
  PostgresOptions o = Options();
  o.connect_timeout_ms = 20000;
  PostgresResourceManager rm(o);
  ASSERT_TRUE(rm.Start().ok());
  ASSERT_TRUE(Transfer(&rm, BranchKey{"warm", "b"}, 1, 1).ok());  // a pooled connection
  ASSERT_TRUE(rm.Rollback(BranchKey{"warm", "b"}).ok());
  ASSERT_TRUE(server_->ImmediateShutdown().ok());
  std::thread restarter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_TRUE(server_->Restart().ok());
  });
  // The stale pooled connection is dropped and the reconnect backs off until the server is up.
  Status s = Transfer(&rm, BranchKey{"during", "b"}, 1, 1);
  restarter.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(rm.CommitOnePhase(BranchKey{"during", "b"}).ok());
  EXPECT_EQ(Value("SELECT balance FROM accounts WHERE id = 1"), "101");
}

}  // namespace
}  // namespace verdict::participant::postgres
