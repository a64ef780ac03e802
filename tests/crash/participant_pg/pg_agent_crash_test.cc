// Real `verdict-participant --backend postgres` processes killed with SIGKILL (or by a
// failpoint) after PREPARE and during COMMIT, and a PostgreSQL server shut down
// immediately under a running agent: prepared branches stay in pg_prepared_xacts, come
// back after the restart with their locks held, and commit exactly once or roll back with
// no trace (issue 3, TESTING §3). The coordinator group is unreachable throughout, so only
// the test decides. Never skips: a server or agent that cannot start fails the test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ParticipantService.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"
#include "tests/integration/participant/agent_process.h"
#include "tests/support/pg_server.h"

extern char** environ;

namespace verdict::participant {
namespace {

using Code = rpc::ParticipantCode;
using St = rpc::BranchState;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One agent process on a PostgreSQL database, with a fixed name, port and journal dir
// across restarts.
class PgAgent {
 public:
  PgAgent(std::string name, std::string dsn, std::string dir)
      : name_(std::move(name)),
        dsn_(std::move(dsn)),
        dir_(std::move(dir)),
        port_(testing::FreePort()),
        coordinators_("127.0.0.1:" + std::to_string(testing::FreePort())) {}
  ~PgAgent() { Kill9(); }
  PgAgent(const PgAgent&) = delete;
  PgAgent& operator=(const PgAgent&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return dir_ + "/" + name_ + ".log"; }

  std::vector<std::string> Args() const {
    return {testing::BinDir() + "/verdict-participant",
            "--name",
            name_,
            "--listen",
            address(),
            "--coordinators",
            coordinators_,
            "--data-dir",
            dir_ + "/" + name_ + "-data",
            "--backend",
            "postgres",
            "--pg-dsn",
            dsn_,
            "--lock-timeout-ms",
            "300",
            "--inquiry-after-ms",
            "300",
            "--tick-ms",
            "50",
            "--rpc-timeout-ms",
            "300",
            "--log-level",
            "debug"};
  }

  // Spawns the agent (with VERDICT_FAILPOINT=failpoint if given) and waits until it serves.
  void Start(const std::string& failpoint = "") {
    std::vector<std::string> args = Args();
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("VERDICT_FAILPOINT=", 0) != 0) env.push_back(*e);
    }
    if (!failpoint.empty()) env.push_back("VERDICT_FAILPOINT=" + failpoint);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot spawn " + args[0]);
    for (int i = 0; i < 300; ++i) {
      try {
        rpc::ListInDoubtResponse r;
        Client().ListInDoubt(r);
        return;
      } catch (const std::exception&) {
        Reconnect();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("agent exited during start-up:\n" + ReadFile(log()));
      }
    }
    throw std::runtime_error("agent did not start:\n" + ReadFile(log()));
  }
  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    Reconnect();
  }
  void Restart(const std::string& failpoint = "") {
    Kill9();
    Start(failpoint);
  }
  bool WaitForDeath(int timeout_ms) {
    for (int i = 0; i < timeout_ms / 10; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        Reconnect();
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  rpc::ParticipantServiceClient& Client() {
    if (channel_ == nullptr) {
      channel_ = std::make_unique<rpc::ThriftChannel>(address(), kParticipantServiceName, 10000);
      Status s = channel_->Open();
      if (!s.ok()) {
        channel_.reset();
        throw std::runtime_error(s.ToString());
      }
      client_ = std::make_unique<rpc::ParticipantServiceClient>(channel_->protocol());
    }
    return *client_;
  }
  void Reconnect() {
    client_.reset();
    channel_.reset();
  }

  // --- verbs --------------------------------------------------------------------------
  rpc::OpenBranchResponse Open(const std::string& gtid) {
    rpc::OpenBranchRequest req;
    req.gtid = gtid;
    req.branch = "b";
    req.protocol = rpc::Protocol::TWO_PC;
    rpc::OpenBranchResponse r;
    Client().OpenBranch(r, req);
    return r;
  }
  rpc::ExecuteResponse Exec(const std::string& gtid, const std::string& sql,
                            std::vector<rpc::SqlValue> params = {}) {
    rpc::ExecuteRequest req;
    req.gtid = gtid;
    req.branch = "b";
    req.sql = sql;
    req.params = std::move(params);
    rpc::ExecuteResponse r;
    Client().Execute(r, req);
    return r;
  }
  rpc::PrepareResponse Prepare(const std::string& gtid) {
    rpc::PrepareRequest req;
    req.gtid = gtid;
    req.branch = "b";
    rpc::PeerBranch self;
    self.name = name_;
    self.address = address();
    self.branch = "b";
    req.participants = {self};
    rpc::PrepareResponse r;
    Client().Prepare(r, req);
    return r;
  }
  rpc::BranchResponse Commit(const std::string& gtid) {
    rpc::CommitRequest req;
    req.gtid = gtid;
    req.branch = "b";
    rpc::BranchResponse r;
    Client().Commit(r, req);
    return r;
  }
  rpc::BranchResponse Abort(const std::string& gtid) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = "b";
    rpc::BranchResponse r;
    Client().Abort(r, req);
    return r;
  }
  St::type State(const std::string& gtid) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = "b";
    rpc::BranchStatusResponse r;
    Client().GetBranchStatus(r, req);
    return r.info.state;
  }

 private:
  std::string name_, dsn_, dir_;
  int port_;
  std::string coordinators_;
  pid_t pid_ = -1;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
};

class PgAgentCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = server_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(server_.CreateDatabase("shard").ok());
    ASSERT_TRUE(server_
                    .Exec("shard",
                          "CREATE TABLE t(id int PRIMARY KEY, v bigint NOT NULL);"
                          "INSERT INTO t VALUES (1, 0), (2, 0)")
                    .ok());
    char tmpl[] = "/tmp/verdict-pgagent.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    agent_ = std::make_unique<PgAgent>("pg1", server_.Dsn("shard"), dir_);
    ASSERT_NO_THROW(agent_->Start());
  }
  void TearDown() override {
    agent_.reset();
    if (HasFailure()) {
      std::fprintf(stderr, "--- agent log ---\n%s\n", ReadFile(dir_ + "/pg1.log").c_str());
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Opens g, adds `delta` to row `id`, prepares (YES acknowledged).
  void PrepareDelta(const std::string& g, int delta, int id = 1) {
    ASSERT_EQ(agent_->Open(g).code, Code::OK);
    rpc::ExecuteResponse e = agent_->Exec(g, "UPDATE t SET v = v + ? WHERE id = ?",
                                          {testing::Int(delta), testing::Int(id)});
    ASSERT_EQ(e.code, Code::OK) << e.message;
    rpc::PrepareResponse p = agent_->Prepare(g);
    ASSERT_EQ(p.vote, rpc::Vote::YES) << p.message;
  }
  std::string V(int id) {
    std::string v;
    EXPECT_TRUE(
        server_.QueryValue("shard", "SELECT v FROM t WHERE id = " + std::to_string(id), &v).ok());
    return v;
  }
  std::string PreparedGids() {
    std::string v;
    EXPECT_TRUE(server_
                    .QueryValue("postgres",
                                "SELECT coalesce(string_agg(gid, ',' ORDER BY gid), '') "
                                "FROM pg_prepared_xacts",
                                &v)
                    .ok());
    return v;
  }

  test_support::PgServer server_;
  std::string dir_;
  std::unique_ptr<PgAgent> agent_;
};

TEST_F(PgAgentCrashTest, KillAfterPrepare_StillPreparedThenCommitsExactlyOnce) {
  PrepareDelta("g1", 5);
  agent_->Kill9();
  EXPECT_EQ(PreparedGids(), "verdict:g1:pg1:b");  // durable in the server, not the agent
  ASSERT_NO_THROW(agent_->Start());
  EXPECT_EQ(agent_->State("g1"), St::PREPARED);
  rpc::ListInDoubtResponse l;
  agent_->Client().ListInDoubt(l);
  ASSERT_EQ(l.branches.size(), 1u);
  // Its row lock is still held: a conflicting write times out and votes NO.
  ASSERT_EQ(agent_->Open("g2").code, Code::OK);
  rpc::ExecuteResponse e = agent_->Exec("g2", "UPDATE t SET v = 100 WHERE id = 1");
  EXPECT_EQ(e.code, Code::LOCK_TIMEOUT) << e.message;
  EXPECT_EQ(agent_->Prepare("g2").vote, rpc::Vote::NO);
  EXPECT_EQ(V(1), "0");  // not visible before the decision
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);
  EXPECT_EQ(V(1), "5");
  EXPECT_EQ(PreparedGids(), "");
  agent_->Restart();
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);  // retried after another crash
  EXPECT_EQ(V(1), "5");
  EXPECT_EQ(agent_->State("g1"), St::COMMITTED);
}

TEST_F(PgAgentCrashTest, KillAfterPrepare_AbortLeavesNoTrace) {
  PrepareDelta("g1", 5);
  agent_->Restart();
  EXPECT_EQ(agent_->State("g1"), St::PREPARED);
  EXPECT_EQ(agent_->Abort("g1").code, Code::OK);
  EXPECT_EQ(V(1), "0");
  EXPECT_EQ(PreparedGids(), "");
  agent_->Restart();
  EXPECT_EQ(agent_->State("g1"), St::ABORTED);
  EXPECT_EQ(agent_->Abort("g1").code, Code::OK);
  // The row is free again.
  ASSERT_EQ(agent_->Open("g3").code, Code::OK);
  EXPECT_EQ(agent_->Exec("g3", "UPDATE t SET v = 1 WHERE id = 1").code, Code::OK);
  EXPECT_EQ(agent_->Abort("g3").code, Code::OK);
}

TEST_F(PgAgentCrashTest, KillAfterPrepareDurableBeforeReply_VoteSurvives) {
  agent_->Restart("after_prepare_durable_before_reply:kill");
  ASSERT_EQ(agent_->Open("g1").code, Code::OK);
  ASSERT_EQ(agent_->Exec("g1", "UPDATE t SET v = 9 WHERE id = 2").code, Code::OK);
  EXPECT_ANY_THROW(agent_->Prepare("g1"));  // died before the reply
  ASSERT_TRUE(agent_->WaitForDeath(5000));
  EXPECT_EQ(PreparedGids(), "verdict:g1:pg1:b");
  ASSERT_NO_THROW(agent_->Start());
  EXPECT_EQ(agent_->State("g1"), St::PREPARED);
  EXPECT_EQ(agent_->Prepare("g1").vote, rpc::Vote::YES);  // the retried vote
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);
  EXPECT_EQ(V(2), "9");
}

TEST_F(PgAgentCrashTest, CrashDuringCommit_RetriedCommitIsIdempotent) {
  PrepareDelta("g1", 7);
  agent_->Restart("after_local_commit_before_reply:kill");
  EXPECT_ANY_THROW(agent_->Commit("g1"));  // COMMIT PREPARED ran, no reply
  ASSERT_TRUE(agent_->WaitForDeath(5000));
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(V(1), "7");
  ASSERT_NO_THROW(agent_->Start());
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);
  EXPECT_EQ(V(1), "7");  // exactly once
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);
  EXPECT_EQ(V(1), "7");
}

TEST_F(PgAgentCrashTest, KillWithActiveBranch_ItIsRolledBackAndVotesNo) {
  ASSERT_EQ(agent_->Open("g1").code, Code::OK);
  ASSERT_EQ(agent_->Exec("g1", "UPDATE t SET v = 5 WHERE id = 1").code, Code::OK);
  agent_->Restart();  // its connection died with it: PostgreSQL rolled the branch back
  EXPECT_EQ(agent_->Prepare("g1").vote, rpc::Vote::NO);
  EXPECT_EQ(V(1), "0");
  EXPECT_EQ(PreparedGids(), "");
}

TEST_F(PgAgentCrashTest, ServerImmediateShutdown_PreparedBranchesSurviveAndAreResolved) {
  PrepareDelta("g1", 3, 1);
  PrepareDelta("g2", 4, 2);
  ASSERT_EQ(agent_->Open("g3").code, Code::OK);
  ASSERT_EQ(agent_->Exec("g3", "SELECT 1").code, Code::OK);
  ASSERT_TRUE(server_.ImmediateShutdown().ok());
  // While the database is down the decision cannot be applied; nothing is acknowledged.
  rpc::BranchResponse r = agent_->Commit("g1");
  EXPECT_EQ(r.code, Code::UNAVAILABLE) << r.message;
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();
  EXPECT_EQ(PreparedGids(), "verdict:g1:pg1:b,verdict:g2:pg1:b");
  EXPECT_EQ(agent_->Commit("g1").code, Code::OK);
  EXPECT_EQ(agent_->Abort("g2").code, Code::OK);
  EXPECT_EQ(V(1), "3");
  EXPECT_EQ(V(2), "0");
  EXPECT_EQ(PreparedGids(), "");
  // The unprepared branch died with the server: it votes NO.
  EXPECT_EQ(agent_->Prepare("g3").vote, rpc::Vote::NO);
  // And the agent serves new branches on fresh connections.
  PrepareDelta("g4", 1, 2);
  EXPECT_EQ(agent_->Commit("g4").code, Code::OK);
  EXPECT_EQ(V(2), "1");
}

TEST(PgAgentStartup, RefusesServerWithoutPreparedTransactions) {
  test_support::PgServerOptions options;
  options.max_prepared_transactions = 0;
  test_support::PgServer server(options);
  Status s = server.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  char tmpl[] = "/tmp/verdict-pgagent.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  PgAgent agent("pg0", server.Dsn("postgres"), tmpl);
  std::string err;
  const int code = testing::RunToExit(agent.Args(), &err);
  EXPECT_NE(code, 0);
  EXPECT_NE(err.find("max_prepared_transactions"), std::string::npos) << err;
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
}

}  // namespace
}  // namespace verdict::participant
