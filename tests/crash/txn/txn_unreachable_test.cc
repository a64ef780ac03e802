// The whole coordinator group becomes unreachable (every node SIGKILLed or SIGSTOPped) in
// the middle of a four-shard transfer (2 SQLite, 2 PostgreSQL shards), DESIGN §3-§4:
//  (a) 3PC, after a branch acknowledged PRECOMMIT: the agents commit by themselves;
//  (b) 3PC, after the votes, before any PRECOMMIT: the agents abort among themselves by
//      fencing when all can reach each other; with one agent stopped they stay prepared (or
//      fenced) and abort only after it returns;
//  (c) 2PC, after the votes: the agents stay prepared until the group returns, then follow
//      its decision (presumed abort if none was made, COMMIT if it was applied).
// The leader is held at the step with a `sleep60000` failpoint (set on every node), and the
// log line the failpoint writes tells the test that the step was reached. When the group
// comes back (restarted without failpoints) its applied decision must agree with what the
// agents did, and nothing may stay in doubt.
#include <signal.h>

#include "tests/crash/txn/crash_fixture.h"

namespace verdict::test_support {
namespace {

using P = rpc::Protocol;
using Outcome = rpc::TxnOutcome;
using St = rpc::BranchState;

constexpr auto kAgentsDecide = 30s;  // bound on termination / self-commit by the agents
constexpr auto kSettle = 40s;
constexpr auto kStayWindow = 4s;  // inquiry after 0.5 s, backoff capped at 1 s: several rounds

class TxnUnreachableTest : public TxnCrashFixture {
 protected:
  // Runs the transfer up to its registrations, then asks for Commit from another thread
  // (the call blocks at the held step; its answer, if any, is kept in *answer).
  void BeginAndCommitInBackground(const TxnSpec& spec) {
    std::unique_ptr<TxnClient> leader = cluster().LeaderClient(20s);
    ASSERT_TRUE(leader);
    ASSERT_TRUE(cluster().Snapshot(&before_).ok());
    Status s = cluster().RunTxn(*leader, spec, &run_, /*commit=*/false);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const auto& [branch, code] : run_.execute_codes) {
      ASSERT_EQ(code, rpc::ParticipantCode::OK) << branch;
    }
    committer_ = std::thread([this, address = leader->address()] {
      TxnClient c(address, 20000);
      commit_status_ = c.Commit(run_.gtid, &commit_);
    });
  }
  void JoinCommitter() {
    if (committer_.joinable()) committer_.join();
  }
  void TearDown() override {
    if (cluster_) {
      // Unblock the committer's call before joining it.
      cluster_->SignalAllCoordinators(SIGKILL);
    }
    JoinCommitter();
    TxnCrashFixture::TearDown();
  }
  // The client's answer, if it got a definite one before the group went away.
  std::optional<Outcome::type> ClientAnswer() const {
    if (commit_status_.ok() && commit_.code == rpc::ResultCode::OK &&
        commit_.outcome != Outcome::UNKNOWN) {
      return commit_.outcome;
    }
    return std::nullopt;
  }

  void WaitForStep(const std::string& site) {
    ASSERT_NE(cluster().WaitForCoordinatorLog("failpoint " + site + " hit", 20s), 0)
        << site << " was never reached";
  }

  // The group returns (restarted without failpoints): its outcome for the gtid is
  // `want`, applied the same way everywhere, and nothing stays in doubt.
  // With `may_stay_unknown` (the agents aborted by themselves, before anything reached the
  // log: nobody inquires), a client may keep hearing UNKNOWN (docs/transactions.md since
  // ca0481e); then nothing may be logged for the gtid.
  void ExpectGroupAgrees(Outcome::type want, bool may_stay_unknown = false) {
    RestartAllCoordinators();
    ASSERT_NE(cluster().WaitForLeader(30s), 0);
    Outcome::type outcome = Outcome::UNKNOWN;
    Status s = cluster().FinalOutcome(run_.gtid, may_stay_unknown ? 10s : 30s, &outcome);
    if (!s.ok() && may_stay_unknown && s.message().find("still UNKNOWN") != std::string::npos) {
      for (const auto& [id, text] : cluster().DecisionsByNode(run_.gtid)) {
        EXPECT_NE(text, "COMMIT") << "node " << id;
      }
      std::fprintf(stderr, "client hears UNKNOWN for %s: %s\n", run_.gtid.c_str(),
                   s.ToString().c_str());
      outcome = want;
    } else {
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    EXPECT_EQ(TxnOutcomeName(outcome), TxnOutcomeName(want));
    std::string detail;
    if (want == Outcome::COMMITTED) {
      EXPECT_TRUE(
          cluster().WaitForDecisionEverywhere(run_.gtid, rpc::Outcome::COMMIT, kSettle, &detail))
          << detail;
    } else {
      for (const auto& [id, text] : cluster().DecisionsByNode(run_.gtid)) {
        EXPECT_NE(text, "COMMIT") << "node " << id;
      }
    }
    EXPECT_TRUE(cluster().WaitNothingInDoubt(kSettle, &detail)) << detail;
    EXPECT_EQ(cluster().Hazards(), "");
    JoinCommitter();
    if (auto answer = ClientAnswer()) {
      EXPECT_EQ(TxnOutcomeName(*answer), TxnOutcomeName(want)) << "what the client was told";
    }
  }

  Balances before_;
  TxnRun run_;
  std::thread committer_;
  Status commit_status_;
  rpc::TxnOutcomeResponse commit_;
};

// (a) 3PC: the leader holds before proposing COMMIT, i.e. after the first PRECOMMIT
// acknowledgement; then the whole group is killed. A PRECOMMITTED branch commits on its own
// after --precommit-timeout-ms; a PREPARED one learns COMMIT from a peer (termination).
TEST_F(TxnUnreachableTest, ThreePC_AfterPrecommitAck_AgentsCommitByThemselves) {
  const std::string site = "coord_before_decide_propose";
  ASSERT_NO_FATAL_FAILURE(StartCluster(site + ":sleep60000"));
  const TxnSpec spec = Transfer(P::THREE_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep(site));
  cluster().SignalAllCoordinators(SIGKILL);

  // At least one branch accepted PRECOMMIT (it may already have committed), and none is
  // fenced or aborted.
  std::string detail;
  int precommitted = 0;
  for (const auto& br : spec.branches) {
    St::type st = St::NONE;
    ASSERT_TRUE(cluster().agent(br.shard).BranchState(run_.gtid, br.BranchName(), &st).ok());
    EXPECT_TRUE(st == St::PREPARED || st == St::PRECOMMITTED || st == St::COMMITTED)
        << br.shard << " is " << BranchStateName(st);
    precommitted += (st == St::PRECOMMITTED || st == St::COMMITTED) ? 1 : 0;
  }
  EXPECT_GE(precommitted, 1) << "the failpoint fires after a PRECOMMIT acknowledgement";

  // With no coordinator at all, every branch commits.
  EXPECT_TRUE(Settle(
      kAgentsDecide,
      [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::COMMITTED}, d); }, &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(TxnCluster::Applied(before_, spec), 10s, &detail))
      << detail;
  for (TxnAgent* agent : cluster().agents()) {
    std::vector<rpc::BranchInfo> in_doubt;
    ASSERT_TRUE(agent->InDoubt(&in_doubt).ok());
    EXPECT_TRUE(in_doubt.empty()) << agent->name();
  }
  // The group returns, finds the intent and ends at COMMIT, like the agents.
  ExpectGroupAgrees(Outcome::COMMITTED);
}

// (a') As (a), but one agent misses PRECOMMIT: it is killed while the leader pauses (400 ms,
// below the election timeout) before sending the first PRECOMMIT, so it stays PREPARED in
// its journal; the others acknowledge, the leader holds before proposing COMMIT, and the
// group is killed. Restarted with no coordinator to ask, the PREPARED agent learns from its
// PRECOMMITTED/COMMITTED peers (cooperative termination) and commits.
TEST_F(TxnUnreachableTest, ThreePC_AfterPrecommitAck_AgentThatMissedPrecommitCommitsViaPeers) {
  ASSERT_NO_FATAL_FAILURE(
      StartCluster("coord_before_precommit_send:sleep400,coord_before_decide_propose:sleep60000"));
  const TxnSpec spec = Transfer(P::THREE_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep("coord_before_precommit_send"));
  cluster().agent("s2").Kill9();
  ASSERT_NO_FATAL_FAILURE(WaitForStep("coord_before_decide_propose"));
  cluster().SignalAllCoordinators(SIGKILL);

  Status s = cluster().agent("s2").Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  St::type st = St::NONE;
  ASSERT_TRUE(cluster().agent("s2").BranchState(run_.gtid, "b-s2", &st).ok());
  // PREPARED (or COMMITTED if termination already finished). PRECOMMITTED only if the test
  // was too slow to kill it within the 400 ms pause (a loaded machine): then this run
  // exercises (a) again, which is still checked below, and says so.
  EXPECT_TRUE(st == St::PREPARED || st == St::COMMITTED || st == St::PRECOMMITTED)
      << BranchStateName(st);
  std::fprintf(stderr, "s2 after restart: %s%s\n", BranchStateName(st).c_str(),
               st == St::PRECOMMITTED ? " (PRECOMMIT reached it before the kill)" : "");

  std::string detail;
  EXPECT_TRUE(Settle(
      kAgentsDecide,
      [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::COMMITTED}, d); }, &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(TxnCluster::Applied(before_, spec), 10s, &detail))
      << detail;
  ExpectGroupAgrees(Outcome::COMMITTED);
}

// (b) 3PC: the leader holds after every YES vote, before proposing PRECOMMIT; the group is
// killed. No branch can be PRECOMMITTED, so the agents fence each other and abort.
TEST_F(TxnUnreachableTest, ThreePC_AfterVotes_AgentsAbortByFencing) {
  const std::string site = "coord_before_precommit_propose";
  ASSERT_NO_FATAL_FAILURE(StartCluster(site + ":sleep60000"));
  const TxnSpec spec = Transfer(P::THREE_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep(site));
  cluster().SignalAllCoordinators(SIGKILL);

  std::string detail;
  EXPECT_TRUE(BranchesIn(run_.gtid, spec, {St::PREPARED, St::FENCED}, &detail)) << detail;
  EXPECT_TRUE(Settle(
      kAgentsDecide, [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::ABORTED}, d); },
      &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(before_, 10s, &detail)) << detail;
  ExpectGroupAgrees(Outcome::ABORTED, /*may_stay_unknown=*/true);
}

// (b') As (b), but one agent is stopped (SIGSTOP) before the group goes away: the others
// cannot fence it, so they stay PREPARED or FENCED — never abort, never commit — until it
// returns; then everybody aborts.
TEST_F(TxnUnreachableTest, ThreePC_AfterVotes_OneAgentStopped_StayUntilItReturnsThenAbort) {
  const std::string site = "coord_before_precommit_propose";
  ASSERT_NO_FATAL_FAILURE(StartCluster(site + ":sleep60000"));
  const TxnSpec spec = Transfer(P::THREE_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep(site));
  cluster().agent("p2").Stop();
  cluster().SignalAllCoordinators(SIGKILL);

  std::string detail;
  EXPECT_TRUE(BranchesStayIn(run_.gtid, spec, {St::PREPARED, St::FENCED}, kStayWindow, &detail))
      << "with a peer unreachable a branch must stay prepared: " << detail;

  cluster().agent("p2").Continue();
  EXPECT_TRUE(Settle(
      kAgentsDecide, [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::ABORTED}, d); },
      &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(before_, 10s, &detail)) << detail;
  ExpectGroupAgrees(Outcome::ABORTED, /*may_stay_unknown=*/true);
}

// (c) 2PC: the leader holds after every YES vote, before proposing the decision; the group
// is stopped (SIGSTOP: connections hang rather than fail). Prepared 2PC branches can only
// wait. The group then returns without the transaction's volatile state: presumed abort,
// which the agents learn by inquiry.
TEST_F(TxnUnreachableTest, TwoPC_AfterVotes_AgentsStayPreparedThenFollowTheGroupsAbort) {
  const std::string site = "coord_before_decide_propose";
  ASSERT_NO_FATAL_FAILURE(StartCluster(site + ":sleep60000"));
  const TxnSpec spec = Transfer(P::TWO_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep(site));
  cluster().SignalAllCoordinators(SIGSTOP);

  std::string detail;
  EXPECT_TRUE(BranchesStayIn(run_.gtid, spec, {St::PREPARED}, kStayWindow, &detail))
      << "2PC branches must stay prepared while the group is unreachable: " << detail;

  cluster().SignalAllCoordinators(SIGKILL);
  JoinCommitter();
  RestartAllCoordinators();
  ASSERT_NE(cluster().WaitForLeader(30s), 0);
  // The agents ask the group and follow it, without anybody else asking.
  EXPECT_TRUE(Settle(
      kSettle, [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::ABORTED}, d); },
      &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(before_, 10s, &detail)) << detail;
  // Logged as a presumed ABORT for the inquiries, then forgotten after END: a client may hear
  // UNKNOWN again (see ExpectGroupAgrees).
  ExpectGroupAgrees(Outcome::ABORTED, /*may_stay_unknown=*/true);
}

// (c') 2PC: the leader holds after the COMMIT decision is applied, before phase two; the
// group is stopped. The branches stay prepared (no coordinator to tell them, and 2PC peers
// know nothing), then commit once the group returns and resumes phase two or answers their
// inquiry.
TEST_F(TxnUnreachableTest, TwoPC_AfterDecision_AgentsStayPreparedThenFollowTheGroupsCommit) {
  const std::string site = "coord_before_phase_two_send";
  ASSERT_NO_FATAL_FAILURE(StartCluster(site + ":sleep60000"));
  const TxnSpec spec = Transfer(P::TWO_PC);
  ASSERT_NO_FATAL_FAILURE(BeginAndCommitInBackground(spec));
  ASSERT_NO_FATAL_FAILURE(WaitForStep(site));
  cluster().SignalAllCoordinators(SIGSTOP);

  std::string detail;
  EXPECT_TRUE(BranchesStayIn(run_.gtid, spec, {St::PREPARED}, kStayWindow, &detail))
      << "2PC branches must stay prepared while the group is unreachable: " << detail;

  cluster().SignalAllCoordinators(SIGKILL);
  JoinCommitter();
  RestartAllCoordinators();
  ASSERT_NE(cluster().WaitForLeader(30s), 0);
  EXPECT_TRUE(Settle(
      kSettle, [&](std::string* d) { return BranchesIn(run_.gtid, spec, {St::COMMITTED}, d); },
      &detail))
      << detail;
  EXPECT_TRUE(cluster().WaitForBalances(TxnCluster::Applied(before_, spec), 10s, &detail))
      << detail;
  ExpectGroupAgrees(Outcome::COMMITTED);
}

}  // namespace
}  // namespace verdict::test_support
