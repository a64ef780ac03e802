// Test fixture for PostgresResourceManager against a real PostgreSQL server (PgServer):
// one server per test suite, a fresh database per test, and small verbs (NewRm, Begin, Exec,
// Prepare, Count, PreparedGids) so tests read as scripts. The server never "skips": if it
// cannot start, every test fails with the reason. Single-threaded unless a test says so.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <string>
#include <vector>

#include "participant/postgres/postgres_resource_manager.h"
#include "tests/support/pg_server.h"

namespace verdict::participant::postgres {

class PgRmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new test_support::PgServer();
    start_status_ = new Status(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete start_status_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(start_status_->ok())
        << "PostgreSQL test server did not start: " << start_status_->ToString();
    db_ = DatabaseNameForThisTest();
    ASSERT_TRUE(server_->CreateDatabase(db_).ok());
    Sql("CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))");
    Sql("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g");
  }

  static std::string DatabaseNameForThisTest() {
    std::string name = "t_";
    for (char c : std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
      name += std::isalnum(static_cast<unsigned char>(c))
                  ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                  : '_';
    }
    return name.substr(0, 60);
  }

  PostgresOptions Options(const std::string& participant = "shard_a", std::string db = "") {
    PostgresOptions o;
    o.dsn = server_->Dsn(db.empty() ? db_ : db);
    o.participant_name = participant;
    o.max_branch_connections = 16;
    o.connect_timeout_ms = 3000;
    o.acquire_timeout_ms = 2000;
    return o;
  }

  // A started RM (the test fails if Start does).
  std::unique_ptr<PostgresResourceManager> NewRm(const std::string& participant = "shard_a",
                                                 const std::string& db = "") {
    auto rm = std::make_unique<PostgresResourceManager>(Options(participant, db));
    Status s = rm->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return rm;
  }

  // Runs SQL on the test database directly (outside any branch); fails the test on error.
  void Sql(const std::string& sql) {
    Status s = server_->Exec(db_, sql);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string Value(const std::string& sql, const std::string& db = "") {
    std::string v;
    Status s = server_->QueryValue(db.empty() ? db_ : db, sql, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }
  std::string Balance(int id) {
    return Value("SELECT balance FROM accounts WHERE id = " + std::to_string(id));
  }
  // gids in pg_prepared_xacts for any database of the server, sorted.
  std::vector<std::string> PreparedGids() {
    std::vector<std::vector<std::string>> rows;
    EXPECT_TRUE(
        server_->Query("postgres", "SELECT gid FROM pg_prepared_xacts ORDER BY gid", &rows).ok());
    std::vector<std::string> gids;
    for (auto& r : rows) gids.push_back(r[0]);
    return gids;
  }

  static BranchKey Key(const std::string& gtid, const std::string& branch = "b0") {
    return BranchKey{gtid, branch};
  }

  // Begin + one UPDATE that adds `delta` to account `id`; returns the Execute status.
  Status BeginTransfer(ResourceManager* rm, const BranchKey& key, int id, int delta,
                       int lock_timeout_ms = 2000) {
    BranchOptions bo;
    bo.lock_timeout_ms = lock_timeout_ms;
    VERDICT_RETURN_IF_ERROR(rm->Begin(key, bo));
    QueryResult r;
    return rm->Execute(key, "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                       {SqlValue::Integer(delta), SqlValue::Integer(id)}, &r);
  }
  Status PrepareYes(ResourceManager* rm, const BranchKey& key, std::string* payload = nullptr) {
    PrepareResult pr;
    VERDICT_RETURN_IF_ERROR(rm->Prepare(key, {"shard_a"}, &pr));
    if (pr.vote != PrepareVote::kYes) return Status::Aborted("vote was not YES");
    if (payload != nullptr) *payload = pr.recovery_payload;
    return Status::OK();
  }

  static test_support::PgServer* server_;
  static Status* start_status_;
  std::string db_;
};

inline test_support::PgServer* PgRmTest::server_ = nullptr;
inline Status* PgRmTest::start_status_ = nullptr;

}  // namespace verdict::participant::postgres
