// verdict-participant as a real process on loopback: flags, SIGTERM, every call's happy
// path and bad input over Thrift, and cooperative termination between two real agents
// while the coordinator group is unreachable.
#include <gtest/gtest.h>

#include "participant/rpc_names.h"
#include "tests/support/agent_process.h"
#include "tests/unit/participant/test_dirs.h"
#include "thrift/thrift_channel.h"

namespace verdict::participant {
namespace {

using test_support::AgentProcess;
using test_support::FreePort;
using test_support::Int;
using test_support::Text;
using Code = rpc::ParticipantCode;
using St = rpc::BranchState;

std::string Unreachable() { return "127.0.0.1:" + std::to_string(FreePort()); }

TEST(ParticipantFlags, BadFlagsExitNonZeroWithOneLine) {
  testing::TempDir dir;
  std::string bin = test_support::BinDir() + "/verdict-participant";
  std::vector<std::string> base = {bin,           "--name",      "p1",
                                   "--listen",    "127.0.0.1:1", "--coordinators",
                                   "127.0.0.1:2", "--data-dir",  dir.path()};
  struct Case {
    std::vector<std::string> extra;
    std::string expect;
  } cases[] = {
      {{"--backend", "sqlite"}, "--sqlite-path"},
      {{"--backend", "oracle"}, "--backend"},
      {{"--backend", "postgres"}, "--pg-dsn"},
      {{"--backend", "postgres", "--pg-dsn", "x", "--pg-named-statements", "maybe"},
       "pg-named-statements"},
      {{"--backend", "sqlite", "--sqlite-path", "x", "--bogus"}, "bogus"},
      {{"--backend", "sqlite", "--sqlite-path", "x", "--lock-timeout-ms", "0"}, "lock-timeout"},
      {{"--backend", "sqlite", "--sqlite-path", "x", "--commit-evidence-retention-ms", "1000"},
       "commit-evidence-retention"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    std::string err;
    EXPECT_NE(test_support::RunToExit(args, &err), 0) << c.expect;
    EXPECT_NE(err.find(c.expect), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  std::string err;
  EXPECT_NE(test_support::RunToExit({bin, "--backend", "sqlite"}, &err), 0);
  EXPECT_NE(test_support::RunToExit(
                {bin, "--name", "p1", "--listen", "nohostport", "--coordinators", "127.0.0.1:2",
                 "--data-dir", dir.path(), "--backend", "sqlite", "--sqlite-path", "x"},
                &err),
            0);
  EXPECT_NE(err.find("HOST:PORT"), std::string::npos) << err;
}

class ParticipantRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_ = std::make_unique<AgentProcess>("p1", dir_.path(), Unreachable());
    agent_->Start();
    agent_->CreateTable(3);
  }
  testing::TempDir dir_;
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(ParticipantRpcTest, Sigterm_ExitsCleanly) { EXPECT_EQ(agent_->Terminate(), 0); }

TEST_F(ParticipantRpcTest, TwoPhase_HappyPathTyped) {
  AgentProcess& a = *agent_;
  EXPECT_EQ(a.Open("g1", "b").code, Code::OK);
  EXPECT_EQ(a.Open("g1", "b").code, Code::OK);
  rpc::ExecuteResponse e = a.Exec("g1", "b", "UPDATE t SET v = ? WHERE id = ?", {Int(42), Int(1)});
  EXPECT_EQ(e.code, Code::OK) << e.message;
  EXPECT_EQ(e.rows_affected, 1);
  e = a.Exec("g1", "b", "SELECT v, ? AS s, NULL AS n FROM t WHERE id = 1", {Text("hi")});
  ASSERT_EQ(e.rows.size(), 1u);
  EXPECT_EQ(e.columns, (std::vector<std::string>{"v", "s", "n"}));
  EXPECT_EQ(e.rows[0].values[0].type, rpc::SqlType::INTEGER);
  EXPECT_EQ(e.rows[0].values[0].integer, 42);
  EXPECT_EQ(e.rows[0].values[1].type, rpc::SqlType::TEXT);
  EXPECT_EQ(e.rows[0].values[1].bytes, "hi");
  EXPECT_EQ(e.rows[0].values[2].type, rpc::SqlType::SQL_NULL);
  rpc::PrepareResponse p = a.Prepare("g1", "b");
  EXPECT_EQ(p.vote, rpc::Vote::YES) << p.message;
  EXPECT_EQ(p.state, St::PREPARED);
  rpc::ListInDoubtResponse l;
  a.Client().ListInDoubt(l);
  ASSERT_EQ(l.branches.size(), 1u);
  EXPECT_EQ(l.branches[0].gtid, "g1");
  EXPECT_EQ(l.branches[0].participants.size(), 1u);
  EXPECT_EQ(a.Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(a.Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(a.State("g1", "b"), St::COMMITTED);
  EXPECT_EQ(a.V(1), 42);
}

// ExecuteRequest.open: the first statement opens the branch (one round trip); a retry
// of it is deduplicated by seq; bad options and a branch past ACTIVE are refused.
TEST_F(ParticipantRpcTest, ExecuteOpensTheBranch) {
  AgentProcess& a = *agent_;
  auto execute = [&](const std::string& gtid, int64_t seq, rpc::Protocol::type protocol) {
    rpc::ExecuteRequest req;
    req.gtid = gtid;
    req.branch = "b";
    req.sql = "UPDATE t SET v = v + 1 WHERE id = 2";
    req.seq = seq;
    req.open.protocol = protocol;
    req.__isset.open = true;
    rpc::ExecuteResponse out;
    a.Client().Execute(out, req);
    return out;
  };
  rpc::ExecuteResponse e = execute("g1", 1, rpc::Protocol::THREE_PC);
  EXPECT_EQ(e.code, Code::OK) << e.message;
  EXPECT_EQ(e.rows_affected, 1);
  EXPECT_EQ(e.state, St::ACTIVE);
  EXPECT_EQ(execute("g1", 1, rpc::Protocol::THREE_PC).code, Code::OK);  // a retry: not run again
  rpc::PrepareResponse p = a.Prepare("g1", "b");
  EXPECT_EQ(p.vote, rpc::Vote::YES) << p.message;
  rpc::BranchStatusResponse st = a.Status("g1", "b");
  EXPECT_EQ(st.info.protocol, rpc::Protocol::THREE_PC);
  e = execute("g1", 2, rpc::Protocol::THREE_PC);
  EXPECT_EQ(e.code, Code::WRONG_STATE) << e.message;
  EXPECT_EQ(e.state, St::PREPARED);
  e = execute("g2", 1, static_cast<rpc::Protocol::type>(7));
  EXPECT_EQ(e.code, Code::INVALID_ARGUMENT) << e.message;
  EXPECT_EQ(a.State("g2", "b"), St::NONE);
  EXPECT_EQ(a.Abort("g1", "b").code, Code::OK);
  EXPECT_EQ(a.V(2), 0);
}

// --local-socket: the same service on a Unix-domain socket, reached as unix:PATH; a socket
// file left by a killed agent does not stop the next start.
TEST(ParticipantLocalSocketTest, ServesOnUnixSocketAndReplacesAStaleOne) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/agent.sock";
  AgentProcess a("p1", dir.path(), "127.0.0.1:" + std::to_string(FreePort()));
  a.extra_flags["--local-socket"] = path;
  a.Start();
  a.CreateTable(2);
  for (int round = 0; round < 2; ++round) {
    rpc::ThriftChannel ch("unix:" + path, kParticipantServiceName, 5000);
    ASSERT_TRUE(ch.Open().ok());
    rpc::ParticipantServiceClient c(ch.protocol());
    const std::string gtid = "u" + std::to_string(round);
    rpc::ExecuteRequest e;
    e.gtid = gtid;
    e.branch = "b";
    e.sql = "UPDATE t SET v = v + 1 WHERE id = 1";
    e.seq = 1;
    e.__isset.open = true;
    rpc::ExecuteResponse er;
    c.Execute(er, e);
    ASSERT_EQ(er.code, Code::OK) << er.message;
    rpc::CommitRequest commit;
    commit.gtid = gtid;
    commit.branch = "b";
    commit.one_phase = true;
    rpc::BranchResponse cr;
    c.Commit(cr, commit);
    EXPECT_EQ(cr.code, Code::OK) << cr.message;
    a.Kill9();  // leaves the socket file behind
    a.Start();
  }
  EXPECT_EQ(a.V(1), 2);
  // A second agent cannot take the socket of a live one: it refuses to start.
  testing::TempDir dir2;
  std::string err;
  EXPECT_EQ(
      test_support::RunToExit(
          {test_support::BinDir() + "/verdict-participant", "--name", "p2", "--listen",
           "127.0.0.1:" + std::to_string(FreePort()), "--coordinators",
           "127.0.0.1:" + std::to_string(FreePort()), "--data-dir", dir2.path() + "/d", "--backend",
           "sqlite", "--sqlite-path", dir2.path() + "/x.db", "--local-socket", path},
          &err),
      1)
      << err;
  EXPECT_NE(err.find("a server is using it"), std::string::npos) << err;
  rpc::ThriftChannel bad("unix:", kParticipantServiceName, 1000);
  EXPECT_EQ(bad.Open().code(), Status::Code::kInvalidArgument);
}

TEST_F(ParticipantRpcTest, BadInput_ClearErrors) {
  AgentProcess& a = *agent_;
  EXPECT_EQ(a.Open("", "b").code, Code::INVALID_ARGUMENT);
  EXPECT_EQ(a.Open("g:1", "b").code, Code::INVALID_ARGUMENT);
  EXPECT_EQ(a.Open(std::string(300, 'g'), "b").code, Code::INVALID_ARGUMENT);
  EXPECT_EQ(a.Open("g 1", "b").code, Code::INVALID_ARGUMENT);
  {
    rpc::OpenBranchRequest req;
    req.gtid = "g1";
    req.branch = "b";
    req.protocol = static_cast<rpc::Protocol::type>(7);
    rpc::OpenBranchResponse r;
    a.Client().OpenBranch(r, req);
    EXPECT_EQ(r.code, Code::INVALID_ARGUMENT);
  }
  ASSERT_EQ(a.Open("g1", "b").code, Code::OK);
  rpc::SqlValue bad;
  bad.type = rpc::SqlType::INTEGER;  // no integer set
  EXPECT_EQ(a.Exec("g1", "b", "SELECT ?", {bad}).code, Code::INVALID_ARGUMENT);
  EXPECT_EQ(a.Exec("g1", "b", "").code, Code::INVALID_ARGUMENT);
  EXPECT_EQ(a.State("g1", "b"), St::ACTIVE);  // request errors change nothing
  EXPECT_EQ(a.Exec("nope", "b", "SELECT 1").code, Code::NOT_FOUND);
  EXPECT_EQ(a.Commit("g1", "b").code, Code::WRONG_STATE);  // commit before prepare
  EXPECT_EQ(a.Commit("zzz", "b").code, Code::NOT_FOUND);   // heuristic hazard
  EXPECT_EQ(a.Abort("zzz", "b").code, Code::OK);           // presumed abort
  ASSERT_EQ(a.Prepare("g1", "b").vote, rpc::Vote::READ_ONLY);
  EXPECT_NE(a.State("g1", "b"), St::COMMITTED);  // left the transaction; not evidence
  ASSERT_EQ(a.Open("g2", "b").code, Code::OK);
  a.Exec("g2", "b", "UPDATE t SET v = 1 WHERE id = 2");
  ASSERT_EQ(a.Prepare("g2", "b").vote, rpc::Vote::YES);
  EXPECT_EQ(a.Exec("g2", "b", "SELECT 1").code, Code::WRONG_STATE);  // execute after prepare
  EXPECT_EQ(a.Precommit("g2", "b").code, Code::WRONG_STATE);         // 2PC branch
  EXPECT_EQ(a.Abort("g2", "b").code, Code::OK);
  rpc::PrepareResponse p = a.Prepare("g2", "b");  // prepare after abort
  EXPECT_EQ(p.code, Code::WRONG_STATE);
  EXPECT_EQ(p.vote, rpc::Vote::NO);
  EXPECT_EQ(a.V(2), 0);
}

TEST_F(ParticipantRpcTest, ConstraintViolationVotesNo) {
  AgentProcess& a = *agent_;
  a.Open("g1", "b");
  rpc::ExecuteResponse e = a.Exec("g1", "b", "INSERT INTO t VALUES (1, 1)");
  EXPECT_EQ(e.code, Code::SQL_ERROR);
  EXPECT_NE(e.message.find("constraint"), std::string::npos) << e.message;
  EXPECT_EQ(e.state, St::ABORTED);
  EXPECT_EQ(a.Prepare("g1", "b").vote, rpc::Vote::NO);
}

TEST_F(ParticipantRpcTest, ThreePhase_Calls) {
  AgentProcess& a = *agent_;
  for (const char* g : {"g1", "g2"}) {
    a.Open(g, "b", rpc::Protocol::THREE_PC);
    a.Exec(g, "b", std::string("UPDATE t SET v = 1 WHERE id = ") + (g[1] == '1' ? "1" : "2"));
    ASSERT_EQ(a.Prepare(g, "b").vote, rpc::Vote::YES);
  }
  EXPECT_EQ(a.Precommit("g1", "b").code, Code::OK);
  EXPECT_EQ(a.Precommit("g1", "b").code, Code::OK);
  EXPECT_EQ(a.Fence("g1", "b").code, Code::PRECOMMITTED);
  EXPECT_EQ(a.Fence("g2", "b").code, Code::OK);
  EXPECT_EQ(a.Precommit("g2", "b").code, Code::FENCED);
  EXPECT_EQ(a.Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(a.Abort("g2", "b").code, Code::OK);
  EXPECT_EQ(a.V(1), 1);
  EXPECT_EQ(a.V(2), 0);
}

// Two real agents, coordinator group unreachable.
class CooperativeTerminationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string coord = Unreachable();
    a_ = std::make_unique<AgentProcess>("pa", dir_.path(), coord);
    b_ = std::make_unique<AgentProcess>("pb", dir_.path(), coord);
    a_->Start();
    b_->Start();
    a_->CreateTable(1);
    b_->CreateTable(1);
  }
  void PrepareBoth(const std::string& g, rpc::Protocol::type p) {
    std::vector<rpc::PeerBranch> parts = {a_->Peer("b"), b_->Peer("b")};
    for (AgentProcess* n : {a_.get(), b_.get()}) {
      ASSERT_EQ(n->Open(g, "b", p).code, Code::OK);
      ASSERT_EQ(n->Exec(g, "b", "UPDATE t SET v = v + 1 WHERE id = 1").code, Code::OK);
      ASSERT_EQ(n->Prepare(g, "b", parts).vote, rpc::Vote::YES);
    }
  }
  testing::TempDir dir_;
  std::unique_ptr<AgentProcess> a_, b_;
};

TEST_F(CooperativeTerminationTest, TwoPC_PeerCommittedSpreads) {
  PrepareBoth("g1", rpc::Protocol::TWO_PC);
  ASSERT_EQ(b_->Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(a_->WaitState("g1", "b", St::COMMITTED, 10000), St::COMMITTED);
  EXPECT_EQ(a_->V(1), 1);
}

// Bug 1 regression over Thrift: branch r on pa votes READ_ONLY, pb's branch votes YES and
// the third branch (its agent unreachable, the only one that knows the coordinator
// aborted) voted NO. r is reported READ_ONLY (not COMMITTED), so pb must stay prepared.
TEST_F(CooperativeTerminationTest, TwoPC_ReadOnlyPeerIsNoEvidenceOfCommit) {
  rpc::PeerBranch gone;
  gone.name = "pc";
  gone.address = Unreachable();
  gone.branch = "b";
  std::vector<rpc::PeerBranch> parts = {a_->Peer("r"), b_->Peer("b"), gone};
  ASSERT_EQ(a_->Open("g1", "r").code, Code::OK);
  ASSERT_EQ(a_->Exec("g1", "r", "SELECT v FROM t WHERE id = 1").code, Code::OK);
  ASSERT_EQ(a_->Prepare("g1", "r", parts).vote, rpc::Vote::READ_ONLY);
  EXPECT_EQ(static_cast<int>(a_->State("g1", "r")), 7);  // READ_ONLY, not COMMITTED
  ASSERT_EQ(b_->Open("g1", "b").code, Code::OK);
  ASSERT_EQ(b_->Exec("g1", "b", "UPDATE t SET v = v + 1 WHERE id = 1").code, Code::OK);
  ASSERT_EQ(b_->Prepare("g1", "b", parts).vote, rpc::Vote::YES);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_EQ(b_->State("g1", "b"), St::PREPARED);
  EXPECT_EQ(static_cast<int>(a_->State("g1", "r")), 7);
}

// 3PC over Thrift: with the only YES voter fenced, its READ_ONLY peer (which never accepts
// PRECOMMIT) does not keep termination from aborting.
TEST_F(CooperativeTerminationTest, ThreePC_ReadOnlyPeerSkippedByAllFenced) {
  std::vector<rpc::PeerBranch> parts = {a_->Peer("r"), b_->Peer("b")};
  ASSERT_EQ(a_->Open("g1", "r", rpc::Protocol::THREE_PC).code, Code::OK);
  ASSERT_EQ(a_->Prepare("g1", "r", parts).vote, rpc::Vote::READ_ONLY);
  ASSERT_EQ(b_->Open("g1", "b", rpc::Protocol::THREE_PC).code, Code::OK);
  ASSERT_EQ(b_->Exec("g1", "b", "UPDATE t SET v = v + 1 WHERE id = 1").code, Code::OK);
  ASSERT_EQ(b_->Prepare("g1", "b", parts).vote, rpc::Vote::YES);
  EXPECT_EQ(b_->WaitState("g1", "b", St::ABORTED, 10000), St::ABORTED);
  EXPECT_EQ(a_->Precommit("g1", "r").code, Code::WRONG_STATE);
  EXPECT_EQ(static_cast<int>(a_->State("g1", "r")), 7);
  EXPECT_EQ(b_->V(1), 0);
}

TEST_F(CooperativeTerminationTest, TwoPC_AllPreparedStaysPrepared) {
  PrepareBoth("g1", rpc::Protocol::TWO_PC);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_EQ(a_->State("g1", "b"), St::PREPARED);
  EXPECT_EQ(b_->State("g1", "b"), St::PREPARED);
}

TEST_F(CooperativeTerminationTest, ThreePC_AllFencedAborts) {
  PrepareBoth("g1", rpc::Protocol::THREE_PC);
  EXPECT_EQ(a_->WaitState("g1", "b", St::ABORTED, 10000), St::ABORTED);
  EXPECT_EQ(b_->WaitState("g1", "b", St::ABORTED, 10000), St::ABORTED);
  EXPECT_EQ(a_->V(1), 0);
  EXPECT_EQ(b_->V(1), 0);
}

TEST_F(CooperativeTerminationTest, ThreePC_PrecommittedPeerCommitsEveryone) {
  PrepareBoth("g1", rpc::Protocol::THREE_PC);
  ASSERT_EQ(b_->Precommit("g1", "b").code, Code::OK);
  EXPECT_EQ(a_->WaitState("g1", "b", St::COMMITTED, 10000), St::COMMITTED);
  EXPECT_EQ(b_->WaitState("g1", "b", St::COMMITTED, 10000), St::COMMITTED);
  EXPECT_EQ(a_->V(1), 1);
  EXPECT_EQ(b_->V(1), 1);
}

}  // namespace
}  // namespace verdict::participant
