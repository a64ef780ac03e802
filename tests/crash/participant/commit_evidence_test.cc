// Forgotten decided branches, on both back ends, with real agent processes: after
// --decided-retention-ms and a journal compaction the agent has no record of a branch, and
// only the database's commit marker (written in the same local transaction as the data)
// can tell a COMMITTED branch from one that never voted. A terminating peer's
// AbortIfUnvoted must be refused, GetBranchStatus must say COMMITTED and a repeated COMMIT
// must be OK — also after kill -9, when the evidence can only come from disk. A forgotten
// ABORTED branch keeps presumed abort. The coordinator group is unreachable throughout.
// PostgreSQL cases start a real server (PgServer) and never skip.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/agent_process.h"
#include "tests/support/pg_server.h"
#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant {
namespace {

using test_support::AgentProcess;
using test_support::AgentProcessOptions;
using test_support::Int;
using Code = rpc::ParticipantCode;
using St = rpc::BranchState;

constexpr auto kOutcomeUnknown = static_cast<St::type>(8);

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class CommitEvidenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!pg()) return;
    server_ = std::make_unique<test_support::PgServer>();
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const char* name : {"pa", "pb"}) {
      ASSERT_TRUE(server_->CreateDatabase(std::string("shard_") + name).ok());
      ASSERT_TRUE(server_
                      ->Exec(std::string("shard_") + name,
                             "CREATE TABLE t(id int PRIMARY KEY, v bigint NOT NULL);"
                             "INSERT INTO t VALUES (1, 0), (2, 0)")
                      .ok());
    }
  }
  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto& a : agents_) {
      std::fprintf(stderr, "--- log of %s ---\n%s\n", a->name().c_str(), a->ReadLog().c_str());
    }
  }

  bool pg() const { return GetParam() == "postgres"; }

  // An agent that forgets decided branches after 300 ms and compacts its journal as soon
  // as it can, so that a forgotten branch leaves no trace but the database's.
  AgentProcess* Agent(const std::string& name) {
    AgentProcessOptions o;
    o.name = name;
    o.dir = dir_.path();
    o.backend = GetParam();
    if (pg()) o.pg_dsn = server_->Dsn("shard_" + name);
    auto a = std::make_unique<AgentProcess>(o);
    a->extra_flags["--decided-retention-ms"] = "300";
    a->extra_flags["--journal-compact-bytes"] = "1";
    agents_.push_back(std::move(a));
    return agents_.back().get();
  }
  void StartWithTable(AgentProcess& a) {
    ASSERT_NO_THROW(a.Start());
    if (!pg()) a.CreateTable(2);
  }
  int64_t V(AgentProcess& a, int id) {
    if (!pg()) return a.V(id);
    std::string v;
    EXPECT_TRUE(server_
                    ->QueryValue("shard_" + a.name(),
                                 "SELECT v FROM t WHERE id = " + std::to_string(id), &v)
                    .ok());
    return std::stoll(v);
  }
  // Opens g:b, adds `delta` to row `id`, prepares with `parts` (YES acknowledged).
  void PrepareDelta(AgentProcess& a, const std::string& g, int delta, int id = 1,
                    std::vector<rpc::PeerBranch> parts = {}) {
    ASSERT_EQ(a.Open(g, "b").code, Code::OK);
    rpc::ExecuteResponse e =
        a.Exec(g, "b", "UPDATE t SET v = v + ? WHERE id = ?", {Int(delta), Int(id)});
    ASSERT_EQ(e.code, Code::OK) << e.message;
    rpc::PrepareResponse p = a.Prepare(g, "b", parts);
    ASSERT_EQ(p.vote, rpc::Vote::YES) << p.message;
  }
  // Waits until `a` has forgotten g:b and then rewritten its journal without it (a
  // one-phase commit is never journaled: nothing to compact).
  void WaitForgotten(AgentProcess& a, const std::string& g, bool journaled = true) {
    const std::string forgotten = "branch " + g + ":b forgotten";
    for (int i = 0; i < 200; ++i) {
      const std::string log = a.ReadLog();
      const size_t at = log.find(forgotten);
      if (at != std::string::npos &&
          (!journaled || log.find("branch journal compacted", at) != std::string::npos)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << a.name() << " did not forget and compact " << g;
  }

  // Every call a peer or the coordinator may make about a forgotten COMMITTED branch.
  void ExpectCommittedFromEvidence(AgentProcess& a, const std::string& g) {
    rpc::BranchResponse r = a.AbortIfUnvoted(g, "b");
    EXPECT_EQ(r.code, Code::WRONG_STATE) << r.message;
    EXPECT_EQ(r.state, St::COMMITTED);
    rpc::BranchStatusResponse st = a.Status(g, "b");
    EXPECT_EQ(st.code, Code::OK) << st.message;
    EXPECT_EQ(st.info.state, St::COMMITTED);
    r = a.Commit(g, "b");
    EXPECT_EQ(r.code, Code::OK) << r.message;
    EXPECT_EQ(r.state, St::COMMITTED);
    r = a.Abort(g, "b");  // abort after commit: a heuristic hazard, refused
    EXPECT_EQ(r.code, Code::WRONG_STATE) << r.message;
    EXPECT_EQ(r.state, St::COMMITTED);
  }

  testing::TempDir dir_;
  std::unique_ptr<test_support::PgServer> server_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;  // killed before the server stops
};

TEST_P(CommitEvidenceTest, ForgottenCommitted_AbortIfUnvotedRefusedAlsoAfterKill9) {
  auto b = Agent("pb");
  StartWithTable(*b);
  PrepareDelta(*b, "g1", 5);
  ASSERT_EQ(b->Commit("g1", "b").code, Code::OK);
  WaitForgotten(*b, "g1");
  ExpectCommittedFromEvidence(*b, "g1");
  EXPECT_EQ(V(*b, 1), 5);  // exactly once
  // The journal no longer has g1 (compacted after it was forgotten; a recall is not
  // journaled): after kill -9 the answer can only come from the database's marker.
  const size_t recalls = Count(b->ReadLog(), "recalled as COMMITTED");
  EXPECT_GE(recalls, 1u);
  b->Restart();
  ExpectCommittedFromEvidence(*b, "g1");
  EXPECT_GT(Count(b->ReadLog(), "recalled as COMMITTED"), recalls);
  EXPECT_EQ(V(*b, 1), 5);
}

TEST_P(CommitEvidenceTest, ForgottenAborted_PresumedAbortStays) {
  auto b = Agent("pb");
  StartWithTable(*b);
  PrepareDelta(*b, "g2", 5);
  ASSERT_EQ(b->Abort("g2", "b").code, Code::OK);
  WaitForgotten(*b, "g2");
  rpc::BranchStatusResponse st = b->Status("g2", "b");
  EXPECT_EQ(st.code, Code::NOT_FOUND);
  EXPECT_EQ(st.info.state, St::NONE);
  rpc::BranchResponse r = b->Commit("g2", "b");  // no record, no marker: hazard
  EXPECT_EQ(r.code, Code::NOT_FOUND) << r.message;
  r = b->AbortIfUnvoted("g2", "b");  // never committed: it may be tombstoned
  EXPECT_EQ(r.code, Code::OK) << r.message;
  EXPECT_EQ(r.state, St::ABORTED);
  EXPECT_EQ(b->Abort("g2", "b").code, Code::OK);
  b->Restart();
  EXPECT_EQ(b->Abort("g2", "b").code, Code::OK);
  EXPECT_EQ(V(*b, 1), 0);
}

TEST_P(CommitEvidenceTest, ForgottenOnePhaseCommit_RepeatedCommitIsOk) {
  auto b = Agent("pb");
  StartWithTable(*b);
  ASSERT_EQ(b->Open("g3", "b").code, Code::OK);
  ASSERT_EQ(b->Exec("g3", "b", "UPDATE t SET v = v + 4 WHERE id = 2").code, Code::OK);
  ASSERT_EQ(b->Commit("g3", "b", true).code, Code::OK);
  WaitForgotten(*b, "g3", /*journaled=*/false);
  rpc::BranchResponse r = b->Commit("g3", "b", true);
  EXPECT_EQ(r.code, Code::OK) << r.message;
  EXPECT_EQ(r.state, St::COMMITTED);
  b->Restart();
  r = b->Commit("g3", "b", true);
  EXPECT_EQ(r.code, Code::OK) << r.message;
  EXPECT_EQ(r.state, St::COMMITTED);
  EXPECT_EQ(V(*b, 2), 4);
}

// The scenario of the bug: pa and pb both prepared; pa dies; the coordinator's COMMIT
// reaches pb, which commits, forgets and compacts the branch, and is kill -9'd; then the
// coordinator group is gone for good. pa restarts, finds its branch in doubt and
// terminates cooperatively: pb must answer COMMITTED (from its marker), never let itself
// be tombstoned as unvoted, so pa commits too.
TEST_P(CommitEvidenceTest, TerminatingPeerLearnsTheCommitFromAForgottenBranch) {
  auto a = Agent("pa");
  auto b = Agent("pb");
  StartWithTable(*a);
  StartWithTable(*b);
  std::vector<rpc::PeerBranch> parts = {a->Peer("b"), b->Peer("b")};
  PrepareDelta(*a, "g4", 1, 1, parts);
  PrepareDelta(*b, "g4", 1, 1, parts);
  // With PostgreSQL, a 2PC PREPARED record (and its participant list) is appended lazily:
  // PREPARE TRANSACTION already made the branch durable, and it reaches the journal within
  // a tick. Killed before that, `a` would adopt g4 with no participants to ask (it then
  // waits for the coordinator). This test is about termination, so make the record durable
  // first: an abort tombstone is written synchronously, and pending records go before it.
  ASSERT_EQ(a->Abort("g4-sync", "b").code, Code::OK);
  a->Kill9();
  ASSERT_EQ(b->Commit("g4", "b").code, Code::OK);
  WaitForgotten(*b, "g4");
  b->Restart();
  ASSERT_NO_THROW(a->Start());
  EXPECT_EQ(a->WaitState("g4", "b", St::COMMITTED, 20000), St::COMMITTED);
  EXPECT_EQ(b->State("g4", "b"), St::COMMITTED);
  EXPECT_EQ(V(*a, 1), 1);
  EXPECT_EQ(V(*b, 1), 1);
}

// A one-phase commit whose local outcome is lost (failpoint: the COMMIT ran, its answer
// did not come back) is OUTCOME_UNKNOWN, listed by ListInDoubt; the retried COMMIT finds
// the commit marker and settles it as COMMITTED.
TEST_P(CommitEvidenceTest, OutcomeUnknownIsListedInDoubtAndSettledByItsMarker) {
  auto b = Agent("pb");
  StartWithTable(*b);
  b->Restart("after_one_phase_commit_outcome_lost:error");
  ASSERT_EQ(b->Open("g5", "b").code, Code::OK);
  ASSERT_EQ(b->Exec("g5", "b", "UPDATE t SET v = v + 3 WHERE id = 2").code, Code::OK);
  rpc::BranchResponse r = b->Commit("g5", "b", true);
  EXPECT_EQ(r.code, Code::UNAVAILABLE) << r.message;
  EXPECT_EQ(r.state, kOutcomeUnknown);
  rpc::ListInDoubtResponse l = b->ListInDoubt();
  ASSERT_EQ(l.branches.size(), 1u);
  EXPECT_EQ(l.branches[0].gtid, "g5");
  EXPECT_EQ(l.branches[0].state, kOutcomeUnknown);
  r = b->Commit("g5", "b", true);
  EXPECT_EQ(r.code, Code::OK) << r.message;
  EXPECT_EQ(r.state, St::COMMITTED);
  EXPECT_TRUE(b->ListInDoubt().branches.empty());
  EXPECT_EQ(V(*b, 2), 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, CommitEvidenceTest,
                         ::testing::Values("sqlite"
#ifdef VERDICT_HAVE_POSTGRES
                                           ,
                                           "postgres"
#endif
                                           ),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace verdict::participant
