#include "tests/support/txn_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace verdict::test_support {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kAccountsDdl[] =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL "
    "CHECK (balance >= 0))";
constexpr char kUpdateSql[] = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
constexpr char kReadOneSql[] = "SELECT balance FROM accounts WHERE id = 0";
constexpr char kReadAllSql[] = "SELECT id, balance FROM accounts ORDER BY id";

std::atomic<int> cluster_counter{0};

// Forks and execs `args` with environment `env`, stdout and stderr appended to `log_path`.
pid_t SpawnWithEnv(const std::vector<std::string>& args, const std::vector<std::string>& env,
                   const std::string& log_path) {
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

std::string Tail(const std::string& text, int lines) {
  size_t pos = text.size();
  int n = 0;
  while (pos > 0 && n <= lines) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
    ++n;
  }
  return text.substr(pos);
}

std::string OutcomeText(std::optional<rpc::Outcome::type> o) {
  if (!o) return "none";
  return *o == rpc::Outcome::COMMIT ? "COMMIT" : *o == rpc::Outcome::ABORT ? "ABORT" : "?";
}

// Restores VERDICT_FAILPOINT in the test process on scope exit.
class ScopedFailpointEnv {
 public:
  explicit ScopedFailpointEnv(const std::string& value) {
    const char* old = std::getenv("VERDICT_FAILPOINT");
    if (old) old_ = std::string(old);
    if (value.empty()) {
      unsetenv("VERDICT_FAILPOINT");
    } else {
      setenv("VERDICT_FAILPOINT", value.c_str(), 1);
    }
  }
  ~ScopedFailpointEnv() {
    if (old_) {
      setenv("VERDICT_FAILPOINT", old_->c_str(), 1);
    } else {
      unsetenv("VERDICT_FAILPOINT");
    }
  }

 private:
  std::optional<std::string> old_;
};

}  // namespace

int64_t Total(const Balances& b) {
  int64_t total = 0;
  for (const auto& [shard, accounts] : b) {
    for (const auto& [id, balance] : accounts) total += balance;
  }
  return total;
}

std::string ToString(const Balances& b) {
  std::ostringstream out;
  for (const auto& [shard, accounts] : b) {
    out << shard << ":{";
    bool first = true;
    for (const auto& [id, balance] : accounts) {
      out << (first ? "" : " ") << id << "=" << balance;
      first = false;
    }
    out << "} ";
  }
  return out.str();
}

std::vector<ShardSpec> DefaultShards() {
  return {{"s1", Backend::kSqlite},
          {"s2", Backend::kSqlite},
          {"p1", Backend::kPostgres},
          {"p2", Backend::kPostgres}};
}

std::vector<std::string> DefaultCoordinatorFlags() {
  return {"--default-deadline-ms",        "20000", "--vote-timeout-ms", "3000",
          "--retry-initial-ms",           "50",    "--retry-max-ms",    "500",
          "--participant-rpc-timeout-ms", "1000",  "--log-level",       "debug"};
}

std::map<std::string, std::string> DefaultAgentFlags() {
  return {{"--inquiry-after-ms", "500"},
          {"--inquiry-backoff-max-ms", "1000"},
          {"--precommit-timeout-ms", "2000"},
          {"--rpc-timeout-ms", "500"},
          {"--lock-timeout-ms", "1000"},
          {"--idle-timeout-ms", "10000"},
          {"--orphan-safety-ms", "3000"},
          {"--tick-ms", "50"},
          {"--log-level", "debug"}};
}

// ---- TxnAgent --------------------------------------------------------------------------

TxnAgent::TxnAgent(ShardSpec spec, std::string dir, std::string coordinators, std::string pg_dsn,
                   std::map<std::string, std::string> flags, std::string host,
                   std::vector<std::string> prefix)
    : spec_(std::move(spec)),
      dir_(std::move(dir)),
      coordinators_(std::move(coordinators)),
      pg_dsn_(std::move(pg_dsn)),
      flags_(std::move(flags)),
      host_(std::move(host)),
      prefix_(std::move(prefix)),
      port_(testing::FreePort()),
      client_(std::make_unique<AgentClient>(address(), 5000)) {}

TxnAgent::~TxnAgent() { Kill9(); }

std::string TxnAgent::address() const { return host_ + ":" + std::to_string(port_); }

std::string TxnAgent::log_path() const { return dir_ + "/" + spec_.name + ".log"; }

Status TxnAgent::Start(const std::string& failpoint) {
  if (pid_ > 0) return Status::OK();
  std::vector<std::string> args = {testing::BinaryPath("verdict-participant"),
                                   "--name",
                                   spec_.name,
                                   "--listen",
                                   address(),
                                   "--coordinators",
                                   coordinators_,
                                   "--data-dir",
                                   dir_ + "/" + spec_.name + "-data"};
  if (spec_.backend == Backend::kSqlite) {
    args.insert(args.end(),
                {"--backend", "sqlite", "--sqlite-path", dir_ + "/" + spec_.name + ".db"});
  } else {
    args.insert(args.end(), {"--backend", "postgres", "--pg-dsn", pg_dsn_});
  }
  for (const auto& [k, v] : flags_) {
    args.push_back(k);
    args.push_back(v);
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    if (std::string(*e).rfind("VERDICT_FAILPOINT=", 0) != 0) env.push_back(*e);
  }
  if (!failpoint.empty()) env.push_back("VERDICT_FAILPOINT=" + failpoint);
  args.insert(args.begin(), prefix_.begin(), prefix_.end());
  pid_ = SpawnWithEnv(args, env, log_path());
  if (pid_ < 0) return Status::IOError("cannot spawn " + args[0]);
  stopped_ = false;
  client_->Disconnect();
  auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    rpc::ListInDoubtResponse r;
    if (client_->ListInDoubt(&r).ok()) return Status::OK();
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::IOError("agent " + spec_.name + " exited during start-up:\n" +
                             Tail(testing::ReadFileOrEmpty(log_path()), 20));
    }
    std::this_thread::sleep_for(50ms);
  }
  return Status::Timeout("agent " + spec_.name + " did not answer within 30 s; see " + log_path());
}

void TxnAgent::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  stopped_ = false;
  client_->Disconnect();
}

void TxnAgent::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  stopped_ = true;
  client_->Disconnect();
}

void TxnAgent::Continue() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  stopped_ = false;
}

Status TxnAgent::ReadAccounts(std::map<int64_t, int64_t>* out) {
  const std::string gtid =
      "read-" + std::to_string(getpid()) + "-" + spec_.name + "-" + std::to_string(reads_++);
  rpc::OpenBranchRequest open;
  open.gtid = gtid;
  open.branch = "r";
  rpc::OpenBranchResponse o;
  VERDICT_RETURN_IF_ERROR(client_->OpenBranch(open, &o));
  if (o.code != rpc::ParticipantCode::OK) {
    return Status::IOError(spec_.name + ": OpenBranch for a read: " + ParticipantCodeName(o.code) +
                           " " + o.message);
  }
  rpc::ExecuteResponse e;
  Status s = client_->Execute(gtid, "r", kReadAllSql, {}, &e);
  rpc::BranchResponse a;
  client_->Abort(gtid, "r", &a);
  VERDICT_RETURN_IF_ERROR(s);
  if (e.code != rpc::ParticipantCode::OK) {
    return Status::IOError(spec_.name + ": read: " + ParticipantCodeName(e.code) + " " + e.message);
  }
  out->clear();
  for (const auto& row : e.rows) {
    if (row.values.size() != 2) return Status::Corruption(spec_.name + ": bad row");
    (*out)[row.values[0].integer] = row.values[1].integer;
  }
  return Status::OK();
}

Status TxnAgent::BranchState(const std::string& gtid, const std::string& branch,
                             rpc::BranchState::type* out) {
  rpc::BranchStatusResponse r;
  VERDICT_RETURN_IF_ERROR(client_->GetBranchStatus(gtid, branch, &r));
  if (r.code == rpc::ParticipantCode::NOT_FOUND) {
    *out = rpc::BranchState::NONE;
  } else if (r.code == rpc::ParticipantCode::OK) {
    *out = r.info.state;
  } else {
    return Status::IOError(spec_.name + ": GetBranchStatus " + ParticipantCodeName(r.code) + " " +
                           r.message);
  }
  return Status::OK();
}

Status TxnAgent::InDoubt(std::vector<rpc::BranchInfo>* out) {
  rpc::ListInDoubtResponse r;
  VERDICT_RETURN_IF_ERROR(client_->ListInDoubt(&r));
  if (r.code != rpc::ParticipantCode::OK) {
    return Status::IOError(spec_.name + ": ListInDoubt " + ParticipantCodeName(r.code));
  }
  *out = r.branches;
  return Status::OK();
}

// ---- TxnCluster: processes -------------------------------------------------------------

TxnCluster::TxnCluster(PgServer* pg, TxnClusterOptions options)
    : pg_(pg),
      options_(std::move(options)),
      dir_(testing::MakeTempDir("verdict-txn")),
      db_prefix_("c" + std::to_string(getpid()) + "_" + std::to_string(cluster_counter++)) {
  coordinators_ = std::make_unique<testing::CoordinatorCluster>(options_.coordinators,
                                                                options_.coordinator_flags);
  NetnsTestbed* net = options_.netns;
  if (net != nullptr) {
    coordinators_->SetNetwork([net](int id) { return net->Host(id); },
                              [net](int id) { return net->Prefix(id); });
  }
  std::string list;
  for (const auto& a : coordinators_->Addresses()) list += (list.empty() ? "" : ",") + a;
  for (const auto& shard : options_.shards) {
    std::string dsn = shard.backend == Backend::kPostgres && pg_ != nullptr
                          ? pg_->Dsn(PgDatabase(shard.name))
                          : "";
    const int ns = options_.coordinators + 1 + static_cast<int>(agents_.size());
    agents_[shard.name] = std::make_unique<TxnAgent>(
        shard, dir_, list, dsn, options_.agent_flags, net ? net->Host(ns) : "127.0.0.1",
        net ? net->Prefix(ns) : std::vector<std::string>{});
  }
}

TxnCluster::~TxnCluster() {
  agents_.clear();
  coordinators_.reset();
  if (std::getenv("VERDICT_KEEP_TEST_DIRS")) {
    std::fprintf(stderr, "keeping %s\n", dir_.c_str());
  } else {
    testing::RemoveTree(dir_);
  }
}

std::string TxnCluster::PgDatabase(const std::string& shard) const {
  return db_prefix_ + "_" + shard;
}

Status TxnCluster::Start(const std::string& coordinator_failpoint) {
  if (options_.netns != nullptr &&
      options_.netns->size() < options_.coordinators + static_cast<int>(options_.shards.size())) {
    return Status::FailedPrecondition(
        "the network testbed needs a namespace per coordinator "
        "and per agent");
  }
  for (const auto& shard : options_.shards) {
    if (shard.backend != Backend::kPostgres) continue;
    if (pg_ == nullptr || !pg_->running()) {
      return Status::FailedPrecondition("PostgreSQL shard " + shard.name +
                                        " needs a running PgServer");
    }
    VERDICT_RETURN_IF_ERROR(pg_->CreateDatabase(PgDatabase(shard.name)));
  }
  for (int id = 1; id <= coordinators_->size(); ++id) {
    StartCoordinator(id, coordinator_failpoint);
  }
  if (WaitForLeader(30s) == 0) {
    return Status::Timeout("no coordinator leader within 30 s\n" + LogTails(15));
  }
  for (auto& [name, agent] : agents_) {
    Status s = agent->Start();
    if (!s.ok()) return s;
  }
  VERDICT_RETURN_IF_ERROR(WaitForRegistration(30s));
  for (auto& [name, agent] : agents_) VERDICT_RETURN_IF_ERROR(CreateSchema(*agent));
  return Status::OK();
}

void TxnCluster::StartCoordinator(int id, const std::string& failpoint) {
  ScopedFailpointEnv env(failpoint);
  coordinators_->Start(id);
}

std::vector<int> TxnCluster::ReapExitedCoordinators() {
  std::vector<int> out;
  for (int id = 1; id <= coordinators_->size(); ++id) {
    if (!coordinators_->Running(id)) continue;
    if (coordinators_->WaitExit(id, 0ms).has_value()) out.push_back(id);
  }
  return out;
}

void TxnCluster::SignalAllCoordinators(int sig) {
  for (int id = 1; id <= coordinators_->size(); ++id) coordinators_->Signal(id, sig);
}

int TxnCluster::WaitForLeader(std::chrono::milliseconds timeout) const {
  return coordinators_->WaitForLeader(timeout);
}

std::unique_ptr<TxnClient> TxnCluster::Client(int id, int timeout_ms) const {
  return std::make_unique<TxnClient>(coordinators_->Address(id), timeout_ms);
}

std::unique_ptr<TxnClient> TxnCluster::LeaderClient(std::chrono::milliseconds timeout) const {
  int id = WaitForLeader(timeout);
  if (id == 0) return nullptr;
  return Client(id);
}

int TxnCluster::CoordinatorLogging(const std::string& text) const {
  for (int id = 1; id <= coordinators_->size(); ++id) {
    if (coordinators_->Log(id).find(text) != std::string::npos) return id;
  }
  return 0;
}

int TxnCluster::WaitForCoordinatorLog(const std::string& text,
                                      std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  while (true) {
    int id = CoordinatorLogging(text);
    if (id != 0 || Clock::now() >= deadline) return id;
    std::this_thread::sleep_for(20ms);
  }
}

TxnAgent& TxnCluster::agent(const std::string& shard) { return *agents_.at(shard); }

std::vector<TxnAgent*> TxnCluster::agents() {
  std::vector<TxnAgent*> out;
  for (auto& [name, agent] : agents_) out.push_back(agent.get());
  return out;
}

Status TxnCluster::WaitForRegistration(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string missing;
  while (Clock::now() < deadline) {
    rpc::ListParticipantsResponse r;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    Status s = OnLeader<rpc::ListParticipantsResponse>(
        left,
        [](TxnClient& c, rpc::ListParticipantsResponse* out) { return c.ListParticipants(out); },
        &r);
    if (!s.ok()) return Status::Timeout("ListParticipants on the leader: " + s.ToString());
    missing.clear();
    for (const auto& [name, agent] : agents_) {
      bool found = false;
      for (const auto& p : r.participants) {
        found = found || (p.name == name && p.address == agent->address());
      }
      if (!found) missing += " " + name + "@" + agent->address();
    }
    if (missing.empty()) return Status::OK();
    std::this_thread::sleep_for(100ms);
  }
  return Status::Timeout("agents not registered with the coordinators:" + missing);
}

Status TxnCluster::CreateSchema(TxnAgent& agent) {
  const std::string gtid = "setup-" + agent.name();
  AgentClient& c = agent.client();
  rpc::OpenBranchRequest open;
  open.gtid = gtid;
  open.branch = "s";
  rpc::OpenBranchResponse o;
  VERDICT_RETURN_IF_ERROR(c.OpenBranch(open, &o));
  if (o.code != rpc::ParticipantCode::OK) {
    return Status::IOError(agent.name() + ": setup OpenBranch " + ParticipantCodeName(o.code));
  }
  rpc::ExecuteResponse e;
  VERDICT_RETURN_IF_ERROR(c.Execute(gtid, "s", kAccountsDdl, {}, &e));
  if (e.code != rpc::ParticipantCode::OK) {
    return Status::IOError(agent.name() + ": CREATE TABLE: " + e.message);
  }
  for (int id = 0; id < options_.accounts; ++id) {
    VERDICT_RETURN_IF_ERROR(c.Execute(gtid, "s", "INSERT INTO accounts(id, balance) VALUES (?, ?)",
                                      {SqlInt(id), SqlInt(options_.initial_balance)}, &e));
    if (e.code != rpc::ParticipantCode::OK) {
      return Status::IOError(agent.name() + ": INSERT: " + e.message);
    }
  }
  rpc::BranchResponse b;
  VERDICT_RETURN_IF_ERROR(c.Commit(gtid, "s", /*one_phase=*/true, &b));
  if (b.code != rpc::ParticipantCode::OK) {
    return Status::IOError(agent.name() + ": setup commit " + ParticipantCodeName(b.code) + " " +
                           b.message);
  }
  return Status::OK();
}

// ---- TxnCluster: transactions ----------------------------------------------------------

Status TxnCluster::BeginOnly(TxnClient& leader, rpc::Protocol::type protocol, std::string* gtid) {
  rpc::BeginResponse b;
  VERDICT_RETURN_IF_ERROR(leader.Begin(protocol, 0, &b));
  if (b.code != rpc::ResultCode::OK) {
    return Status::FailedPrecondition("Begin answered " + ResultCodeName(b.code) + " " + b.message);
  }
  *gtid = b.gtid;
  return Status::OK();
}

Status TxnCluster::RunTxn(TxnClient& leader, const TxnSpec& spec, TxnRun* run, bool commit,
                          const std::map<std::string, AgentClient*>* agent_clients) {
  *run = TxnRun();
  rpc::BeginResponse b;
  VERDICT_RETURN_IF_ERROR(leader.Begin(spec.protocol, spec.deadline_ms, &b));
  if (b.code != rpc::ResultCode::OK) {
    return Status::FailedPrecondition("Begin answered " + ResultCodeName(b.code) + " " + b.message);
  }
  if (b.gtid.empty()) return Status::FailedPrecondition("Begin answered OK with an empty gtid");
  run->gtid = b.gtid;
  for (const BranchSpec& br : spec.branches) {
    AgentClient& c = agent_clients ? *agent_clients->at(br.shard) : agent(br.shard).client();
    const std::string name = br.BranchName();
    rpc::OpenBranchRequest open;
    open.gtid = run->gtid;
    open.branch = name;
    open.protocol = spec.protocol;
    open.timeout_ms = b.deadline_ms > 0 ? b.deadline_ms : spec.deadline_ms;
    rpc::OpenBranchResponse o;
    VERDICT_RETURN_IF_ERROR(c.OpenBranch(open, &o));
    if (o.code != rpc::ParticipantCode::OK) {
      return Status::FailedPrecondition(br.shard + ": OpenBranch " + ParticipantCodeName(o.code) +
                                        " " + o.message);
    }
    run->execute_codes[name] = rpc::ParticipantCode::OK;
    std::vector<std::pair<std::string, std::vector<rpc::SqlValue>>> statements;
    for (const auto& [account, delta] : br.updates) {
      statements.push_back({kUpdateSql, {SqlInt(delta), SqlInt(account)}});
    }
    if (br.updates.empty()) statements.push_back({kReadOneSql, {}});
    for (const auto& [sql, params] : statements) {
      rpc::ExecuteResponse e;
      VERDICT_RETURN_IF_ERROR(c.Execute(run->gtid, name, sql, params, &e));
      if (e.code != rpc::ParticipantCode::OK) {
        run->execute_codes[name] = e.code;
        run->execute_messages[name] = e.message;
        break;
      }
      if (!br.updates.empty() && e.rows_affected != 1) {
        return Status::FailedPrecondition(br.shard + ": UPDATE touched " +
                                          std::to_string(e.rows_affected) + " rows");
      }
    }
    rpc::RegisterBranchResponse r;
    VERDICT_RETURN_IF_ERROR(
        leader.RegisterBranch(run->gtid, br.shard, name, br.read_only_hint, &r));
    if (r.code != rpc::ResultCode::OK) {
      return Status::FailedPrecondition("RegisterBranch(" + br.shard + ") answered " +
                                        ResultCodeName(r.code) + " " + r.message);
    }
  }
  if (commit) run->commit_status = leader.Commit(run->gtid, &run->commit);
  return Status::OK();
}

// ---- TxnCluster: checks ----------------------------------------------------------------

Status TxnCluster::Snapshot(Balances* out) {
  out->clear();
  for (auto& [name, agent] : agents_) {
    VERDICT_RETURN_IF_ERROR(agent->ReadAccounts(&(*out)[name]));
  }
  return Status::OK();
}

Balances TxnCluster::Applied(const Balances& before, const TxnSpec& spec) {
  Balances after = before;
  for (const auto& br : spec.branches) {
    for (const auto& [account, delta] : br.updates) after[br.shard][account] += delta;
  }
  return after;
}

bool TxnCluster::WaitForBalances(const Balances& want, std::chrono::milliseconds timeout,
                                 std::string* detail) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    Balances now;
    Status s = Snapshot(&now);
    if (s.ok() && now == want) return true;
    if (Clock::now() >= deadline) {
      *detail = s.ok() ? "shards hold " + ToString(now) + "\nexpected    " + ToString(want)
                       : "cannot read the shards: " + s.ToString();
      return false;
    }
    std::this_thread::sleep_for(100ms);
  }
}

Status TxnCluster::LocalDecision(int id, const std::string& gtid,
                                 std::optional<rpc::Outcome::type>* out) {
  auto client = Client(id, 3000);
  rpc::GetDecisionResponse r;
  VERDICT_RETURN_IF_ERROR(client->GetDecision(gtid, rpc::Consistency::LOCAL, &r));
  if (r.code == rpc::ResultCode::NOT_FOUND) {
    out->reset();
  } else if (r.code == rpc::ResultCode::OK && r.__isset.outcome) {
    *out = r.outcome;
  } else {
    return Status::IOError("node " + std::to_string(id) + " GetDecision(LOCAL) answered " +
                           ResultCodeName(r.code) + " " + r.message);
  }
  return Status::OK();
}

std::map<int, std::string> TxnCluster::DecisionsByNode(const std::string& gtid) {
  std::map<int, std::string> out;
  for (int id = 1; id <= coordinators_->size(); ++id) {
    if (!coordinators_->Running(id)) continue;
    std::optional<rpc::Outcome::type> o;
    Status s = LocalDecision(id, gtid, &o);
    out[id] = s.ok() ? OutcomeText(o) : "error: " + s.ToString();
  }
  return out;
}

bool TxnCluster::WaitForDecisionEverywhere(const std::string& gtid,
                                           std::optional<rpc::Outcome::type> want,
                                           std::chrono::milliseconds timeout, std::string* detail) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto by_node = DecisionsByNode(gtid);
    bool all = !by_node.empty();
    for (const auto& [id, text] : by_node) all = all && text == OutcomeText(want);
    if (all) return true;
    if (Clock::now() >= deadline) {
      std::ostringstream out;
      out << "applied decision of " << gtid << " (want " << OutcomeText(want) << "):";
      for (const auto& [id, text] : by_node) out << " node" << id << "=" << text;
      *detail = out.str();
      return false;
    }
    std::this_thread::sleep_for(100ms);
  }
}

bool TxnCluster::WaitNothingInDoubt(std::chrono::milliseconds timeout, std::string* detail) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    std::ostringstream left;
    rpc::ListTxnsResponse txns;
    Status s = OnLeader<rpc::ListTxnsResponse>(
        5s, [](TxnClient& c, rpc::ListTxnsResponse* out) { return c.ListTxns(true, out); }, &txns);
    if (!s.ok()) {
      left << "ListTxns(in_doubt_only) on the leader: " << s.ToString() << "; ";
    } else if (txns.code != rpc::ResultCode::OK) {
      left << "ListTxns answered " << ResultCodeName(txns.code) << "; ";
    } else {
      for (const auto& t : txns.txns) {
        left << "coordinator: " << t.gtid << " phase=" << t.phase << " in_doubt=" << t.in_doubt
             << "; ";
      }
    }
    for (auto& [name, agent] : agents_) {
      if (!agent->running() || agent->stopped()) continue;
      std::vector<rpc::BranchInfo> branches;
      Status a = agent->InDoubt(&branches);
      if (!a.ok()) left << name << ": " << a.ToString() << "; ";
      for (const auto& b : branches) {
        left << name << ": " << b.gtid << "/" << b.branch << " " << BranchStateName(b.state)
             << "; ";
      }
      if (agent->backend() == Backend::kPostgres && pg_ != nullptr && pg_->running()) {
        std::vector<std::vector<std::string>> rows;
        Status q = pg_->Query(PgDatabase(name),
                              "SELECT gid FROM pg_prepared_xacts WHERE database = "
                              "current_database()",
                              &rows);
        if (!q.ok()) left << name << ": " << q.ToString() << "; ";
        for (const auto& row : rows) left << name << ": pg_prepared_xacts " << row[0] << "; ";
      }
    }
    if (left.str().empty()) return true;
    if (Clock::now() >= deadline) {
      *detail = "still in doubt: " + left.str();
      return false;
    }
    std::this_thread::sleep_for(200ms);
  }
}

bool TxnCluster::WaitBranchState(const std::string& shard, const std::string& gtid,
                                 const std::string& branch,
                                 const std::vector<rpc::BranchState::type>& states,
                                 std::chrono::milliseconds timeout, std::string* detail) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    rpc::BranchState::type st = rpc::BranchState::NONE;
    Status s = agent(shard).BranchState(gtid, branch, &st);
    if (s.ok()) {
      for (auto want : states) {
        if (st == want) return true;
      }
    }
    if (Clock::now() >= deadline) {
      *detail = shard + ": branch " + gtid + "/" + branch + " is " +
                (s.ok() ? BranchStateName(st) : s.ToString());
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
}

Status TxnCluster::FinalOutcome(const std::string& gtid, std::chrono::milliseconds timeout,
                                rpc::TxnOutcome::type* out) {
  auto deadline = Clock::now() + timeout;
  Status last = Status::Timeout("no answer");
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    rpc::TxnOutcomeResponse r;
    Status s = OnLeader<rpc::TxnOutcomeResponse>(
        left, [&](TxnClient& c, rpc::TxnOutcomeResponse* o) { return c.Commit(gtid, o); }, &r);
    if (!s.ok()) {
      last = s;
      continue;
    }
    if (r.code != rpc::ResultCode::OK) {
      return Status::FailedPrecondition("Commit(" + gtid + ") answered " + ResultCodeName(r.code) +
                                        " " + r.message);
    }
    if (r.outcome == rpc::TxnOutcome::COMMITTED || r.outcome == rpc::TxnOutcome::ABORTED) {
      *out = r.outcome;
      return Status::OK();
    }
    last = Status::Timeout("Commit(" + gtid + ") still " + TxnOutcomeName(r.outcome) + ": " +
                           r.reason);
    std::this_thread::sleep_for(200ms);
  }
  return last;
}

std::string TxnCluster::Hazards() {
  std::ostringstream out;
  for (int id = 1; id <= coordinators_->size(); ++id) {
    if (!coordinators_->Running(id)) continue;
    rpc::ListHazardsResponse r;
    Status s = Client(id, 3000)->ListHazards(&r);
    if (!s.ok()) {
      out << "node" << id << ": " << s.ToString() << "\n";
      continue;
    }
    if (r.total == 0 && r.hazards.empty()) continue;
    out << "node" << id << ": " << r.total << " hazard(s)";
    for (const auto& h : r.hazards) {
      out << "\n  " << h.kind << " " << h.gtid << " " << h.participant << "/" << h.branch << ": "
          << h.message;
    }
    out << "\n";
  }
  return out.str();
}

std::string TxnCluster::LogTails(int lines) const {
  std::ostringstream out;
  for (int id = 1; id <= coordinators_->size(); ++id) {
    out << "--- coordinator " << id << " (" << coordinators_->LogPath(id) << ") ---\n"
        << Tail(coordinators_->Log(id), lines) << "\n";
  }
  for (const auto& [name, agent] : agents_) {
    out << "--- agent " << name << " (" << agent->log_path() << ") ---\n"
        << Tail(testing::ReadFileOrEmpty(agent->log_path()), lines) << "\n";
  }
  return out.str();
}

std::string TxnCluster::PreserveLogs(const std::string& dest) const {
  std::error_code ec;
  std::filesystem::create_directories(dest, ec);
  for (int id = 1; id <= coordinators_->size(); ++id) {
    std::filesystem::copy_file(coordinators_->LogPath(id),
                               dest + "/coordinator" + std::to_string(id) + ".log",
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
  for (const auto& [name, agent] : agents_) {
    std::filesystem::copy_file(agent->log_path(), dest + "/agent-" + name + ".log",
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
  return "logs copied to " + dest;
}

}  // namespace verdict::test_support
