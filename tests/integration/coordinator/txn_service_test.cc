// Process-level tests of the coordinator's transaction calls that need no participant
// agent: validation, redirection, the registry, inquiries, empty and abandoned
// transactions, leader change, and verdictctl's transaction commands. Flows with real
// agents are in tests/integration/txn/ and tests/crash/txn/.
#include <gtest/gtest.h>

#include <thread>

#include "ParticipantRegistryService.h"
#include "tests/integration/coordinator/cluster_harness.h"
#include "thrift/thrift_channel.h"

namespace verdict::testing {
namespace {

using namespace std::chrono_literals;
constexpr auto kLeaderTimeout = 20s;

class TxnServiceTest : public ::testing::Test {
 protected:
  int StartCluster() {
    cluster_ = std::make_unique<CoordinatorCluster>(3);
    cluster_->StartAll();
    int leader = cluster_->WaitForLeader(kLeaderTimeout);
    EXPECT_NE(leader, 0) << "no leader; node 1 log:\n" << cluster_->Log(1);
    return leader;
  }
  int Follower(int leader) const { return leader == 1 ? 2 : 1; }

  // Runs `f(rpc::CoordinatorServiceClient&)` on node `id`.
  template <typename F>
  void On(int id, F&& f) {
    auto client = cluster_->Client(id);
    ASSERT_TRUE(client != nullptr);
    ASSERT_TRUE(client->Invoke(f).ok());
  }
  template <typename F>
  void OnRegistry(int id, F&& f) {
    rpc::ThriftChannel ch(cluster_->Address(id), "Registry", 10000);
    ASSERT_TRUE(ch.Open().ok());
    rpc::ParticipantRegistryServiceClient client(ch.protocol());
    f(client);
  }

  rpc::BeginResponse Begin(int id, rpc::Protocol::type protocol = rpc::Protocol::TWO_PC) {
    rpc::BeginRequest req;
    req.protocol = protocol;
    rpc::BeginResponse resp;
    On(id, [&](rpc::CoordinatorServiceClient& c) { c.Begin(resp, req); });
    return resp;
  }
  rpc::RegisterBranchResponse RegisterBranch(int id, const std::string& gtid,
                                             const std::string& participant,
                                             const std::string& branch) {
    rpc::RegisterBranchRequest req;
    req.gtid = gtid;
    req.participant = participant;
    req.branch = branch;
    rpc::RegisterBranchResponse resp;
    On(id, [&](rpc::CoordinatorServiceClient& c) { c.RegisterBranch(resp, req); });
    return resp;
  }
  rpc::TxnOutcomeResponse Finish(int id, const std::string& gtid, bool commit) {
    rpc::TxnRequest req;
    req.gtid = gtid;
    rpc::TxnOutcomeResponse resp;
    On(id, [&](rpc::CoordinatorServiceClient& c) {
      if (commit) {
        c.Commit(resp, req);
      } else {
        c.Abort(resp, req);
      }
    });
    return resp;
  }
  rpc::TxnInfoResponse GetTxn(int id, const std::string& gtid) {
    rpc::TxnRequest req;
    req.gtid = gtid;
    rpc::TxnInfoResponse resp;
    On(id, [&](rpc::CoordinatorServiceClient& c) { c.GetTxn(resp, req); });
    return resp;
  }
  rpc::RegisterParticipantResponse Register(int id, const std::string& name,
                                            const std::string& address) {
    rpc::RegisterParticipantRequest req;
    req.name = name;
    req.address = address;
    req.backend = "sqlite";
    rpc::RegisterParticipantResponse resp;
    OnRegistry(id,
               [&](rpc::ParticipantRegistryServiceClient& c) { c.RegisterParticipant(resp, req); });
    return resp;
  }
  ProcessResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {BinaryPath("verdictctl"), "--coordinators",
                                     Join(cluster_->Addresses())};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, 30s);
  }
  static std::string Join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
    return out;
  }

  std::unique_ptr<CoordinatorCluster> cluster_;
};

TEST_F(TxnServiceTest, BadInput_IsInvalidArgumentAndChangesNothing) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  rpc::BeginRequest bad_begin;
  bad_begin.protocol = static_cast<rpc::Protocol::type>(9);
  rpc::BeginResponse b;
  On(leader, [&](rpc::CoordinatorServiceClient& c) { c.Begin(b, bad_begin); });
  EXPECT_EQ(b.code, rpc::ResultCode::INVALID_ARGUMENT) << b.message;
  EXPECT_TRUE(b.gtid.empty());

  rpc::BeginResponse ok = Begin(leader);
  ASSERT_EQ(ok.code, rpc::ResultCode::OK) << ok.message;
  EXPECT_EQ(RegisterBranch(leader, "", "p", "b").code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(RegisterBranch(leader, ok.gtid, "", "b").code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(RegisterBranch(leader, ok.gtid, "p:1", "b").code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(RegisterBranch(leader, ok.gtid, "p", std::string(300, 'x')).code,
            rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(Finish(leader, "", true).code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetTxn(leader, std::string(300, '1')).code, rpc::ResultCode::INVALID_ARGUMENT);

  rpc::ListTxnsRequest list;
  list.limit = 0;
  rpc::ListTxnsResponse l;
  On(leader, [&](rpc::CoordinatorServiceClient& c) { c.ListTxns(l, list); });
  EXPECT_EQ(l.code, rpc::ResultCode::INVALID_ARGUMENT);

  rpc::ResolveRequest resolve;
  resolve.gtid = "7.1.1";
  resolve.outcome = static_cast<rpc::Outcome::type>(0);
  resolve.who = "test";
  rpc::ResolveResponse r;
  On(leader, [&](rpc::CoordinatorServiceClient& c) { c.Resolve(r, resolve); });
  EXPECT_EQ(r.code, rpc::ResultCode::INVALID_ARGUMENT);
  resolve.outcome = rpc::Outcome::ABORT;
  resolve.who = "";
  On(leader, [&](rpc::CoordinatorServiceClient& c) { c.Resolve(r, resolve); });
  EXPECT_EQ(r.code, rpc::ResultCode::INVALID_ARGUMENT);

  // The older Decide RPC may not decide a gtid of the transaction service's form.
  rpc::DecideRequest decide;
  decide.gtid = ok.gtid;
  decide.outcome = rpc::Outcome::COMMIT;
  rpc::DecideResponse d;
  On(leader, [&](rpc::CoordinatorServiceClient& c) { c.Decide(d, decide); });
  EXPECT_EQ(d.code, rpc::ResultCode::INVALID_ARGUMENT) << d.message;

  EXPECT_EQ(Register(leader, "", "127.0.0.1:1").code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(Register(leader, "p", "no-port").code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(Register(leader, "p", "127.0.0.1:70000").code, rpc::ResultCode::INVALID_ARGUMENT);

  // Nothing of the above reached the log: the transaction is still open, nothing decided.
  rpc::TxnInfoResponse info = GetTxn(leader, ok.gtid);
  ASSERT_EQ(info.code, rpc::ResultCode::OK);
  EXPECT_FALSE(info.info.__isset.decision);
  EXPECT_TRUE(info.info.branches.empty());
  rpc::ListParticipantsResponse parts;
  OnRegistry(leader, [&](rpc::ParticipantRegistryServiceClient& c) { c.ListParticipants(parts); });
  EXPECT_TRUE(parts.participants.empty());
}

TEST_F(TxnServiceTest, Follower_AnswersNotLeaderWithTheLeadersAddress) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  int follower = Follower(leader);
  auto expect_hint = [&](const auto& resp, const char* what) {
    EXPECT_EQ(resp.code, rpc::ResultCode::NOT_LEADER) << what;
    ASSERT_TRUE(resp.__isset.leader) << what;
    EXPECT_EQ(resp.leader.id, leader) << what;
    EXPECT_EQ(resp.leader.address, cluster_->Address(leader)) << what;
  };
  expect_hint(Begin(follower), "Begin");
  expect_hint(RegisterBranch(follower, "1.1.1", "p", "b"), "RegisterBranch");
  expect_hint(Finish(follower, "1.1.1", true), "Commit");
  expect_hint(Finish(follower, "1.1.1", false), "Abort");
  expect_hint(GetTxn(follower, "1.1.1"), "GetTxn");
  expect_hint(Register(follower, "p", "127.0.0.1:1"), "RegisterParticipant");
  rpc::InquireRequest inq;
  inq.gtid = "1.1.1";
  inq.participant = "p";
  inq.branch = "b";
  rpc::InquireResponse i;
  OnRegistry(follower, [&](rpc::ParticipantRegistryServiceClient& c) { c.Inquire(i, inq); });
  expect_hint(i, "Inquire");
}

TEST_F(TxnServiceTest, EmptyAbortedAndUnknownTransactions) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  rpc::NodeStatus st;
  ASSERT_TRUE(cluster_->NodeStatus(leader, &st).ok());

  rpc::BeginResponse a = Begin(leader);
  ASSERT_EQ(a.code, rpc::ResultCode::OK);
  // "<term>.<leader>.<seq>"
  EXPECT_EQ(a.gtid.rfind(std::to_string(st.term) + "." + std::to_string(leader) + ".", 0), 0u)
      << a.gtid;
  EXPECT_GT(a.deadline_ms, 0);
  // A participant nobody registered cannot hold a branch.
  EXPECT_EQ(RegisterBranch(leader, a.gtid, "ghost", "b").code, rpc::ResultCode::NOT_FOUND);
  // No branch: commits trivially.
  rpc::TxnOutcomeResponse c = Finish(leader, a.gtid, true);
  ASSERT_EQ(c.code, rpc::ResultCode::OK) << c.message;
  EXPECT_EQ(c.outcome, rpc::TxnOutcome::COMMITTED) << c.reason;

  rpc::BeginResponse b = Begin(leader, rpc::Protocol::THREE_PC);
  ASSERT_EQ(b.code, rpc::ResultCode::OK);
  EXPECT_NE(b.gtid, a.gtid);
  rpc::TxnOutcomeResponse ab = Finish(leader, b.gtid, false);
  ASSERT_EQ(ab.code, rpc::ResultCode::OK);
  EXPECT_EQ(ab.outcome, rpc::TxnOutcome::ABORTED);
  // Repeating the call, or asking to commit now, gives the same outcome.
  EXPECT_EQ(Finish(leader, b.gtid, false).outcome, rpc::TxnOutcome::ABORTED);
  EXPECT_EQ(Finish(leader, b.gtid, true).outcome, rpc::TxnOutcome::ABORTED);
  // Registering a branch after the end is refused.
  rpc::RegisterBranchResponse late = RegisterBranch(leader, b.gtid, "ghost", "b");
  EXPECT_NE(late.code, rpc::ResultCode::OK);

  // A gtid this leader never began: nothing known, and committing it cannot succeed.
  EXPECT_EQ(GetTxn(leader, "424242.9.1").code, rpc::ResultCode::NOT_FOUND);
  EXPECT_EQ(RegisterBranch(leader, "424242.9.1", "ghost", "b").code, rpc::ResultCode::NOT_FOUND);
  rpc::TxnOutcomeResponse unknown = Finish(leader, "1.9.77", true);
  ASSERT_EQ(unknown.code, rpc::ResultCode::OK);
  EXPECT_NE(unknown.outcome, rpc::TxnOutcome::COMMITTED);
}

TEST_F(TxnServiceTest, Registry_IsReplicated_AndAnInquiryAboutAnUnknownGtidAbortsThroughTheLog) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  ASSERT_EQ(Register(leader, "shard-a", "127.0.0.1:4001").code, rpc::ResultCode::OK);
  ASSERT_EQ(Register(leader, "shard-b", "127.0.0.1:4002").code, rpc::ResultCode::OK);
  // A new address replaces the old one.
  ASSERT_EQ(Register(leader, "shard-b", "127.0.0.1:4003").code, rpc::ResultCode::OK);
  for (int id = 1; id <= 3; ++id) {
    rpc::ListParticipantsResponse parts;
    for (int i = 0; i < 100; ++i) {
      OnRegistry(id, [&](rpc::ParticipantRegistryServiceClient& c) { c.ListParticipants(parts); });
      if (parts.participants.size() == 2 && parts.participants[1].address == "127.0.0.1:4003") {
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(parts.participants.size(), 2u) << "node " << id;
    EXPECT_EQ(parts.participants[0].name, "shard-a");
    EXPECT_EQ(parts.participants[1].address, "127.0.0.1:4003") << "node " << id;
  }
  // The registered name can now hold a branch.
  rpc::BeginResponse t = Begin(leader);
  EXPECT_EQ(RegisterBranch(leader, t.gtid, "shard-a", "b1").code, rpc::ResultCode::OK);
  EXPECT_EQ(RegisterBranch(leader, t.gtid, "shard-a", "b1").code, rpc::ResultCode::OK);  // again
  rpc::TxnInfoResponse info = GetTxn(leader, t.gtid);
  ASSERT_EQ(info.code, rpc::ResultCode::OK);
  ASSERT_EQ(info.info.branches.size(), 1u);
  EXPECT_EQ(info.info.branches[0].address, "127.0.0.1:4001");  // from the registry

  // An agent asks about a gtid nobody drives: ABORT is proposed and applied before the
  // answer, so every node has it.
  rpc::InquireRequest inq;
  inq.gtid = "1.7.5";
  inq.participant = "shard-a";
  inq.branch = "b1";
  rpc::InquireResponse i;
  OnRegistry(leader, [&](rpc::ParticipantRegistryServiceClient& c) { c.Inquire(i, inq); });
  ASSERT_EQ(i.code, rpc::ResultCode::OK) << i.message;
  EXPECT_EQ(i.status, rpc::TxnStatus::ABORTED);
  rpc::TxnInfoResponse aborted = GetTxn(leader, "1.7.5");
  ASSERT_EQ(aborted.code, rpc::ResultCode::OK);
  ASSERT_TRUE(aborted.info.__isset.decision);
  EXPECT_EQ(aborted.info.decision, rpc::Outcome::ABORT);
  EXPECT_EQ(aborted.info.basis, "presumed-abort");
}

TEST_F(TxnServiceTest, LeaderChange_OpenTransactionCanNoLongerCommit) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  rpc::BeginResponse t = Begin(leader);
  ASSERT_EQ(t.code, rpc::ResultCode::OK);
  cluster_->Kill(leader);
  int next = cluster_->WaitForLeader(kLeaderTimeout);
  ASSERT_NE(next, 0);
  ASSERT_NE(next, leader);
  // The new leader never drives the old leadership's transaction to commit; it cannot
  // tell the client more than UNKNOWN (a one-phase commit would have left no entry).
  rpc::TxnOutcomeResponse c = Finish(next, t.gtid, true);
  ASSERT_EQ(c.code, rpc::ResultCode::OK) << c.message;
  EXPECT_EQ(c.outcome, rpc::TxnOutcome::UNKNOWN) << c.reason;
  EXPECT_EQ(GetTxn(next, t.gtid).code, rpc::ResultCode::NOT_FOUND);  // nothing logged
  EXPECT_EQ(RegisterBranch(next, t.gtid, "ghost", "b").code, rpc::ResultCode::NOT_FOUND);
  // And its own gtids carry its own term and id.
  rpc::BeginResponse u = Begin(next);
  ASSERT_EQ(u.code, rpc::ResultCode::OK);
  EXPECT_NE(u.gtid, t.gtid);
  EXPECT_NE(u.gtid.find("." + std::to_string(next) + "."), std::string::npos) << u.gtid;
}

TEST_F(TxnServiceTest, Verdictctl_ResolveShowTxnsParticipantsHazards) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  ASSERT_EQ(Register(leader, "shard-a", "127.0.0.1:4001").code, rpc::ResultCode::OK);

  ProcessResult parts = Ctl({"participants"});
  EXPECT_EQ(parts.exit_code, 0) << parts.output;
  EXPECT_NE(parts.output.find("shard-a"), std::string::npos) << parts.output;
  EXPECT_NE(parts.output.find("127.0.0.1:4001"), std::string::npos) << parts.output;

  // resolve needs a reason, and exactly one outcome.
  EXPECT_EQ(Ctl({"resolve", "5.1.1", "--commit"}).exit_code, 2);
  EXPECT_EQ(Ctl({"resolve", "5.1.1", "--commit", "--abort", "--why", "x"}).exit_code, 2);

  ProcessResult r = Ctl({"resolve", "5.1.1", "--commit", "--why", "ticket 42", "--who", "ops"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A second, contrary resolve is refused and names the decision in force.
  ProcessResult again = Ctl({"resolve", "5.1.1", "--abort", "--why", "oops"});
  EXPECT_EQ(again.exit_code, 4) << again.output;
  EXPECT_NE(again.output.find("COMMIT"), std::string::npos) << again.output;

  ProcessResult show = Ctl({"show", "5.1.1"});
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("HEURISTIC"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("ops"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("ticket 42"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("heuristic"), std::string::npos) << show.output;

  ProcessResult txns = Ctl({"txns"});
  EXPECT_EQ(txns.exit_code, 0) << txns.output;
  EXPECT_NE(txns.output.find("5.1.1"), std::string::npos) << txns.output;
  ProcessResult in_doubt = Ctl({"txns", "--in-doubt"});
  EXPECT_EQ(in_doubt.exit_code, 0) << in_doubt.output;
  EXPECT_NE(in_doubt.output.find("0 transaction(s) in doubt"), std::string::npos)
      << in_doubt.output;

  ProcessResult missing = Ctl({"show", "5.1.2"});
  EXPECT_EQ(missing.exit_code, 3) << missing.output;

  ProcessResult hazards = Ctl({"hazards"});
  EXPECT_EQ(hazards.exit_code, 0) << hazards.output;
  EXPECT_NE(hazards.output.find("0 heuristic hazard(s) on 3"), std::string::npos) << hazards.output;

  // The heuristic record is in the log: every node applies it.
  for (int id = 1; id <= 3; ++id) {
    rpc::GetDecisionRequest g;
    g.gtid = "5.1.1";
    g.consistency = rpc::Consistency::LOCAL;
    rpc::GetDecisionResponse resp;
    for (int i = 0; i < 100; ++i) {
      On(id, [&](rpc::CoordinatorServiceClient& c) { c.GetDecision(resp, g); });
      if (resp.code == rpc::ResultCode::OK) break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(resp.code, rpc::ResultCode::OK) << "node " << id;
    EXPECT_EQ(resp.outcome, rpc::Outcome::COMMIT) << "node " << id;
  }
}

}  // namespace
}  // namespace verdict::testing
