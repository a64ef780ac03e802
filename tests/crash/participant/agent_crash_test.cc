// Real verdict-participant processes killed with SIGKILL (or by a failpoint) at protocol
// steps, then restarted: prepared branches come back with their locks, decisions apply
// exactly once, 3PC states hold (DESIGN §4, TESTING §3).
#include <gtest/gtest.h>

#include "tests/support/agent_process.h"
#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant {
namespace {

using test_support::AgentProcess;
using test_support::FreePort;
using Code = rpc::ParticipantCode;
using St = rpc::BranchState;

class AgentCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The coordinator group is unreachable: nothing resolves branches behind our back.
    agent_ = std::make_unique<AgentProcess>("p1", dir_.path(),
                                            "127.0.0.1:" + std::to_string(FreePort()));
    // A lonely 2PC branch with no peers never terminates by itself.
    agent_->extra_flags["--precommit-timeout-ms"] = "1500";
    agent_->Start();
    agent_->CreateTable(2);
  }
  // Opens g, adds `delta` to row 1, prepares (YES acknowledged).
  void PrepareDelta(const std::string& g, int delta, rpc::Protocol::type p = rpc::Protocol::TWO_PC,
                    int row = 1) {
    ASSERT_EQ(agent_->Open(g, "b", p).code, Code::OK);
    ASSERT_EQ(agent_
                  ->Exec(g, "b",
                         "UPDATE t SET v = v + " + std::to_string(delta) +
                             " WHERE id = " + std::to_string(row))
                  .code,
              Code::OK);
    ASSERT_EQ(agent_->Prepare(g, "b").vote, rpc::Vote::YES);
  }
  void Restart(const std::string& failpoint = "") {
    agent_->Kill9();
    agent_->Start(failpoint);
  }
  testing::TempDir dir_;
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(AgentCrashTest, KillAfterPrepare_RestartCommitExactlyOnce) {
  PrepareDelta("g1", 5);
  Restart();
  EXPECT_EQ(agent_->State("g1", "b"), St::PREPARED);
  rpc::ListInDoubtResponse l;
  agent_->Client().ListInDoubt(l);
  ASSERT_EQ(l.branches.size(), 1u);
  // Its locks are held: a conflicting write from another branch waits, then fails.
  agent_->Open("g2", "b");
  rpc::ExecuteResponse e = agent_->Exec("g2", "b", "UPDATE t SET v = 100 WHERE id = 1");
  EXPECT_EQ(e.code, Code::LOCK_TIMEOUT) << e.message;
  EXPECT_EQ(agent_->Prepare("g2", "b").vote, rpc::Vote::NO);
  EXPECT_EQ(agent_->V(1), 0);  // not visible before the decision
  EXPECT_EQ(agent_->Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(agent_->V(1), 5);
  Restart();
  EXPECT_EQ(agent_->Commit("g1", "b").code, Code::OK);  // retried after another crash
  EXPECT_EQ(agent_->V(1), 5);
  EXPECT_EQ(agent_->State("g1", "b"), St::COMMITTED);
}

TEST_F(AgentCrashTest, KillAfterPrepare_RestartAbortLeavesNoTrace) {
  PrepareDelta("g1", 5);
  Restart();
  EXPECT_EQ(agent_->State("g1", "b"), St::PREPARED);
  EXPECT_EQ(agent_->Abort("g1", "b").code, Code::OK);
  EXPECT_EQ(agent_->V(1), 0);
  Restart();
  EXPECT_EQ(agent_->State("g1", "b"), St::ABORTED);
  EXPECT_EQ(agent_->V(1), 0);
  agent_->Open("g3", "b");
  EXPECT_EQ(agent_->Exec("g3", "b", "UPDATE t SET v = 1 WHERE id = 1").code, Code::OK);
}

TEST_F(AgentCrashTest, FailpointAfterPrepareDurable_VoteSurvives) {
  agent_->Kill9();
  agent_->Start("after_prepare_durable_before_reply:kill");
  agent_->Open("g1", "b");
  agent_->Exec("g1", "b", "UPDATE t SET v = 9 WHERE id = 2");
  EXPECT_ANY_THROW(agent_->Prepare("g1", "b"));  // died before the reply
  EXPECT_TRUE(agent_->WaitForDeath(5000));
  agent_->Start();
  EXPECT_EQ(agent_->State("g1", "b"), St::PREPARED);
  EXPECT_EQ(agent_->Prepare("g1", "b").vote, rpc::Vote::YES);  // the retried vote
  EXPECT_EQ(agent_->Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(agent_->V(2), 9);
}

TEST_F(AgentCrashTest, CrashDuringCommit_RetriedCommitIsIdempotent) {
  PrepareDelta("g1", 7);
  Restart("after_local_commit_before_reply:kill");
  EXPECT_ANY_THROW(agent_->Commit("g1", "b"));  // the local commit happened, no reply
  EXPECT_TRUE(agent_->WaitForDeath(5000));
  agent_->Start();
  // The journal had no COMMITTED record yet; the commit marker the local commit wrote
  // tells recovery that the branch committed.
  EXPECT_EQ(agent_->State("g1", "b"), St::COMMITTED);
  EXPECT_EQ(agent_->Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(agent_->V(1), 7);  // exactly once
  EXPECT_EQ(agent_->Commit("g1", "b").code, Code::OK);
  EXPECT_EQ(agent_->V(1), 7);
}

TEST_F(AgentCrashTest, ThreePhase_StatesSurviveKill) {
  agent_->extra_flags["--precommit-timeout-ms"] = "60000";  // no self-commit in this test
  Restart();
  PrepareDelta("g1", 1, rpc::Protocol::THREE_PC, 1);
  PrepareDelta("g2", 1, rpc::Protocol::THREE_PC, 2);
  ASSERT_EQ(agent_->Precommit("g1", "b").code, Code::OK);
  ASSERT_EQ(agent_->Fence("g2", "b").code, Code::OK);
  Restart();
  EXPECT_EQ(agent_->State("g1", "b"), St::PRECOMMITTED);
  EXPECT_EQ(agent_->State("g2", "b"), St::FENCED);
  rpc::BranchResponse r = agent_->Fence("g1", "b");
  EXPECT_EQ(r.code, Code::PRECOMMITTED);
  r = agent_->Precommit("g2", "b");
  EXPECT_EQ(r.code, Code::FENCED);
  EXPECT_EQ(r.state, St::FENCED);
}

TEST_F(AgentCrashTest, ThreePhase_PrecommittedCommitsOnTimeoutAfterKill) {
  PrepareDelta("g1", 3, rpc::Protocol::THREE_PC);
  ASSERT_EQ(agent_->Precommit("g1", "b").code, Code::OK);
  Restart();
  EXPECT_EQ(agent_->WaitState("g1", "b", St::COMMITTED, 15000), St::COMMITTED);
  EXPECT_EQ(agent_->V(1), 3);
}

TEST_F(AgentCrashTest, KillWithActiveBranch_IsAborted) {
  agent_->Open("g1", "b");
  agent_->Exec("g1", "b", "UPDATE t SET v = 5 WHERE id = 1");
  Restart();
  EXPECT_EQ(agent_->State("g1", "b"), St::NONE);
  EXPECT_EQ(agent_->Prepare("g1", "b").vote, rpc::Vote::NO);
  EXPECT_EQ(agent_->V(1), 0);
}

}  // namespace
}  // namespace verdict::participant
