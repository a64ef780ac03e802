#include "tests/support/agent_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "participant/rpc_names.h"

extern char** environ;

namespace verdict::test_support {

std::string BinDir() {
  const char* d = std::getenv("VERDICT_BIN_DIR");
  return d ? d : "build/bin";
}

// A port the kernel would give to bind(0) now and that this process has not handed out
// before: the probe socket is closed before the agent binds, so two calls can otherwise
// get the same port (seen once: two agents of one cluster on one port).
int FreePort() {
  static std::mutex mu;
  static std::set<int> handed_out;
  std::lock_guard<std::mutex> lock(mu);
  while (true) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const int port = ntohs(a.sin_port);
    close(fd);
    if (handed_out.insert(port).second) return port;
  }
}

std::string UnreachableAddress() { return "127.0.0.1:" + std::to_string(FreePort()); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunToExit(const std::vector<std::string>& args, std::string* err) {
  std::string log = "/tmp/verdict-part-run-" + std::to_string(getpid()) + ".log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int st = 0;
  waitpid(pid, &st, 0);
  *err = ReadFile(log);
  unlink(log.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

namespace {
AgentProcessOptions WithCoordinators(AgentProcessOptions o) {
  if (o.coordinators.empty()) o.coordinators = UnreachableAddress();
  return o;
}
}  // namespace

AgentProcess::AgentProcess(AgentProcessOptions options)
    : options_(WithCoordinators(std::move(options))), port_(FreePort()) {}

AgentProcess::AgentProcess(std::string name, std::string dir, std::string coordinators)
    : AgentProcess(AgentProcessOptions{std::move(name), std::move(dir), std::move(coordinators),
                                       "sqlite", ""}) {}

AgentProcess::~AgentProcess() { Kill9(); }

std::string AgentProcess::address() const { return "127.0.0.1:" + std::to_string(port_); }
std::string AgentProcess::db() const { return options_.dir + "/" + options_.name + ".db"; }
std::string AgentProcess::log() const { return options_.dir + "/" + options_.name + ".log"; }
std::string AgentProcess::ReadLog() const { return ReadFile(log()); }

bool AgentProcess::WaitForLog(const std::string& needle, int timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (ReadLog().find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::vector<std::string> AgentProcess::Args() const {
  std::vector<std::string> args = {BinDir() + "/verdict-participant",
                                   "--name",
                                   options_.name,
                                   "--listen",
                                   address(),
                                   "--coordinators",
                                   options_.coordinators,
                                   "--data-dir",
                                   options_.dir + "/" + options_.name + "-data",
                                   "--backend",
                                   options_.backend};
  if (options_.backend == "postgres") {
    args.insert(args.end(), {"--pg-dsn", options_.pg_dsn});
  } else {
    args.insert(args.end(), {"--sqlite-path", db()});
  }
  args.insert(args.end(), {"--log-level", "debug"});
  for (const auto& [k, v] : extra_flags) {
    args.push_back(k);
    args.push_back(v);
  }
  return args;
}

void AgentProcess::Start(const std::string& failpoint) {
  std::vector<std::string> args = Args();
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    const std::string key = var.substr(0, var.find('='));
    if (key == "VERDICT_FAILPOINT" || env.count(key)) continue;
    envs.push_back(var);
  }
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  if (!failpoint.empty()) envs.push_back("VERDICT_FAILPOINT=" + failpoint);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
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
      throw std::runtime_error("agent " + options_.name + " exited during start-up:\n" + ReadLog());
    }
  }
  throw std::runtime_error("agent " + options_.name + " did not start:\n" + ReadLog());
}

void AgentProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  Reconnect();
}

int AgentProcess::Terminate() {
  if (pid_ <= 0) return -1;
  Reconnect();
  kill(pid_, SIGTERM);
  int st = 0;
  waitpid(pid_, &st, 0);
  pid_ = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool AgentProcess::WaitForDeath(int timeout_ms) {
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

rpc::ParticipantServiceClient& AgentProcess::Client() {
  if (channel_ == nullptr) {
    channel_ = std::make_unique<rpc::ThriftChannel>(address(), participant::kParticipantServiceName,
                                                    10000);
    verdict::Status s = channel_->Open();
    if (!s.ok()) {
      channel_.reset();
      throw std::runtime_error(s.ToString());
    }
    client_ = std::make_unique<rpc::ParticipantServiceClient>(channel_->protocol());
  }
  return *client_;
}

void AgentProcess::Reconnect() {
  client_.reset();
  channel_.reset();
}

namespace {
rpc::BranchRequest Request(const std::string& gtid, const std::string& branch) {
  rpc::BranchRequest req;
  req.gtid = gtid;
  req.branch = branch;
  return req;
}
}  // namespace

rpc::OpenBranchResponse AgentProcess::Open(const std::string& gtid, const std::string& branch,
                                           rpc::Protocol::type p) {
  rpc::OpenBranchRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.protocol = p;
  rpc::OpenBranchResponse r;
  Client().OpenBranch(r, req);
  return r;
}

rpc::ExecuteResponse AgentProcess::Exec(const std::string& gtid, const std::string& branch,
                                        const std::string& sql, std::vector<rpc::SqlValue> params) {
  rpc::ExecuteRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.sql = sql;
  req.params = std::move(params);
  rpc::ExecuteResponse r;
  Client().Execute(r, req);
  return r;
}

rpc::PrepareResponse AgentProcess::Prepare(const std::string& gtid, const std::string& branch,
                                           std::vector<rpc::PeerBranch> parts) {
  rpc::PrepareRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.participants = parts.empty() ? std::vector<rpc::PeerBranch>{Peer(branch)} : parts;
  rpc::PrepareResponse r;
  Client().Prepare(r, req);
  return r;
}

rpc::BranchResponse AgentProcess::Commit(const std::string& gtid, const std::string& branch,
                                         bool one_phase) {
  rpc::CommitRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.one_phase = one_phase;
  rpc::BranchResponse r;
  Client().Commit(r, req);
  return r;
}

rpc::BranchResponse AgentProcess::Abort(const std::string& gtid, const std::string& branch) {
  rpc::BranchResponse r;
  Client().Abort(r, Request(gtid, branch));
  return r;
}

rpc::BranchResponse AgentProcess::AbortIfUnvoted(const std::string& gtid,
                                                 const std::string& branch) {
  rpc::BranchResponse r;
  Client().AbortIfUnvoted(r, Request(gtid, branch));
  return r;
}

rpc::BranchResponse AgentProcess::Precommit(const std::string& gtid, const std::string& branch) {
  rpc::BranchResponse r;
  Client().Precommit(r, Request(gtid, branch));
  return r;
}

rpc::BranchResponse AgentProcess::Fence(const std::string& gtid, const std::string& branch) {
  rpc::FenceRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.fencer = "test";
  rpc::BranchResponse r;
  Client().Fence(r, req);
  return r;
}

rpc::BranchStatusResponse AgentProcess::Status(const std::string& gtid, const std::string& branch) {
  rpc::BranchStatusResponse r;
  Client().GetBranchStatus(r, Request(gtid, branch));
  return r;
}

rpc::BranchState::type AgentProcess::State(const std::string& gtid, const std::string& branch) {
  return Status(gtid, branch).info.state;
}

rpc::ListInDoubtResponse AgentProcess::ListInDoubt() {
  rpc::ListInDoubtResponse r;
  Client().ListInDoubt(r);
  return r;
}

rpc::BranchState::type AgentProcess::WaitState(const std::string& gtid, const std::string& branch,
                                               rpc::BranchState::type want, int timeout_ms) {
  rpc::BranchState::type st = State(gtid, branch);
  for (int i = 0; i < timeout_ms / 50 && st != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    st = State(gtid, branch);
  }
  return st;
}

rpc::PeerBranch AgentProcess::Peer(const std::string& branch) const {
  rpc::PeerBranch p;
  p.name = options_.name;
  p.address = address();
  p.branch = branch;
  return p;
}

void AgentProcess::CreateTable(int n) {
  Open("setup", "s");
  Exec("setup", "s", "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
  for (int i = 1; i <= n; ++i) {
    Exec("setup", "s", "INSERT INTO t VALUES (" + std::to_string(i) + ", 0)");
  }
  Commit("setup", "s", true);
}

int64_t AgentProcess::V(int id) {
  std::string g = "read-" + std::to_string(reads_++);
  Open(g, "r");
  rpc::ExecuteResponse r = Exec(g, "r", "SELECT v FROM t WHERE id = " + std::to_string(id));
  Abort(g, "r");
  if (r.rows.empty()) return -1;
  return r.rows[0].values[0].integer;
}

rpc::SqlValue Int(int64_t v) {
  rpc::SqlValue x;
  x.type = rpc::SqlType::INTEGER;
  x.__set_integer(v);
  return x;
}

rpc::SqlValue Text(const std::string& v) {
  rpc::SqlValue x;
  x.type = rpc::SqlType::TEXT;
  x.__set_bytes(v);
  return x;
}

}  // namespace verdict::test_support
