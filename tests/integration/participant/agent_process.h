// Test harness for real verdict-participant processes: free loopback ports, spawning with
// flags and environment (failpoints), kill -9 / SIGTERM, and a small Thrift client.
// Binaries come from $VERDICT_BIN_DIR. Used by tests/integration and tests/crash.
// Not thread-safe (one test thread).
#pragma once

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
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ParticipantService.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

extern char** environ;

namespace verdict::participant::testing {

inline std::string BinDir() {
  const char* d = std::getenv("VERDICT_BIN_DIR");
  return d ? d : "build/bin";
}

// A loopback port that was free a moment ago.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// Runs a binary to completion; returns its exit status and stderr.
inline int RunToExit(const std::vector<std::string>& args, std::string* err) {
  std::string log = "/tmp/verdict-part-run-" + std::to_string(getpid()) + ".log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) return -1;
  posix_spawn_file_actions_destroy(&fa);
  int st = 0;
  waitpid(pid, &st, 0);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  *err = ss.str();
  unlink(log.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// One agent process with a fixed name, port, data dir and SQLite file across restarts.
class AgentProcess {
 public:
  AgentProcess(std::string name, std::string dir, std::string coordinators)
      : name_(std::move(name)),
        dir_(std::move(dir)),
        coordinators_(std::move(coordinators)),
        port_(FreePort()) {}
  ~AgentProcess() { Kill9(); }

  std::map<std::string, std::string> extra_flags = {{"--inquiry-after-ms", "300"},
                                                    {"--precommit-timeout-ms", "1500"},
                                                    {"--rpc-timeout-ms", "500"},
                                                    {"--lock-timeout-ms", "300"},
                                                    {"--tick-ms", "50"}};

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& name() const { return name_; }
  std::string db() const { return dir_ + "/" + name_ + ".db"; }
  std::string log() const { return dir_ + "/" + name_ + ".log"; }

  // Starts the process (with VERDICT_FAILPOINT=failpoint if not empty) and waits until it
  // answers RPCs.
  void Start(const std::string& failpoint = "") {
    std::vector<std::string> args = {BinDir() + "/verdict-participant",
                                     "--name",
                                     name_,
                                     "--listen",
                                     address(),
                                     "--coordinators",
                                     coordinators_,
                                     "--data-dir",
                                     dir_ + "/" + name_ + "-data",
                                     "--backend",
                                     "sqlite",
                                     "--sqlite-path",
                                     db(),
                                     "--log-level",
                                     "debug"};
    for (const auto& [k, v] : extra_flags) {
      args.push_back(k);
      args.push_back(v);
    }
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
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
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) {
      throw std::runtime_error("cannot spawn " + args[0]);
    }
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 200; ++i) {
      try {
        rpc::ListInDoubtResponse r;
        Client().ListInDoubt(r);
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("agent exited during start-up; see " + log());
      }
    }
    throw std::runtime_error("agent did not start; see " + log());
  }

  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    channel_.reset();
  }
  // SIGTERM; returns the exit status (or -1).
  int Terminate() {
    if (pid_ <= 0) return -1;
    channel_.reset();
    kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  // Waits for the process to die by itself (e.g. a kill failpoint); true if it did.
  bool WaitForDeath(int timeout_ms) {
    for (int i = 0; i < timeout_ms / 10; ++i) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        channel_.reset();
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // A client on a fresh connection (reconnects after a restart).
  rpc::ParticipantServiceClient& Client() {
    if (!channel_) {
      channel_ = std::make_unique<rpc::ThriftChannel>(address(), kParticipantServiceName, 5000);
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

  // --- Small verbs over RPC ---------------------------------------------------------
  rpc::OpenBranchResponse Open(const std::string& gtid, const std::string& branch,
                               rpc::Protocol::type p = rpc::Protocol::TWO_PC) {
    rpc::OpenBranchRequest req;
    req.gtid = gtid;
    req.branch = branch;
    req.protocol = p;
    rpc::OpenBranchResponse r;
    Client().OpenBranch(r, req);
    return r;
  }
  rpc::ExecuteResponse Exec(const std::string& gtid, const std::string& branch,
                            const std::string& sql, std::vector<rpc::SqlValue> params = {}) {
    rpc::ExecuteRequest req;
    req.gtid = gtid;
    req.branch = branch;
    req.sql = sql;
    req.params = std::move(params);
    rpc::ExecuteResponse r;
    Client().Execute(r, req);
    return r;
  }
  rpc::PrepareResponse Prepare(const std::string& gtid, const std::string& branch,
                               std::vector<rpc::PeerBranch> parts = {}) {
    rpc::PrepareRequest req;
    req.gtid = gtid;
    req.branch = branch;
    req.participants = parts.empty() ? std::vector<rpc::PeerBranch>{Peer(branch)} : parts;
    rpc::PrepareResponse r;
    Client().Prepare(r, req);
    return r;
  }
  rpc::BranchResponse Commit(const std::string& gtid, const std::string& branch,
                             bool one_phase = false) {
    rpc::CommitRequest req;
    req.gtid = gtid;
    req.branch = branch;
    req.one_phase = one_phase;
    rpc::BranchResponse r;
    Client().Commit(r, req);
    return r;
  }
  rpc::BranchResponse Abort(const std::string& gtid, const std::string& branch) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = branch;
    rpc::BranchResponse r;
    Client().Abort(r, req);
    return r;
  }
  rpc::BranchResponse Precommit(const std::string& gtid, const std::string& branch) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = branch;
    rpc::BranchResponse r;
    Client().Precommit(r, req);
    return r;
  }
  rpc::BranchResponse Fence(const std::string& gtid, const std::string& branch) {
    rpc::FenceRequest req;
    req.gtid = gtid;
    req.branch = branch;
    req.fencer = "test";
    rpc::BranchResponse r;
    Client().Fence(r, req);
    return r;
  }
  rpc::BranchState::type State(const std::string& gtid, const std::string& branch) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = branch;
    rpc::BranchStatusResponse r;
    Client().GetBranchStatus(r, req);
    return r.info.state;
  }
  // Polls until the branch reaches `want` or timeout; returns the last state.
  rpc::BranchState::type WaitState(const std::string& gtid, const std::string& branch,
                                   rpc::BranchState::type want, int timeout_ms) {
    rpc::BranchState::type st = State(gtid, branch);
    for (int i = 0; i < timeout_ms / 50 && st != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      st = State(gtid, branch);
    }
    return st;
  }
  rpc::PeerBranch Peer(const std::string& branch) const {
    rpc::PeerBranch p;
    p.name = name_;
    p.address = address();
    p.branch = branch;
    return p;
  }

  // Sets up table t(id INTEGER PRIMARY KEY, v INTEGER) with rows 1..n at 0 (one-phase).
  void CreateTable(int n) {
    Open("setup", "s");
    Exec("setup", "s", "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    for (int i = 1; i <= n; ++i)
      Exec("setup", "s", "INSERT INTO t VALUES (" + std::to_string(i) + ", 0)");
    Commit("setup", "s", true);
  }
  // Reads t.v for `id` in a throw-away branch (-1 if absent).
  int64_t V(int id) {
    std::string g = "read-" + std::to_string(reads_++);
    Open(g, "r");
    rpc::ExecuteResponse r = Exec(g, "r", "SELECT v FROM t WHERE id = " + std::to_string(id));
    Abort(g, "r");
    if (r.rows.empty()) return -1;
    return r.rows[0].values[0].integer;
  }

 private:
  std::string name_, dir_, coordinators_;
  int port_;
  pid_t pid_ = -1;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
  int reads_ = 0;
};

inline rpc::SqlValue Int(int64_t v) {
  rpc::SqlValue x;
  x.type = rpc::SqlType::INTEGER;
  x.__set_integer(v);
  return x;
}
inline rpc::SqlValue Text(const std::string& v) {
  rpc::SqlValue x;
  x.type = rpc::SqlType::TEXT;
  x.__set_bytes(v);
  return x;
}

}  // namespace verdict::participant::testing
