// SqliteResourceManager: typed SQL, prepare (YES / READ_ONLY), commit idempotence through
// the marker row, row locks held by prepared branches (also after a restart), errors, and
// the per-statement local transactions with changeset re-application (open branches on
// different rows do not block each other; read-your-own-writes; multi-statement branches).
#include "participant/sqlite/sqlite_resource_manager.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>

#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant::sqlite {
namespace {

class SqliteRmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rm_ = Make();
    BranchKey setup{"setup", "b"};
    Begin(setup);
    Exec(setup,
         "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
         "CHECK (balance >= 0), name TEXT, blob BLOB, r REAL)");
    Exec(setup, "CREATE TABLE nopk(x INTEGER)");
    Exec(setup, "INSERT INTO accounts(id, balance) VALUES (1, 100), (2, 100)");
    ASSERT_TRUE(rm_->CommitOnePhase(setup).ok());
  }

  std::unique_ptr<ResourceManager> Make() {
    SqliteOptions o;
    o.path = dir_.File("shard.db");
    o.apply_busy_timeout_ms = 2000;
    auto rm = NewSqliteResourceManager(o);
    EXPECT_TRUE(rm->Start().ok());
    return rm;
  }
  void Begin(const BranchKey& k, int lock_timeout_ms = 300) {
    BranchOptions o;
    o.lock_timeout_ms = lock_timeout_ms;
    ASSERT_TRUE(rm_->Begin(k, o).ok());
  }
  Status Exec(const BranchKey& k, const std::string& sql, std::vector<SqlValue> params = {},
              QueryResult* out = nullptr) {
    QueryResult r;
    Status s = rm_->Execute(k, sql, params, out ? out : &r);
    return s;
  }
  int64_t Balance(int id) {
    BranchKey k{"read" + std::to_string(reads_++), "b"};
    Begin(k);
    QueryResult r;
    EXPECT_TRUE(
        Exec(k, "SELECT balance FROM accounts WHERE id = ?", {SqlValue::Integer(id)}, &r).ok());
    EXPECT_TRUE(rm_->Rollback(k).ok());
    return r.rows.empty() ? -1 : r.rows[0][0].integer;
  }
  std::string PrepareYes(const BranchKey& k) {
    PrepareResult pr;
    Status s = rm_->Prepare(k, {"p1"}, &pr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(pr.vote, PrepareVote::kYes);
    return pr.recovery_payload;
  }

  testing::TempDir dir_;
  std::unique_ptr<ResourceManager> rm_;
  int reads_ = 0;
};

TEST_F(SqliteRmTest, Execute_TypedValuesRoundTrip) {
  BranchKey k{"g1", "b"};
  Begin(k);
  ASSERT_TRUE(Exec(k, "INSERT INTO accounts VALUES (?, ?, ?, ?, ?)",
                   {SqlValue::Integer(7), SqlValue::Integer(5), SqlValue::Text("seven"),
                    SqlValue::Blob(std::string("\0\1", 2)), SqlValue::Real(2.5)})
                  .ok());
  QueryResult r;
  ASSERT_TRUE(Exec(k, "SELECT id, balance, name, blob, r, NULL AS n FROM accounts WHERE id = ?",
                   {SqlValue::Integer(7)}, &r)
                  .ok());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.columns, (std::vector<std::string>{"id", "balance", "name", "blob", "r", "n"}));
  EXPECT_EQ(r.rows[0][2], SqlValue::Text("seven"));
  EXPECT_EQ(r.rows[0][3], SqlValue::Blob(std::string("\0\1", 2)));
  EXPECT_EQ(r.rows[0][4], SqlValue::Real(2.5));
  EXPECT_TRUE(r.rows[0][5].is_null());
  QueryResult u;
  ASSERT_TRUE(Exec(k, "UPDATE accounts SET balance = balance + 1", {}, &u).ok());
  EXPECT_EQ(u.rows_affected, 3);
  rm_->Rollback(k);
}

TEST_F(SqliteRmTest, Execute_Errors) {
  BranchKey k{"g1", "b"};
  Begin(k);
  EXPECT_EQ(Exec(k, "SELEC nonsense").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec(k, "SELECT ?", {}).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec(k, "SELECT 1; SELECT 2").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec(k, "COMMIT").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec(k, "  begin immediate").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec(k, "INSERT INTO accounts(id, balance) VALUES (1, 5)").code(),
            Status::Code::kAborted);  // primary key constraint
  EXPECT_EQ(Exec(k, "UPDATE accounts SET balance = -1 WHERE id = 1").code(),
            Status::Code::kAborted);  // CHECK constraint
  EXPECT_EQ(Exec(k, "INSERT INTO nopk VALUES (1)").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Exec({"nope", "b"}, "SELECT 1").code(), Status::Code::kNotFound);
  rm_->Rollback(k);
}

TEST_F(SqliteRmTest, Prepare_ReadOnly) {
  BranchKey k{"g1", "b"};
  Begin(k);
  ASSERT_TRUE(Exec(k, "SELECT * FROM accounts").ok());
  bool ro = false;
  ASSERT_TRUE(rm_->IsReadOnly(k, &ro).ok());
  EXPECT_TRUE(ro);
  PrepareResult pr;
  ASSERT_TRUE(rm_->Prepare(k, {}, &pr).ok());
  EXPECT_EQ(pr.vote, PrepareVote::kReadOnly);
  std::vector<PreparedBranchInfo> list;
  rm_->ListPrepared(&list);
  EXPECT_TRUE(list.empty());
}

TEST_F(SqliteRmTest, CommitPrepared_AppliesOnceAndIsIdempotent) {
  BranchKey k{"g1", "b"};
  Begin(k);
  ASSERT_TRUE(Exec(k, "UPDATE accounts SET balance = balance - 10 WHERE id = 1").ok());
  std::string payload = PrepareYes(k);
  EXPECT_FALSE(payload.empty());
  EXPECT_EQ(Balance(1), 100);  // not visible before the decision
  std::vector<PreparedBranchInfo> list;
  rm_->ListPrepared(&list);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key, k);
  ASSERT_TRUE(rm_->CommitPrepared(k).ok());
  EXPECT_EQ(Balance(1), 90);
  ASSERT_TRUE(rm_->CommitPrepared(k).ok());  // retried: the marker says done
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(rm_->CommitPrepared({"never", "b"}).code(), Status::Code::kNotFound);
}

TEST_F(SqliteRmTest, RollbackPrepared_LeavesNoTrace) {
  BranchKey k{"g1", "b"};
  Begin(k);
  ASSERT_TRUE(Exec(k, "UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  PrepareYes(k);
  ASSERT_TRUE(rm_->RollbackPrepared(k).ok());
  ASSERT_TRUE(rm_->RollbackPrepared(k).ok());
  EXPECT_EQ(Balance(1), 100);
  // Its row is free again.
  BranchKey k2{"g2", "b"};
  Begin(k2);
  EXPECT_TRUE(Exec(k2, "UPDATE accounts SET balance = 1 WHERE id = 1").ok());
  rm_->Rollback(k2);
}

TEST_F(SqliteRmTest, PreparedRows_ConflictingWriteWaitsThenFails) {
  BranchKey a{"ga", "b"}, b{"gb", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 50 WHERE id = 1").ok());
  PrepareYes(a);
  Begin(b, 200);
  auto start = std::chrono::steady_clock::now();
  Status s = Exec(b, "UPDATE accounts SET balance = balance + 1 WHERE id = 1");
  EXPECT_EQ(s.code(), Status::Code::kTimeout) << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
  rm_->Rollback(b);
  // Another row is not blocked.
  BranchKey c{"gc", "b"};
  Begin(c);
  EXPECT_TRUE(Exec(c, "UPDATE accounts SET balance = 7 WHERE id = 2").ok());
  rm_->Rollback(c);
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  EXPECT_EQ(Balance(1), 50);
}

TEST_F(SqliteRmTest, PreparedRows_WaiterProceedsAfterCommit) {
  BranchKey a{"ga", "b"}, b{"gb", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 30 WHERE id = 1").ok());
  PrepareYes(a);
  Begin(b, 5000);
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(rm_->CommitPrepared(a).ok());
  });
  // Waits for a's decision, then sees its effect (no lost update).
  ASSERT_TRUE(Exec(b, "UPDATE accounts SET balance = balance - 30 WHERE id = 1").ok());
  committer.join();
  PrepareYes(b);
  ASSERT_TRUE(rm_->CommitPrepared(b).ok());
  EXPECT_EQ(Balance(1), 40);
}

TEST_F(SqliteRmTest, Restore_ReestablishesLocksAfterRestart) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 1 WHERE id = 1").ok());
  ASSERT_TRUE(Exec(a, "INSERT INTO accounts(id, balance) VALUES (3, 3)").ok());
  std::string payload = PrepareYes(a);
  rm_->Stop();
  rm_ = Make();  // "restart"
  ASSERT_TRUE(rm_->Restore(a, payload).ok());
  BranchKey b{"gb", "b"};
  Begin(b, 100);
  EXPECT_EQ(Exec(b, "UPDATE accounts SET balance = 2 WHERE id = 1").code(), Status::Code::kTimeout);
  rm_->Rollback(b);
  BranchKey c{"gc", "b"};
  Begin(c, 100);
  EXPECT_EQ(Exec(c, "INSERT INTO accounts(id, balance) VALUES (3, 9)").code(),
            Status::Code::kTimeout);  // the prepared insert's key is locked too
  rm_->Rollback(c);
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  EXPECT_EQ(Balance(1), 1);
  EXPECT_EQ(Balance(3), 3);
}

TEST_F(SqliteRmTest, Restore_AfterLocalCommitIsIdempotent) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance + 5 WHERE id = 2").ok());
  std::string payload = PrepareYes(a);
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  rm_->Stop();
  rm_ = Make();  // crash after the local commit, before the journal said COMMITTED
  ASSERT_TRUE(rm_->Restore(a, payload).ok());
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  EXPECT_EQ(Balance(2), 105);  // exactly once
}

TEST_F(SqliteRmTest, CommitOnePhase_Commits) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 11 WHERE id = 1").ok());
  ASSERT_TRUE(rm_->CommitOnePhase(a).ok());
  EXPECT_EQ(Balance(1), 11);
  EXPECT_TRUE(rm_->CommitPrepared(a).ok());  // a retried commit finds the marker
}

TEST_F(SqliteRmTest, CommitPrepared_ConcurrentBranchesGroupCommit) {
  constexpr int kBranches = 16;
  BranchKey setup{"setup2", "b"};
  Begin(setup);
  for (int i = 10; i < 10 + kBranches; ++i) {
    ASSERT_TRUE(
        Exec(setup, "INSERT INTO accounts(id, balance) VALUES (?, 0)", {SqlValue::Integer(i)})
            .ok());
  }
  ASSERT_TRUE(rm_->CommitOnePhase(setup).ok());
  std::vector<BranchKey> keys;
  for (int i = 0; i < kBranches; ++i) {
    BranchKey k{"g" + std::to_string(i), "b"};
    Begin(k);
    ASSERT_TRUE(
        Exec(k, "UPDATE accounts SET balance = 1 WHERE id = ?", {SqlValue::Integer(10 + i)}).ok());
    PrepareYes(k);
    keys.push_back(k);
  }
  std::vector<std::thread> threads;
  for (auto& k : keys) threads.emplace_back([&, k] { EXPECT_TRUE(rm_->CommitPrepared(k).ok()); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kBranches; ++i) EXPECT_EQ(Balance(10 + i), 1);
}

// The commit marker is the durable evidence of a commit: present exactly for committed
// branches that wrote (two-phase and one-phase), absent for prepared, rolled-back,
// read-only and unknown ones, still there after a restart, and gone once pruned.
TEST_F(SqliteRmTest, CommitEvidence_ExactlyTheCommittedBranches) {
  auto evidence = [&](const BranchKey& k) {
    bool committed = true;
    Status s = rm_->CommitEvidence(k, &committed);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return committed;
  };
  BranchKey committed{"g1", "b"}, aborted{"g2", "b"}, prepared{"g3", "b"}, one_phase{"g4", "b"},
      read_only{"g5", "b"};
  for (const BranchKey& k : {committed, aborted, prepared}) {
    Begin(k);
    ASSERT_TRUE(Exec(k, "UPDATE accounts SET balance = balance + 1 WHERE id = ?",
                     {SqlValue::Integer(k == prepared ? 2 : 1)})
                    .ok());
    PrepareYes(k);
    if (k == committed) {
      ASSERT_TRUE(rm_->CommitPrepared(k).ok());
    } else if (k == aborted) {
      ASSERT_TRUE(rm_->RollbackPrepared(k).ok());
    }
  }
  Begin(one_phase);
  ASSERT_TRUE(Exec(one_phase, "UPDATE accounts SET balance = 7 WHERE id = 1").ok());
  ASSERT_TRUE(rm_->CommitOnePhase(one_phase).ok());
  Begin(read_only);
  ASSERT_TRUE(Exec(read_only, "SELECT 1").ok());
  ASSERT_TRUE(rm_->CommitOnePhase(read_only).ok());
  EXPECT_TRUE(evidence(committed));
  EXPECT_TRUE(evidence(one_phase));
  EXPECT_FALSE(evidence(aborted));
  EXPECT_FALSE(evidence(prepared));
  EXPECT_FALSE(evidence(read_only));
  EXPECT_FALSE(evidence({"never", "b"}));
  // After a restart the marker still answers.
  rm_->Stop();
  rm_ = Make();
  EXPECT_TRUE(evidence(committed));
  EXPECT_TRUE(rm_->CommitPrepared(committed).ok());  // idempotent from the marker
  int64_t pruned = -1;
  ASSERT_TRUE(rm_->PruneCommitEvidence(3600 * 1000, &pruned).ok());
  EXPECT_EQ(pruned, 0);  // too young
  EXPECT_TRUE(evidence(committed));
  ASSERT_TRUE(rm_->PruneCommitEvidence(0, &pruned).ok());
  EXPECT_GE(pruned, 2);  // g1, g4 (and the set-up branch)
  EXPECT_FALSE(evidence(committed));
  EXPECT_FALSE(evidence(one_phase));
}

// Concurrency: a branch holds SQLite's write lock only while a statement runs, so branches
// on different rows execute, stay open (as between statements and PREPARE in a real
// cross-shard transaction) and commit side by side.
TEST_F(SqliteRmTest, OpenBranchesOnDifferentRows_DoNotBlockEachOther) {
  BranchKey a{"ga", "b"}, b{"gb", "b"}, c{"gc", "b"};
  Begin(a, 300);
  Begin(b, 300);
  Begin(c, 300);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 10 WHERE id = 1").ok());
  Status s = Exec(b, "UPDATE accounts SET balance = balance + 10 WHERE id = 2");
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = Exec(c, "INSERT INTO accounts(id, balance) VALUES (3, 3)");
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Readers see neither uncommitted branch.
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(Balance(3), -1);
  // Second statements, interleaved.
  ASSERT_TRUE(Exec(b, "UPDATE accounts SET name = 'b' WHERE id = 2").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET name = 'a' WHERE id = 1").ok());
  PrepareYes(b);
  PrepareYes(a);
  ASSERT_TRUE(rm_->CommitOnePhase(c).ok());
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  ASSERT_TRUE(rm_->CommitPrepared(b).ok());
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 110);
  EXPECT_EQ(Balance(3), 3);
}

TEST_F(SqliteRmTest, ReadYourOwnWritesAcrossStatements) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 10 WHERE id = 1").ok());
  QueryResult r;
  ASSERT_TRUE(Exec(a, "SELECT balance FROM accounts WHERE id = 1", {}, &r).ok());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], SqlValue::Integer(90));
  // A statement computed from the branch's own earlier write.
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 10 WHERE id = 1").ok());
  ASSERT_TRUE(
      Exec(a, "INSERT INTO accounts(id, balance) SELECT 3, balance FROM accounts WHERE id = 1")
          .ok());
  ASSERT_TRUE(Exec(a, "SELECT SUM(balance) FROM accounts", {}, &r).ok());
  EXPECT_EQ(r.rows[0][0], SqlValue::Integer(80 + 100 + 80));
  EXPECT_EQ(Balance(1), 100);  // others still see the committed value
  PrepareYes(a);
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  EXPECT_EQ(Balance(1), 80);
  EXPECT_EQ(Balance(3), 80);
}

TEST_F(SqliteRmTest, InsertUpdateDeleteOfOneKeyInOneBranch) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "INSERT INTO accounts(id, balance) VALUES (5, 5)").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 6 WHERE id = 5").ok());
  QueryResult r;
  ASSERT_TRUE(Exec(a, "SELECT balance FROM accounts WHERE id = 5", {}, &r).ok());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], SqlValue::Integer(6));
  QueryResult d;
  ASSERT_TRUE(Exec(a, "DELETE FROM accounts WHERE id = 5", {}, &d).ok());
  EXPECT_EQ(d.rows_affected, 1);
  ASSERT_TRUE(Exec(a, "SELECT balance FROM accounts WHERE id = 5", {}, &r).ok());
  EXPECT_TRUE(r.rows.empty());
  bool ro = false;
  ASSERT_TRUE(rm_->IsReadOnly(a, &ro).ok());
  EXPECT_TRUE(ro);  // inserted and deleted: nothing left to commit
  PrepareResult pr;
  ASSERT_TRUE(rm_->Prepare(a, {}, &pr).ok());
  EXPECT_EQ(pr.vote, PrepareVote::kReadOnly);
  EXPECT_EQ(Balance(5), -1);

  // Delete then re-insert an existing key, then update it: one UPDATE in effect.
  BranchKey b{"gb", "b"};
  Begin(b);
  ASSERT_TRUE(Exec(b, "DELETE FROM accounts WHERE id = 2").ok());
  ASSERT_TRUE(Exec(b, "INSERT INTO accounts(id, balance, name) VALUES (2, 7, 'x')").ok());
  ASSERT_TRUE(Exec(b, "UPDATE accounts SET balance = balance + 1 WHERE id = 2").ok());
  // And insert then update a new key.
  ASSERT_TRUE(Exec(b, "INSERT INTO accounts(id, balance) VALUES (6, 1)").ok());
  ASSERT_TRUE(Exec(b, "UPDATE accounts SET balance = 60 WHERE id = 6").ok());
  PrepareYes(b);
  ASSERT_TRUE(rm_->CommitPrepared(b).ok());
  EXPECT_EQ(Balance(2), 8);
  EXPECT_EQ(Balance(6), 60);
}

// A statement that fails after earlier successful ones leaves nothing of itself behind and
// keeps the branch's earlier changes intact (the agent then aborts the branch).
TEST_F(SqliteRmTest, FailedStatementAfterEarlierWrites_NothingHalfApplied) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 50 WHERE id = 2").ok());
  // Row 1 (100) would succeed, row 2 (50) violates the CHECK: the statement fails whole.
  EXPECT_EQ(Exec(a, "UPDATE accounts SET balance = balance - 60").code(), Status::Code::kAborted);
  QueryResult r;
  ASSERT_TRUE(Exec(a, "SELECT id, balance FROM accounts ORDER BY id", {}, &r).ok());
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0][1], SqlValue::Integer(100));
  EXPECT_EQ(r.rows[1][1], SqlValue::Integer(50));
  ASSERT_TRUE(rm_->Rollback(a).ok());
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Balance(2), 100);
  // Its row lock is gone.
  BranchKey b{"gb", "b"};
  Begin(b, 100);
  EXPECT_TRUE(Exec(b, "UPDATE accounts SET balance = 1 WHERE id = 2").ok());
  rm_->Rollback(b);
}

// A row the branch wrote is changed behind the agent's back (another SQLite client): the
// branch's next statement cannot re-apply its changes and fails cleanly (branch votes NO);
// nothing of the branch is applied.
TEST_F(SqliteRmTest, ReapplicationConflict_FailsStatementCleanly) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 50 WHERE id = 1").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = 60 WHERE id = 2").ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("shard.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 2000);
  ASSERT_EQ(
      sqlite3_exec(db, "UPDATE accounts SET balance = 77 WHERE id = 2", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  Status s = Exec(a, "SELECT balance FROM accounts WHERE id = 1");
  EXPECT_EQ(s.code(), Status::Code::kAborted) << s.ToString();
  ASSERT_TRUE(rm_->Rollback(a).ok());
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Balance(2), 77);
}

// Deadlock avoidance: a branch that holds row locks does not wait for an executing branch
// (it fails at once), but does wait for a prepared one and then proceeds.
TEST_F(SqliteRmTest, LockHolderWaitsOnlyForPreparedBranches) {
  BranchKey a{"ga", "b"}, b{"gb", "b"};
  Begin(a, 5000);
  Begin(b, 5000);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 1 WHERE id = 1").ok());
  ASSERT_TRUE(Exec(b, "UPDATE accounts SET balance = balance - 1 WHERE id = 2").ok());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Exec(b, "UPDATE accounts SET balance = balance - 1 WHERE id = 1").code(),
            Status::Code::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  rm_->Rollback(b);
  BranchKey c{"gc", "b"};
  Begin(c, 5000);
  ASSERT_TRUE(Exec(c, "UPDATE accounts SET balance = balance - 1 WHERE id = 2").ok());
  PrepareYes(a);
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(rm_->CommitPrepared(a).ok());
  });
  Status s = Exec(c, "UPDATE accounts SET balance = balance - 1 WHERE id = 1");
  committer.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(rm_->CommitOnePhase(c).ok());
  EXPECT_EQ(Balance(1), 98);
  EXPECT_EQ(Balance(2), 99);
}

// The changeset accumulated over several statements is the recovery payload: it survives
// prepare, a restart and Restore(), and commits exactly.
TEST_F(SqliteRmTest, Restore_MultiStatementChangeset) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 30 WHERE id = 1").ok());
  ASSERT_TRUE(Exec(a, "INSERT INTO accounts(id, balance) VALUES (3, 1)").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance + 29 WHERE id = 3").ok());
  ASSERT_TRUE(Exec(a, "DELETE FROM accounts WHERE id = 2").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET name = 'one' WHERE id = 1").ok());
  std::string payload = PrepareYes(a);
  std::vector<std::string> keys;
  ASSERT_TRUE(ChangesetLockKeys(payload, &keys).ok());
  EXPECT_EQ(keys.size(), 3u);
  rm_->Stop();
  rm_ = Make();  // "restart"
  ASSERT_TRUE(rm_->Restore(a, payload).ok());
  for (int id : {1, 2, 3}) {
    BranchKey b{"gb" + std::to_string(id), "b"};
    Begin(b, 100);
    EXPECT_EQ(Exec(b, "INSERT OR REPLACE INTO accounts(id, balance) VALUES (?, 9)",
                   {SqlValue::Integer(id)})
                  .code(),
              Status::Code::kTimeout);
    rm_->Rollback(b);
  }
  ASSERT_TRUE(rm_->CommitPrepared(a).ok());
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), -1);
  EXPECT_EQ(Balance(3), 30);
  QueryResult r;
  BranchKey k{"check", "b"};
  Begin(k);
  ASSERT_TRUE(Exec(k, "SELECT name FROM accounts WHERE id = 1", {}, &r).ok());
  EXPECT_EQ(r.rows[0][0], SqlValue::Text("one"));
  rm_->Rollback(k);
}

TEST_F(SqliteRmTest, CommitOnePhase_MultiStatementBranch) {
  BranchKey a{"ga", "b"};
  Begin(a);
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance - 25 WHERE id = 1").ok());
  ASSERT_TRUE(Exec(a, "UPDATE accounts SET balance = balance + 25 WHERE id = 2").ok());
  ASSERT_TRUE(Exec(a, "INSERT INTO accounts(id, balance) VALUES (3, 3)").ok());
  ASSERT_TRUE(Exec(a, "DELETE FROM accounts WHERE id = 3").ok());
  ASSERT_TRUE(Exec(a, "INSERT INTO accounts(id, balance) VALUES (4, 4)").ok());
  ASSERT_TRUE(rm_->CommitOnePhase(a).ok());
  EXPECT_EQ(Balance(1), 75);
  EXPECT_EQ(Balance(2), 125);
  EXPECT_EQ(Balance(3), -1);
  EXPECT_EQ(Balance(4), 4);
  bool committed = false;
  ASSERT_TRUE(rm_->CommitEvidence(a, &committed).ok());
  EXPECT_TRUE(committed);
  // Its locks are gone.
  BranchKey b{"gb", "b"};
  Begin(b, 100);
  EXPECT_TRUE(Exec(b, "UPDATE accounts SET balance = 0 WHERE id = 4").ok());
  rm_->Rollback(b);
}

// Many branches execute, stay open and then commit concurrently, on distinct rows.
TEST_F(SqliteRmTest, ManyOpenBranchesCommitConcurrently) {
  constexpr int kBranches = 8;
  std::vector<BranchKey> keys;
  for (int i = 0; i < kBranches; ++i) {
    BranchKey k{"m" + std::to_string(i), "b"};
    Begin(k, 300);
    ASSERT_TRUE(
        Exec(k, "INSERT INTO accounts(id, balance) VALUES (?, 0)", {SqlValue::Integer(100 + i)})
            .ok());
    keys.push_back(k);
  }
  for (int i = 0; i < kBranches; ++i) {
    ASSERT_TRUE(Exec(keys[i], "UPDATE accounts SET balance = ? WHERE id = ?",
                     {SqlValue::Integer(i + 1), SqlValue::Integer(100 + i)})
                    .ok());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kBranches; ++i) {
    threads.emplace_back([&, i] {
      if (i % 2) {
        EXPECT_TRUE(rm_->CommitOnePhase(keys[i]).ok());
      } else {
        PrepareResult pr;
        EXPECT_TRUE(rm_->Prepare(keys[i], {}, &pr).ok());
        EXPECT_TRUE(rm_->CommitPrepared(keys[i]).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kBranches; ++i) EXPECT_EQ(Balance(100 + i), i + 1);
}

TEST(ChangesetLockKeys, EmptyAndGarbage) {
  std::vector<std::string> keys;
  EXPECT_TRUE(ChangesetLockKeys("", &keys).ok());
  EXPECT_TRUE(keys.empty());
  EXPECT_FALSE(ChangesetLockKeys("garbage-not-a-changeset", &keys).ok());
}

}  // namespace
}  // namespace verdict::participant::sqlite
