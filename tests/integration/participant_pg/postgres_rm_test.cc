// PostgresResourceManager against a real server: every call's happy path and bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "participant/postgres/gid.h"
#include "tests/integration/participant_pg/pg_rm_fixture.h"

namespace verdict::participant::postgres {
namespace {

using Code = Status::Code;

TEST_F(PgRmTest, Start_ReportsBackendAndDatabase) {
  auto rm = NewRm();
  EXPECT_EQ(rm->backend(), "postgres");
  EXPECT_EQ(rm->database(), db_);
}

TEST_F(PgRmTest, Start_BadParticipantNameOrDsn) {
  PostgresOptions o = Options("a:b");
  EXPECT_EQ(PostgresResourceManager(o).Start().code(), Code::kInvalidArgument);
  o = Options();
  o.dsn.clear();
  EXPECT_EQ(PostgresResourceManager(o).Start().code(), Code::kInvalidArgument);
}

TEST_F(PgRmTest, Start_UnreachableServerIsUnavailable) {
  PostgresOptions o = Options();
  o.dsn = "host=/nonexistent-socket-dir port=1 dbname=x connect_timeout=1";
  o.connect_timeout_ms = 200;
  o.startup_timeout_ms = 300;
  Status s = PostgresResourceManager(o).Start();
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
}

TEST_F(PgRmTest, Calls_BeforeStartAreRefused) {
  PostgresResourceManager rm(Options());
  EXPECT_EQ(rm.Begin(Key("g"), BranchOptions()).code(), Code::kFailedPrecondition);
  EXPECT_EQ(rm.CommitPrepared(Key("g")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(rm.RollbackPrepared(Key("g")).code(), Code::kFailedPrecondition);
  std::vector<PreparedBranchInfo> list;
  EXPECT_EQ(rm.ListPrepared(&list).code(), Code::kFailedPrecondition);
}

TEST_F(PgRmTest, Execute_TypedValuesRoundTrip) {
  Sql("CREATE TABLE typed(i2 smallint, i4 int, i8 bigint, b bool, f4 real, f8 double precision, "
      "t text, by bytea, n numeric(10,2), d date, nul int)");
  auto rm = NewRm();
  const BranchKey key = Key("typed");
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  QueryResult r;
  const std::string blob("\0\x01\xff'\\", 5);
  Status s = rm->Execute(
      key, "INSERT INTO typed VALUES (?, ?, ?, ?::int::bool, ?, ?, ?, ?, ?, ?, ?)",
      {SqlValue::Integer(-7), SqlValue::Integer(2147483647),
       SqlValue::Integer(-9223372036854775807LL), SqlValue::Integer(1), SqlValue::Real(1.5),
       SqlValue::Real(0.1), SqlValue::Text("it's ?"), SqlValue::Blob(blob), SqlValue::Text("12.34"),
       SqlValue::Text("2024-02-29"), SqlValue::Null()},
      &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.rows_affected, 1);
  ASSERT_TRUE(rm->Execute(key, "SELECT * FROM typed", {}, &r).ok());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows_affected, 0);
  EXPECT_EQ(r.columns, (std::vector<std::string>{"i2", "i4", "i8", "b", "f4", "f8", "t", "by", "n",
                                                 "d", "nul"}));
  const SqlRow& row = r.rows[0];
  EXPECT_EQ(row[0], SqlValue::Integer(-7));
  EXPECT_EQ(row[1], SqlValue::Integer(2147483647));
  EXPECT_EQ(row[2], SqlValue::Integer(-9223372036854775807LL));
  EXPECT_EQ(row[3], SqlValue::Integer(1));
  EXPECT_EQ(row[4], SqlValue::Real(1.5));
  EXPECT_EQ(row[5], SqlValue::Real(0.1));
  EXPECT_EQ(row[6], SqlValue::Text("it's ?"));
  EXPECT_EQ(row[7], SqlValue::Blob(blob));
  EXPECT_EQ(row[8], SqlValue::Text("12.34"));
  EXPECT_EQ(row[9], SqlValue::Text("2024-02-29"));
  EXPECT_TRUE(row[10].is_null());
  ASSERT_TRUE(rm->Rollback(key).ok());
}

TEST_F(PgRmTest, Execute_NonFiniteRealsAndSelectOfParameters) {
  auto rm = NewRm();
  const BranchKey key = Key("params");
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  QueryResult r;
  Status s = rm->Execute(key, "SELECT ? + 1, ?, ?, ? AS txt, '{\"a\":1}'::jsonb ?? 'a'",
                         {SqlValue::Integer(5000000000LL), SqlValue::Real(INFINITY),
                          SqlValue::Real(NAN), SqlValue::Text("x")},
                         &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], SqlValue::Integer(5000000001LL));
  EXPECT_EQ(r.rows[0][1], SqlValue::Real(INFINITY));
  EXPECT_TRUE(std::isnan(r.rows[0][2].real));
  EXPECT_EQ(r.rows[0][3], SqlValue::Text("x"));
  EXPECT_EQ(r.rows[0][4], SqlValue::Integer(1));
  EXPECT_EQ(r.columns[3], "txt");
  ASSERT_TRUE(rm->Rollback(key).ok());
}

TEST_F(PgRmTest, Execute_RowsAffected) {
  auto rm = NewRm();
  const BranchKey key = Key("affected");
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  QueryResult r;
  ASSERT_TRUE(rm->Execute(key, "UPDATE accounts SET balance = balance + 1 WHERE id <= ?",
                          {SqlValue::Integer(4)}, &r)
                  .ok());
  EXPECT_EQ(r.rows_affected, 4);
  ASSERT_TRUE(rm->Execute(key, "DELETE FROM accounts WHERE id = 10", {}, &r).ok());
  EXPECT_EQ(r.rows_affected, 1);
  ASSERT_TRUE(rm->Execute(key, "INSERT INTO accounts VALUES (?, ?), (?, ?) RETURNING id",
                          {SqlValue::Integer(11), SqlValue::Integer(1), SqlValue::Integer(12),
                           SqlValue::Integer(2)},
                          &r)
                  .ok());
  EXPECT_EQ(r.rows_affected, 2);
  EXPECT_EQ(r.rows.size(), 2u);
  ASSERT_TRUE(rm->Execute(key, "SELECT * FROM accounts", {}, &r).ok());
  EXPECT_EQ(r.rows_affected, 0);
  EXPECT_EQ(r.rows.size(), 11u);
  ASSERT_TRUE(rm->Rollback(key).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM accounts"), "10");
}

TEST_F(PgRmTest, Execute_BadInput) {
  auto rm = NewRm();
  const BranchKey key = Key("bad");
  QueryResult r;
  EXPECT_EQ(rm->Execute(key, "SELECT 1", {}, &r).code(), Code::kNotFound);
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  // Wrong parameter count: rejected before reaching the server; the branch stays usable.
  Status s = rm->Execute(key, "SELECT ?", {}, &r);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(rm->Execute(key, "SELECT 1", {SqlValue::Integer(1)}, &r).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(rm->Execute(key, "SELECT 'unterminated", {}, &r).code(), Code::kInvalidArgument);
  EXPECT_EQ(rm->Execute(key, "SELECT $1", {SqlValue::Integer(1)}, &r).code(),
            Code::kInvalidArgument);
  // Transaction control would end the branch behind the coordinator's back.
  for (const char* sql : {"COMMIT", " /* c */ commit", "ROLLBACK", "BEGIN", "END", "ABORT",
                          "PREPARE TRANSACTION 'x'", "START TRANSACTION"}) {
    EXPECT_EQ(rm->Execute(key, sql, {}, &r).code(), Code::kInvalidArgument) << sql;
  }
  ASSERT_TRUE(rm->Execute(key, "SELECT 1", {}, &r).ok());
  // An SQL syntax error reaches the server: InvalidArgument with the SQLSTATE.
  s = rm->Execute(key, "SELEC 1", {}, &r);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("SQLSTATE 42601"), std::string::npos) << s.ToString();
  // After a server-side error the branch can only be rolled back.
  EXPECT_EQ(rm->Execute(key, "SELECT 1", {}, &r).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(rm->Rollback(key).ok());
  ASSERT_TRUE(rm->Rollback(key).ok());  // idempotent
}

TEST_F(PgRmTest, Execute_ConstraintViolationVotesNo) {
  auto rm = NewRm();
  const BranchKey key = Key("dup");
  ASSERT_TRUE(BeginTransfer(rm.get(), key, 1, 5).ok());
  QueryResult r;
  Status s = rm->Execute(key, "INSERT INTO accounts VALUES (?, ?)",
                         {SqlValue::Integer(2), SqlValue::Integer(1)}, &r);
  EXPECT_EQ(s.code(), Code::kAborted);
  EXPECT_NE(s.message().find("SQLSTATE 23505"), std::string::npos) << s.ToString();
  PrepareResult pr;
  EXPECT_EQ(rm->Prepare(key, {"shard_a"}, &pr).code(), Code::kAborted);
  EXPECT_TRUE(PreparedGids().empty());
  EXPECT_EQ(Balance(1), "100");
  // A CHECK violation too.
  const BranchKey key2 = Key("negative");
  s = BeginTransfer(rm.get(), key2, 1, -101);
  EXPECT_EQ(s.code(), Code::kAborted);
  EXPECT_NE(s.message().find("SQLSTATE 23514"), std::string::npos) << s.ToString();
  ASSERT_TRUE(rm->Rollback(key2).ok());
}

TEST_F(PgRmTest, Begin_BadInput) {
  auto rm = NewRm();
  BranchOptions bo;
  EXPECT_EQ(rm->Begin(Key("g:1"), bo).code(), Code::kInvalidArgument);
  EXPECT_EQ(rm->Begin(Key(""), bo).code(), Code::kInvalidArgument);
  EXPECT_EQ(rm->Begin(Key(std::string(200, 'g')), bo).code(), Code::kInvalidArgument);
  bo.lock_timeout_ms = 0;
  EXPECT_EQ(rm->Begin(Key("g"), bo).code(), Code::kInvalidArgument);
  bo.lock_timeout_ms = 100;
  ASSERT_TRUE(rm->Begin(Key("g"), bo).ok());
  EXPECT_EQ(rm->Begin(Key("g"), bo).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(rm->Begin(Key("g", "b1"), bo).ok());  // another branch of the same gtid
  ASSERT_TRUE(rm->Rollback(Key("g")).ok());
  ASSERT_TRUE(rm->Rollback(Key("g", "b1")).ok());
}

TEST_F(PgRmTest, Begin_QuotesInIdsAreEncodedInTheGid) {
  auto rm = NewRm();
  const BranchKey key{"g'); DROP TABLE accounts; --", "b\\'"};
  ASSERT_TRUE(BeginTransfer(rm.get(), key, 1, 1).ok());
  std::string payload;
  ASSERT_TRUE(PrepareYes(rm.get(), key, &payload).ok());
  std::string gid;
  ASSERT_TRUE(MakeGid("shard_a", key, &gid).ok());
  EXPECT_EQ(payload, gid);
  EXPECT_EQ(PreparedGids(), std::vector<std::string>{gid});
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(rm->ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key, key);
  ASSERT_TRUE(rm->CommitPrepared(key).ok());
  EXPECT_EQ(Balance(1), "101");
}

TEST_F(PgRmTest, Prepare_ReadOnlyBranchVotesReadOnly) {
  auto rm = NewRm();
  const BranchKey key = Key("ro");
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  QueryResult r;
  ASSERT_TRUE(
      rm->Execute(key, "SELECT balance FROM accounts WHERE id = ?", {SqlValue::Integer(3)}, &r)
          .ok());
  EXPECT_EQ(r.rows.at(0).at(0), SqlValue::Integer(100));
  bool ro = false;
  ASSERT_TRUE(rm->IsReadOnly(key, &ro).ok());
  EXPECT_TRUE(ro);
  PrepareResult pr;
  ASSERT_TRUE(rm->Prepare(key, {"shard_a"}, &pr).ok());
  EXPECT_EQ(pr.vote, PrepareVote::kReadOnly);
  EXPECT_TRUE(PreparedGids().empty());
  // The branch is forgotten: a second prepare finds nothing.
  EXPECT_EQ(rm->Prepare(key, {"shard_a"}, &pr).code(), Code::kNotFound);
}

// BEGIN rides with the first statement, so a branch that ran none never started a
// transaction: it is read-only and its vote needs no round trip.
TEST_F(PgRmTest, Prepare_BranchWithoutStatementsVotesReadOnly) {
  auto rm = NewRm();
  const BranchKey a = Key("empty-a"), b = Key("empty-b");
  ASSERT_TRUE(rm->Begin(a, BranchOptions()).ok());
  bool ro = false;
  ASSERT_TRUE(rm->IsReadOnly(a, &ro).ok());
  EXPECT_TRUE(ro);
  PrepareResult pr;
  ASSERT_TRUE(rm->Prepare(a, {"shard_a"}, &pr).ok());
  EXPECT_EQ(pr.vote, PrepareVote::kReadOnly);
  ASSERT_TRUE(rm->Begin(b, BranchOptions()).ok());
  EXPECT_TRUE(rm->CommitOnePhase(b).ok());
  EXPECT_TRUE(PreparedGids().empty());
  EXPECT_EQ(Value("SELECT count(*) FROM verdict.commit_markers WHERE gid LIKE '%empty-%'"), "0");
}

// Each branch gets its own lock_timeout, also on a pooled connection that an earlier
// branch with another value used (the session setting is changed only when it differs).
TEST_F(PgRmTest, LockTimeout_IsTheBranchsOwnOnAReusedConnection) {
  PostgresOptions o = Options();
  o.max_branch_connections = 1;  // every branch reuses the same connection
  PostgresResourceManager rm(o);
  ASSERT_TRUE(rm.Start().ok());
  const int timeouts[] = {200, 200, 1500, 200};
  for (int i = 0; i < 4; ++i) {
    const BranchKey key = Key("lt" + std::to_string(i));
    BranchOptions bo;
    bo.lock_timeout_ms = timeouts[i];
    ASSERT_TRUE(rm.Begin(key, bo).ok());
    QueryResult r;
    ASSERT_TRUE(rm.Execute(key, "SELECT current_setting('lock_timeout')", {}, &r).ok());
    EXPECT_EQ(r.rows.at(0).at(0), SqlValue::Text(timeouts[i] == 200 ? "200ms" : "1500ms")) << i;
    // Rolled back, committed: neither undoes the setting behind the RM's back.
    if (i % 2 == 0) {
      ASSERT_TRUE(rm.Rollback(key).ok());
    } else {
      ASSERT_TRUE(rm.CommitOnePhase(key).ok());
    }
  }
}

// A statement without result columns is prepared as a named statement on its second run
// on a connection (the server parses it once). Named statements outlive the branches that
// made them and follow the parameter types; statements that return rows stay unnamed, so
// DDL under them never fails a branch; a DEALLOCATE retires the connection; and the
// option turns it all off.
TEST_F(PgRmTest, NamedStatements_ReusedAcrossBranchesAndSafeAcrossDdl) {
  for (const bool named : {true, false}) {
    SCOPED_TRACE(named ? "named statements on" : "named statements off");
    PostgresOptions o = Options();
    o.max_branch_connections = 1;  // every branch reuses the same connection
    o.named_statements = named;
    PostgresResourceManager rm(o);
    ASSERT_TRUE(rm.Start().ok());
    int seq = 0;
    auto run = [&](const std::string& sql, std::vector<SqlValue> params, QueryResult* r,
                   bool commit) {
      const BranchKey key = Key("ns" + std::to_string(named) + "-" + std::to_string(++seq));
      Status s = rm.Begin(key, BranchOptions());
      if (s.ok()) s = rm.Execute(key, sql, params, r);
      if (s.ok() && commit) return rm.CommitOnePhase(key);
      Status rb = rm.Rollback(key);
      EXPECT_TRUE(rb.ok()) << rb.ToString();
      return s;
    };
    auto count_named = [&](const std::string& text) {
      QueryResult r;
      EXPECT_TRUE(run("SELECT count(*)::int FROM pg_prepared_statements WHERE statement = ?",
                      {SqlValue::Text(text)}, &r, false)
                      .ok());
      return r.rows.at(0).at(0);
    };
    const std::string update = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
    const std::string before = Balance(1);
    for (int i = 0; i < 5; ++i) {  // rolled back and committed by turns: +1 +1 committed
      QueryResult r;
      ASSERT_TRUE(run(update, {SqlValue::Integer(1), SqlValue::Integer(1)}, &r, i % 2 == 1).ok())
          << i;
      EXPECT_EQ(r.rows_affected, 1) << i;
    }
    EXPECT_EQ(Balance(1), std::to_string(std::stoi(before) + 2));
    const std::string update_text = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
    EXPECT_EQ(count_named(update_text), SqlValue::Integer(named ? 1 : 0));

    // Statements that return rows are never named, so a column added or dropped under
    // them changes nothing.
    const std::string star = "SELECT * FROM accounts WHERE id = ?";
    QueryResult r;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(run(star, {SqlValue::Integer(2)}, &r, false).ok());
    EXPECT_EQ(count_named("SELECT * FROM accounts WHERE id = $1"), SqlValue::Integer(0));
    Sql("ALTER TABLE accounts ADD COLUMN note text");
    ASSERT_TRUE(run(star, {SqlValue::Integer(2)}, &r, false).ok());
    EXPECT_EQ(r.columns.size(), 3u);
    ASSERT_TRUE(run(update, {SqlValue::Integer(1), SqlValue::Integer(3)}, &r, true).ok());
    Sql("ALTER TABLE accounts DROP COLUMN note");
    ASSERT_TRUE(run(star, {SqlValue::Integer(2)}, &r, false).ok());
    EXPECT_EQ(r.columns.size(), 2u);
    ASSERT_TRUE(run(update, {SqlValue::Integer(1), SqlValue::Integer(3)}, &r, true).ok());
    EXPECT_EQ(Balance(3), "102");

    // A branch's DEALLOCATE ALL drops ours: the connection is retired, nothing fails.
    ASSERT_TRUE(run("DEALLOCATE ALL", {}, &r, false).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(run(update, {SqlValue::Integer(1), SqlValue::Integer(4)}, &r, true).ok()) << i;
    }
    EXPECT_EQ(Balance(4), "103");
    Sql("UPDATE accounts SET balance = 100");
  }
}

TEST_F(PgRmTest, Prepare_WriteHiddenInASelectIsNotReadOnly) {
  Sql("CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS "
      "'UPDATE accounts SET balance = balance + 1 WHERE id = 1 RETURNING 1'");
  auto rm = NewRm();
  const BranchKey key = Key("hidden");
  ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
  QueryResult r;
  ASSERT_TRUE(rm->Execute(key, "SELECT bump()", {}, &r).ok());
  bool ro = true;
  ASSERT_TRUE(rm->IsReadOnly(key, &ro).ok());
  EXPECT_FALSE(ro);
  ASSERT_TRUE(PrepareYes(rm.get(), key).ok());
  ASSERT_TRUE(rm->CommitPrepared(key).ok());
  EXPECT_EQ(Balance(1), "101");
}

TEST_F(PgRmTest, PrepareCommit_VisibleOnlyAfterCommitAndIdempotent) {
  auto rm = NewRm();
  const BranchKey key = Key("t1");
  ASSERT_TRUE(BeginTransfer(rm.get(), key, 1, -30).ok());
  bool ro = true;
  ASSERT_TRUE(rm->IsReadOnly(key, &ro).ok());
  EXPECT_FALSE(ro);
  std::string payload;
  ASSERT_TRUE(PrepareYes(rm.get(), key, &payload).ok());
  EXPECT_EQ(payload, "verdict:t1:shard_a:b0");
  EXPECT_EQ(PreparedGids(), std::vector<std::string>{"verdict:t1:shard_a:b0"});
  EXPECT_EQ(Balance(1), "100");
  std::vector<PreparedBranchInfo> list;
  ASSERT_TRUE(rm->ListPrepared(&list).ok());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key, key);
  EXPECT_GE(list[0].age_seconds, 0);
  // Out of order: the branch is prepared, not open.
  QueryResult r;
  EXPECT_EQ(rm->Execute(key, "SELECT 1", {}, &r).code(), Code::kNotFound);
  PrepareResult pr;
  EXPECT_EQ(rm->Prepare(key, {"shard_a"}, &pr).code(), Code::kFailedPrecondition);
  EXPECT_EQ(rm->Begin(key, BranchOptions()).code(), Code::kFailedPrecondition);

  ASSERT_TRUE(rm->CommitPrepared(key).ok());
  EXPECT_EQ(Balance(1), "70");
  EXPECT_TRUE(PreparedGids().empty());
  ASSERT_TRUE(rm->CommitPrepared(key).ok());  // a retried decision
  EXPECT_EQ(Balance(1), "70");
  EXPECT_EQ(rm->RollbackPrepared(key).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(rm->ListPrepared(&list).ok());
  EXPECT_TRUE(list.empty());
}

TEST_F(PgRmTest, PrepareRollback_LeavesNoTraceAndIsIdempotent) {
  auto rm = NewRm();
  const BranchKey key = Key("t2");
  ASSERT_TRUE(BeginTransfer(rm.get(), key, 2, 50).ok());
  ASSERT_TRUE(PrepareYes(rm.get(), key).ok());
  ASSERT_TRUE(rm->RollbackPrepared(key).ok());
  ASSERT_TRUE(rm->RollbackPrepared(key).ok());
  EXPECT_EQ(Balance(2), "100");
  EXPECT_TRUE(PreparedGids().empty());
  Status s = rm->CommitPrepared(key);
  EXPECT_EQ(s.code(), Code::kNotFound) << "commit after rollback is a heuristic hazard";
}

TEST_F(PgRmTest, CommitPrepared_NeverPreparedIsHeuristicHazard) {
  auto rm = NewRm();
  Status s = rm->CommitPrepared(Key("never"));
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("heuristic"), std::string::npos) << s.ToString();
  EXPECT_TRUE(rm->RollbackPrepared(Key("never")).ok()) << "presumed abort";
  EXPECT_EQ(rm->CommitPrepared(Key("bad:key")).code(), Code::kInvalidArgument);
}

TEST_F(PgRmTest, PhaseTwo_OnAnOpenBranchIsRefused) {
  auto rm = NewRm();
  const BranchKey key = Key("open");
  ASSERT_TRUE(BeginTransfer(rm.get(), key, 1, 1).ok());
  EXPECT_EQ(rm->CommitPrepared(key).code(), Code::kFailedPrecondition);
  EXPECT_EQ(rm->RollbackPrepared(key).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(rm->Rollback(key).ok());
  EXPECT_EQ(Balance(1), "100");
}

TEST_F(PgRmTest, CommitOnePhase) {
  auto rm = NewRm();
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("one"), 4, 11).ok());
  ASSERT_TRUE(rm->CommitOnePhase(Key("one")).ok());
  EXPECT_EQ(Balance(4), "111");
  EXPECT_EQ(rm->CommitOnePhase(Key("one")).code(), Code::kNotFound);
  EXPECT_TRUE(PreparedGids().empty());
  // Read-only one-phase commit.
  ASSERT_TRUE(rm->Begin(Key("ro"), BranchOptions()).ok());
  ASSERT_TRUE(rm->CommitOnePhase(Key("ro")).ok());
  // A failed branch is rolled back.
  EXPECT_EQ(BeginTransfer(rm.get(), Key("neg"), 4, -1000).code(), Code::kAborted);
  EXPECT_EQ(rm->CommitOnePhase(Key("neg")).code(), Code::kAborted);
  EXPECT_EQ(Balance(4), "111");
}

TEST_F(PgRmTest, DeferredConstraint_FailsAtPrepareOrCommit) {
  Sql("CREATE TABLE d(id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)");
  Sql("INSERT INTO d VALUES (1)");
  auto rm = NewRm();
  for (bool two_phase : {true, false}) {
    const BranchKey key = Key(two_phase ? "def2" : "def1");
    ASSERT_TRUE(rm->Begin(key, BranchOptions()).ok());
    QueryResult r;
    ASSERT_TRUE(rm->Execute(key, "INSERT INTO d VALUES (1)", {}, &r).ok());
    Status s;
    if (two_phase) {
      PrepareResult pr;
      s = rm->Prepare(key, {"shard_a"}, &pr);
    } else {
      s = rm->CommitOnePhase(key);
    }
    EXPECT_EQ(s.code(), Code::kAborted) << s.ToString();
    EXPECT_NE(s.message().find("23505"), std::string::npos) << s.ToString();
    EXPECT_TRUE(PreparedGids().empty());
    EXPECT_EQ(Value("SELECT count(*) FROM d"), "1");
    ASSERT_TRUE(rm->Rollback(key).ok());
  }
}

TEST_F(PgRmTest, LockWait_BoundedByLockTimeoutAndVotesNo) {
  auto rm = NewRm();
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("holder"), 5, 1).ok());
  const auto start = std::chrono::steady_clock::now();
  Status s = BeginTransfer(rm.get(), Key("waiter"), 5, 1, /*lock_timeout_ms=*/200);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("55P03"), std::string::npos) << s.ToString();
  EXPECT_LT(waited, std::chrono::seconds(5));
  PrepareResult pr;
  EXPECT_EQ(rm->Prepare(Key("waiter"), {"shard_a"}, &pr).code(), Code::kAborted);
  // A prepared branch keeps its row locks: a new writer still times out.
  ASSERT_TRUE(PrepareYes(rm.get(), Key("holder")).ok());
  EXPECT_EQ(BeginTransfer(rm.get(), Key("waiter2"), 5, 1, 200).code(), Code::kTimeout);
  ASSERT_TRUE(rm->Rollback(Key("waiter2")).ok());
  ASSERT_TRUE(rm->CommitPrepared(Key("holder")).ok());
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("after"), 5, 1, 200).ok());
  ASSERT_TRUE(rm->CommitOnePhase(Key("after")).ok());
  EXPECT_EQ(Balance(5), "102");
}

TEST_F(PgRmTest, Pool_ExhaustedIsUnavailable) {
  PostgresOptions o = Options();
  o.max_branch_connections = 2;
  o.acquire_timeout_ms = 100;
  PostgresResourceManager rm(o);
  ASSERT_TRUE(rm.Start().ok());
  ASSERT_TRUE(rm.Begin(Key("p1"), BranchOptions()).ok());
  ASSERT_TRUE(rm.Begin(Key("p2"), BranchOptions()).ok());
  EXPECT_EQ(rm.Begin(Key("p3"), BranchOptions()).code(), Code::kUnavailable);
  // Phase two has its own connections: a prepared branch still commits.
  QueryResult r;
  ASSERT_TRUE(rm.Execute(Key("p1"), "UPDATE accounts SET balance = 0 WHERE id = 9", {}, &r).ok());
  PrepareResult pr;
  ASSERT_TRUE(rm.Prepare(Key("p1"), {}, &pr).ok());
  ASSERT_TRUE(rm.Begin(Key("p3"), BranchOptions()).ok());
  ASSERT_TRUE(rm.CommitPrepared(Key("p1")).ok());
  EXPECT_EQ(Balance(9), "0");
}

TEST_F(PgRmTest, Stop_RollsBackOpenBranchesKeepsPreparedOnes) {
  auto rm = NewRm();
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("open"), 6, 1).ok());
  ASSERT_TRUE(BeginTransfer(rm.get(), Key("prep"), 7, 1).ok());
  ASSERT_TRUE(PrepareYes(rm.get(), Key("prep")).ok());
  rm->Stop();
  rm->Stop();  // idempotent
  EXPECT_EQ(Value("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                  " AND datname = current_database()"),
            "0");
  EXPECT_EQ(PreparedGids(), std::vector<std::string>{"verdict:prep:shard_a:b0"});
  EXPECT_EQ(rm->Begin(Key("x"), BranchOptions()).code(), Code::kFailedPrecondition);
  auto rm2 = NewRm();
  ASSERT_TRUE(rm2->RollbackPrepared(Key("prep")).ok());
}

}  // namespace
}  // namespace verdict::participant::postgres
