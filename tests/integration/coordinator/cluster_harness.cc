#include "tests/integration/coordinator/cluster_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thrift/Thrift.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace verdict::testing {

namespace {

using Clock = std::chrono::steady_clock;

// Forks and execs `args` with stdout and stderr appended to `log_path`.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    // Do not inherit the test's blocked signals.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s failed\n", argv[0]);
    _exit(127);
  }
  return pid;
}

struct SilenceThrift {
  SilenceThrift() {
    apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
  }
} silence_thrift;

// Under ThreadSanitizer, the nodes get the suppressions for libthrift's internals.
struct TsanSuppressions {
  TsanSuppressions() {
    const char* src = std::getenv("VERDICT_SOURCE_DIR");
    if (src && *src && !std::getenv("TSAN_OPTIONS")) {
      std::string opts =
          std::string("suppressions=") + src + "/tests/integration/coordinator/tsan_thrift.supp";
      setenv("TSAN_OPTIONS", opts.c_str(), 0);
    }
  }
} tsan_suppressions;

}  // namespace

std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("VERDICT_BIN_DIR");
  if (!dir || !*dir) {
    std::fprintf(stderr, "VERDICT_BIN_DIR is not set (run through ctest)\n");
    std::abort();
  }
  return std::string(dir) + "/" + name;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("FreePort");
    std::abort();
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + ".XXXXXX";
  if (!mkdtemp(templ.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  return templ;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ProcessResult RunProcess(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::string dir = MakeTempDir("verdict-run");
  std::string log = dir + "/out";
  pid_t pid = Spawn(args, log);
  ProcessResult result;
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.output = "(timed out)\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.output += ReadFileOrEmpty(log);
  RemoveTree(dir);
  return result;
}

CoordinatorCluster::CoordinatorCluster(int n, std::vector<std::string> extra_flags)
    : n_(n), extra_flags_(std::move(extra_flags)), dir_(MakeTempDir("verdict-cluster")) {
  for (int id = 1; id <= n; ++id) ports_[id] = FreePort();
}

CoordinatorCluster::~CoordinatorCluster() {
  KillAll();
  if (std::getenv("VERDICT_KEEP_TEST_DIRS")) {
    std::fprintf(stderr, "keeping %s\n", dir_.c_str());
  } else {
    RemoveTree(dir_);
  }
}

void CoordinatorCluster::SetNetwork(std::function<std::string(int)> host,
                                    std::function<std::vector<std::string>(int)> prefix) {
  host_ = std::move(host);
  prefix_ = std::move(prefix);
}

std::string CoordinatorCluster::Address(int id) const {
  return (host_ ? host_(id) : std::string("127.0.0.1")) + ":" + std::to_string(ports_.at(id));
}

std::vector<std::string> CoordinatorCluster::Addresses() const {
  std::vector<std::string> out;
  for (int id = 1; id <= n_; ++id) out.push_back(Address(id));
  return out;
}

std::string CoordinatorCluster::ClusterFlag() const {
  std::string out;
  for (int id = 1; id <= n_; ++id) {
    out += (id > 1 ? "," : "") + std::to_string(id) + "=" + Address(id);
  }
  return out;
}

std::string CoordinatorCluster::DataDir(int id) const {
  return dir_ + "/node" + std::to_string(id);
}

std::string CoordinatorCluster::LogPath(int id) const {
  return dir_ + "/node" + std::to_string(id) + ".log";
}

std::vector<std::string> CoordinatorCluster::Args(int id) const {
  std::vector<std::string> args = {BinaryPath("verdict-coordinator"),
                                   "--id",
                                   std::to_string(id),
                                   "--cluster",
                                   ClusterFlag(),
                                   "--data-dir",
                                   DataDir(id)};
  args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
  return args;
}

void CoordinatorCluster::StartAll() {
  for (int id = 1; id <= n_; ++id) Start(id);
}

void CoordinatorCluster::Start(int id) {
  if (Running(id)) return;
  std::vector<std::string> args = prefix_ ? prefix_(id) : std::vector<std::string>{};
  const std::vector<std::string> node = Args(id);
  args.insert(args.end(), node.begin(), node.end());
  pids_[id] = Spawn(args, LogPath(id));
}

void CoordinatorCluster::Signal(int id, int sig) {
  auto it = pids_.find(id);
  if (it == pids_.end()) return;
  kill(it->second, sig);
  if (sig == SIGKILL) {
    int status;
    waitpid(it->second, &status, 0);
    pids_.erase(it);
  }
}

void CoordinatorCluster::KillAll() {
  for (int id = 1; id <= n_; ++id) Kill(id);
}

std::optional<int> CoordinatorCluster::WaitExit(int id, std::chrono::milliseconds timeout) {
  auto it = pids_.find(id);
  if (it == pids_.end()) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = waitpid(it->second, &status, WNOHANG);
    if (r == it->second) break;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pids_.erase(it);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Status CoordinatorCluster::NodeStatus(int id, rpc::NodeStatus* out) const {
  std::unique_ptr<tools::CoordinatorClient> client;
  VERDICT_RETURN_IF_ERROR(tools::CoordinatorClient::Connect(Address(id), 2000, &client));
  return client->GetStatus(out);
}

int CoordinatorCluster::WaitForLeader(std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int leader = 0, leaders = 0, answered = 0;
    bool agree = true;
    int64_t term = -1, seen_leader = -1;
    for (auto& [id, pid] : pids_) {
      rpc::NodeStatus st;
      if (!NodeStatus(id, &st).ok()) {
        agree = false;
        break;
      }
      ++answered;
      if (st.role == rpc::Role::LEADER) {
        ++leaders;
        leader = id;
      }
      if (term == -1) term = st.term;
      if (seen_leader == -1) seen_leader = st.leader.id;
      agree = agree && st.term == term && st.leader.id == seen_leader;
    }
    if (agree && answered > 0 && leaders == 1 && seen_leader == leader) return leader;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

bool CoordinatorCluster::WaitForApplied(int64_t index, std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    bool all = true;
    for (auto& [id, pid] : pids_) {
      rpc::NodeStatus st;
      all = all && NodeStatus(id, &st).ok() && st.applied_index >= index;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::unique_ptr<tools::CoordinatorClient> CoordinatorCluster::Client(int id, int timeout_ms) const {
  std::unique_ptr<tools::CoordinatorClient> client;
  Status s = tools::CoordinatorClient::Connect(Address(id), timeout_ms, &client);
  if (!s.ok()) return nullptr;
  return client;
}

}  // namespace verdict::testing
