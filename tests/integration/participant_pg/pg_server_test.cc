// Tests of the PgServer fixture itself: it starts, restarts after an immediate shutdown with a
// prepared transaction kept, and honours max_prepared_transactions.
#include "tests/support/pg_server.h"

#include <gtest/gtest.h>

#include <string>

namespace verdict::test_support {
namespace {

TEST(PgServer, Start_AcceptsQueriesWithTwoPhaseCommitEnabled) {
  PgServer server;
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  std::string value;
  ASSERT_TRUE(server.QueryValue("postgres", "SHOW max_prepared_transactions", &value).ok());
  EXPECT_EQ(value, "64");
  ASSERT_TRUE(server.QueryValue("postgres", "SHOW fsync", &value).ok());
  EXPECT_EQ(value, "on");
  ASSERT_TRUE(server.CreateDatabase("shard_a").ok());
  ASSERT_TRUE(server.QueryValue("shard_a", "SELECT current_database()", &value).ok());
  EXPECT_EQ(value, "shard_a");
}

TEST(PgServer, ImmediateShutdown_PreparedTransactionSurvivesRestart) {
  PgServer server;
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(server.Exec("postgres", "CREATE TABLE t(x int)").ok());
  ASSERT_TRUE(
      server.Exec("postgres", "BEGIN; INSERT INTO t VALUES (7); PREPARE TRANSACTION 'fx1'").ok());
  ASSERT_TRUE(server.ImmediateShutdown().ok());
  EXPECT_FALSE(server.running());
  EXPECT_FALSE(server.Exec("postgres", "SELECT 1").ok());
  ASSERT_TRUE(server.Restart().ok()) << server.LogTail();
  std::string value;
  ASSERT_TRUE(server.QueryValue("postgres", "SELECT count(*) FROM pg_prepared_xacts", &value).ok());
  EXPECT_EQ(value, "1");
  ASSERT_TRUE(server.Exec("postgres", "COMMIT PREPARED 'fx1'").ok());
  ASSERT_TRUE(server.QueryValue("postgres", "SELECT sum(x) FROM t", &value).ok());
  EXPECT_EQ(value, "7");
}

TEST(PgServer, MaxPreparedZero_PrepareTransactionIsRefused) {
  PgServerOptions options;
  options.max_prepared_transactions = 0;
  PgServer server(options);
  ASSERT_TRUE(server.Start().ok());
  Status s = server.Exec("postgres", "BEGIN; PREPARE TRANSACTION 'x'");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("prepared transactions are disabled"), std::string::npos)
      << s.ToString();
}

TEST(PgServer, Query_ErrorCarriesServerMessage) {
  PgServer server;
  ASSERT_TRUE(server.Start().ok());
  Status s = server.Exec("postgres", "SELECT * FROM no_such_table");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no_such_table"), std::string::npos) << s.ToString();
}

TEST(PgServer, Start_FailureExplainsWhyWithTheServerLog) {
  PgServerOptions options;
  options.extra_config = {"shared_buffers = 'not a size'"};
  PgServer server(options);
  Status s = server.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("pg_ctl start"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("shared_buffers"), std::string::npos) << s.ToString();
  EXPECT_FALSE(server.running());
}

}  // namespace
}  // namespace verdict::test_support
