// TxnCluster: a test fixture's handle on a whole Verdict deployment made of real processes on
// loopback — a verdict-coordinator group (tests/integration/coordinator/cluster_harness.h)
// and one verdict-participant agent per shard, SQLite or PostgreSQL (the PostgreSQL shards are
// databases of one PgServer the caller owns) — with verbs to run cross-shard transfers the
// way an SDK does (Begin, OpenBranch + Execute, RegisterBranch, Commit), to kill, stop and
// restart processes, and to check the outcome: balances on every shard, the decision the
// group applied, nothing left in doubt. Every shard holds
//   accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))
// with ids 0..accounts-1. Not thread-safe: the test's main thread drives it (other threads
// use their own TxnClient / AgentClient).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "tests/integration/coordinator/cluster_harness.h"
#include "tests/support/netns.h"
#include "tests/support/pg_server.h"
#include "tests/support/txn_clients.h"

namespace verdict::test_support {

enum class Backend { kSqlite, kPostgres };

struct ShardSpec {
  std::string name;  // the participant name (--name)
  Backend backend = Backend::kSqlite;
};

// account id -> balance, per shard name.
using Balances = std::map<std::string, std::map<int64_t, int64_t>>;
int64_t Total(const Balances& b);
std::string ToString(const Balances& b);

// One verdict-participant process with a fixed name, port, data dir and database across
// restarts. Its stderr goes to log_path().
class TxnAgent {
 public:
  // Listens on `host` (a free port); `prefix` goes before its command line (e.g. to run
  // it in a network namespace).
  TxnAgent(ShardSpec spec, std::string dir, std::string coordinators, std::string pg_dsn,
           std::map<std::string, std::string> flags, std::string host = "127.0.0.1",
           std::vector<std::string> prefix = {});
  ~TxnAgent();  // kill -9
  TxnAgent(const TxnAgent&) = delete;
  TxnAgent& operator=(const TxnAgent&) = delete;

  // Spawns the agent (VERDICT_FAILPOINT=failpoint if not empty) and waits until it answers.
  Status Start(const std::string& failpoint = "");
  void Kill9();
  void Stop();      // SIGSTOP
  void Continue();  // SIGCONT
  bool running() const { return pid_ > 0; }
  bool stopped() const { return stopped_; }

  const std::string& name() const { return spec_.name; }
  Backend backend() const { return spec_.backend; }
  std::string address() const;
  std::string log_path() const;
  std::map<std::string, std::string>& flags() { return flags_; }

  AgentClient& client() { return *client_; }

  // Every account through a throw-away branch (a SELECT, then aborted).
  Status ReadAccounts(std::map<int64_t, int64_t>* out);
  // NOT_FOUND is reported as state NONE.
  Status BranchState(const std::string& gtid, const std::string& branch,
                     rpc::BranchState::type* out);
  Status InDoubt(std::vector<rpc::BranchInfo>* out);

 private:
  ShardSpec spec_;
  std::string dir_;
  std::string coordinators_;
  std::string pg_dsn_;
  std::map<std::string, std::string> flags_;
  std::string host_;
  std::vector<std::string> prefix_;
  int port_;
  pid_t pid_ = -1;
  bool stopped_ = false;
  int reads_ = 0;
  std::unique_ptr<AgentClient> client_;
};

// One branch of a transfer: `updates` (account, delta) run as
// `UPDATE accounts SET balance = balance + ? WHERE id = ?`; no updates: a read-only branch
// that runs `SELECT balance FROM accounts WHERE id = 0`.
struct BranchSpec {
  BranchSpec(std::string shard_name, std::vector<std::pair<int64_t, int64_t>> account_deltas = {},
             bool read_only = false)
      : shard(std::move(shard_name)),
        updates(std::move(account_deltas)),
        read_only_hint(read_only) {}
  std::string shard;
  std::vector<std::pair<int64_t, int64_t>> updates;
  bool read_only_hint = false;
  std::string branch;  // default "b-<shard>"
  std::string BranchName() const { return branch.empty() ? "b-" + shard : branch; }
};

struct TxnSpec {
  rpc::Protocol::type protocol = rpc::Protocol::TWO_PC;
  int64_t deadline_ms = 0;  // 0: coordinator default; also the branches' timeout
  std::vector<BranchSpec> branches;
};

struct TxnRun {
  std::string gtid;
  // Per branch name: OK, or the first non-OK Execute code (e.g. SQL_ERROR).
  std::map<std::string, rpc::ParticipantCode::type> execute_codes;
  std::map<std::string, std::string> execute_messages;
  Status commit_status;            // transport status of the Commit call
  rpc::TxnOutcomeResponse commit;  // meaningful when commit_status is OK
};

// The options tests usually want: short retry, vote and inquiry timeouts.
std::vector<ShardSpec> DefaultShards();  // s1, s2 (SQLite), p1, p2 (PostgreSQL)
std::vector<std::string> DefaultCoordinatorFlags();
std::map<std::string, std::string> DefaultAgentFlags();

struct TxnClusterOptions {
  int coordinators = 3;
  std::vector<ShardSpec> shards = DefaultShards();
  int accounts = 10;
  int64_t initial_balance = 1000;
  std::vector<std::string> coordinator_flags = DefaultCoordinatorFlags();
  std::map<std::string, std::string> agent_flags = DefaultAgentFlags();
  // Set (created with at least coordinators + shards namespaces, outliving the cluster):
  // coordinator i runs in namespace i, and the agent of shards[k] in namespace
  // coordinators + 1 + k (partition tests).
  NetnsTestbed* netns = nullptr;
};

class TxnCluster {
 public:
  // `pg` (started, outliving the cluster) hosts the PostgreSQL shards; it may be null when
  // every shard is SQLite.
  TxnCluster(PgServer* pg, TxnClusterOptions options = {});
  ~TxnCluster();  // kill -9 everything; remove the temp dirs (unless VERDICT_KEEP_TEST_DIRS)
  TxnCluster(const TxnCluster&) = delete;
  TxnCluster& operator=(const TxnCluster&) = delete;

  // Creates the PostgreSQL databases, starts the coordinators (with
  // VERDICT_FAILPOINT=coordinator_failpoint when not empty) and waits for a leader, starts
  // the agents, waits until every agent is listed by ListParticipants on the leader, and
  // creates and fills `accounts` on every shard.
  Status Start(const std::string& coordinator_failpoint = "");

  // ---- coordinators ----
  testing::CoordinatorCluster& coordinators() { return *coordinators_; }
  // Starts node `id` if it is not running, with VERDICT_FAILPOINT=failpoint (or none).
  void StartCoordinator(int id, const std::string& failpoint = "");
  // Reaps coordinators that exited by themselves (a failpoint's kill); returns their ids.
  std::vector<int> ReapExitedCoordinators();
  void SignalAllCoordinators(int sig);
  int WaitForLeader(std::chrono::milliseconds timeout) const;
  std::unique_ptr<TxnClient> Client(int id, int timeout_ms = 15000) const;
  // A client of the current leader (WaitForLeader), or null after `timeout`.
  std::unique_ptr<TxnClient> LeaderClient(std::chrono::milliseconds timeout) const;
  // The id of a coordinator whose log contains `text` (0 if none), and a bounded wait for it.
  int CoordinatorLogging(const std::string& text) const;
  int WaitForCoordinatorLog(const std::string& text, std::chrono::milliseconds timeout) const;

  // Calls `call(client, &response)` on the leader until it answers with a code other than
  // NOT_LEADER / UNAVAILABLE / UNKNOWN (transport errors are retried too), or `timeout`.
  template <typename Resp>
  Status OnLeader(std::chrono::milliseconds timeout,
                  const std::function<Status(TxnClient&, Resp*)>& call, Resp* out) const;

  // ---- agents ----
  TxnAgent& agent(const std::string& shard);
  std::vector<TxnAgent*> agents();

  // ---- transactions ----
  // Begin on `leader`, then per branch OpenBranch + Execute on its agent and RegisterBranch
  // (also when an Execute failed: the agent then votes NO), then Commit unless `commit` is
  // false. An error if Begin, OpenBranch or RegisterBranch did not answer OK.
  // `agent_clients` (shard -> client) replaces the agents' own clients, for other threads.
  Status RunTxn(TxnClient& leader, const TxnSpec& spec, TxnRun* run, bool commit = true,
                const std::map<std::string, AgentClient*>* agent_clients = nullptr);
  // The same with Begin only: returns the gtid (for tests of bad calls).
  Status BeginOnly(TxnClient& leader, rpc::Protocol::type protocol, std::string* gtid);

  // ---- checks ----
  Status Snapshot(Balances* out);
  // `before` with every update of `spec` applied.
  static Balances Applied(const Balances& before, const TxnSpec& spec);
  // Waits until every shard holds exactly `want`; false with the last snapshot in *detail.
  bool WaitForBalances(const Balances& want, std::chrono::milliseconds timeout,
                       std::string* detail);
  // GetDecision(LOCAL) on node `id`: the outcome, or nullopt for NOT_FOUND.
  Status LocalDecision(int id, const std::string& gtid, std::optional<rpc::Outcome::type>* out);
  // Waits until every running coordinator reports the same applied decision (LOCAL) as
  // `want` (nullopt: NOT_FOUND, i.e. no decision or a forgotten abort). Only for COMMIT is
  // the answer stable after END (a tombstone); callers checking an abort accept both.
  bool WaitForDecisionEverywhere(const std::string& gtid, std::optional<rpc::Outcome::type> want,
                                 std::chrono::milliseconds timeout, std::string* detail);
  // Every applied decision any running node reports for `gtid` (LOCAL reads), by node id.
  std::map<int, std::string> DecisionsByNode(const std::string& gtid);
  // Waits until the leader lists no in-doubt transaction, every running agent lists no
  // in-doubt branch and PostgreSQL holds no prepared transaction of a shard.
  bool WaitNothingInDoubt(std::chrono::milliseconds timeout, std::string* detail);
  // Waits until the branch is in one of `states` on its agent; false with the last state.
  bool WaitBranchState(const std::string& shard, const std::string& gtid, const std::string& branch,
                       const std::vector<rpc::BranchState::type>& states,
                       std::chrono::milliseconds timeout, std::string* detail);
  // Repeats Commit(gtid) on the leader until it answers COMMITTED or ABORTED (what an SDK
  // does after UNKNOWN or a lost connection).
  Status FinalOutcome(const std::string& gtid, std::chrono::milliseconds timeout,
                      rpc::TxnOutcome::type* out);
  // Hazards reported by every running coordinator (ListHazards), as text; empty if none.
  std::string Hazards();

  // The last `lines` lines of every log (coordinators and agents), for failure messages.
  std::string LogTails(int lines = 40) const;
  // Copies every log to `dest` (created) and returns a line saying where.
  std::string PreserveLogs(const std::string& dest) const;

  const std::string& dir() const { return dir_; }
  PgServer* pg() const { return pg_; }
  std::string PgDatabase(const std::string& shard) const;
  const TxnClusterOptions& options() const { return options_; }

 private:
  Status CreateSchema(TxnAgent& agent);
  Status WaitForRegistration(std::chrono::milliseconds timeout);

  PgServer* pg_;
  TxnClusterOptions options_;
  std::string dir_;
  std::string db_prefix_;
  std::unique_ptr<testing::CoordinatorCluster> coordinators_;
  std::map<std::string, std::unique_ptr<TxnAgent>> agents_;
  int txn_counter_ = 0;
};

template <typename Resp>
Status TxnCluster::OnLeader(std::chrono::milliseconds timeout,
                            const std::function<Status(TxnClient&, Resp*)>& call, Resp* out) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Status last = Status::Timeout("no leader answered");
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    std::unique_ptr<TxnClient> client = LeaderClient(left);
    if (client) {
      Resp r;
      Status s = call(*client, &r);
      if (s.ok()) {
        *out = r;
        if (r.code != rpc::ResultCode::NOT_LEADER && r.code != rpc::ResultCode::UNAVAILABLE &&
            r.code != rpc::ResultCode::UNKNOWN) {
          return Status::OK();
        }
        last =
            Status::Timeout("last answer " + ResultCodeName(r.code) + " from " + client->address());
      } else {
        last = s;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

}  // namespace verdict::test_support
