#include "bench/coordinator_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/decision_client.h"
#include "bench/resource_usage.h"

namespace verdict::bench {

namespace {

constexpr int kStatusTimeoutMs = 1000;
constexpr int kScrapeTimeoutMs = 2000;

}  // namespace

// Distinct loopback ports that were free a moment ago: all are bound at once (so that they
// differ), then released for the processes to bind.
Status PickFreePorts(int n, std::vector<int>* ports) {
  std::vector<int> fds;
  Status status;
  for (int i = 0; i < n && status.ok(); ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = Status::IOError(std::string("socket: ") + std::strerror(errno));
      break;
    }
    fds.push_back(fd);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0) {
      status = Status::IOError(std::string("bind: ") + std::strerror(errno));
      break;
    }
    ports->push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return status;
}

Status CoordinatorCluster::Start() {
  if (!nodes_.empty()) return Status::FailedPrecondition("cluster already started");
  if (access(options_.coordinator_binary.c_str(), X_OK) != 0) {
    return Status::NotFound(options_.coordinator_binary + " is not an executable (build it: " +
                            "cmake --build BUILD --target verdict-coordinator)");
  }
  char tmpl[] = "/tmp/verdict-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return Status::IOError(std::string("mkdtemp: ") + std::strerror(errno));
  }
  root_dir_ = tmpl;
  std::vector<int> ports;
  VERDICT_RETURN_IF_ERROR(PickFreePorts(2 * options_.nodes, &ports));
  std::string cluster;
  for (int i = 0; i < options_.nodes; ++i) {
    Node node;
    node.id = i + 1;
    node.address = "127.0.0.1:" + std::to_string(ports[2 * i]);
    node.metrics_port = ports[2 * i + 1];
    node.data_dir = root_dir_ + "/node" + std::to_string(node.id);
    node.log_path = root_dir_ + "/node" + std::to_string(node.id) + ".log";
    std::error_code ec;
    std::filesystem::create_directories(node.data_dir, ec);
    if (ec) return Status::IOError("mkdir " + node.data_dir + ": " + ec.message());
    if (!cluster.empty()) cluster += ",";
    cluster += std::to_string(node.id) + "=" + node.address;
    nodes_.push_back(std::move(node));
  }
  for (Node& node : nodes_) {
    // fsync stays on: this benchmark never passes --unsafe-no-fsync.
    std::vector<std::string> argv = {options_.coordinator_binary,
                                     "--id",
                                     std::to_string(node.id),
                                     "--cluster",
                                     cluster,
                                     "--data-dir",
                                     node.data_dir,
                                     "--metrics-port",
                                     std::to_string(node.metrics_port)};
    node.process = std::make_unique<ChildProcess>();
    VERDICT_RETURN_IF_ERROR(node.process->Start(argv, node.log_path));
  }
  return Status::OK();
}

std::string CoordinatorCluster::FindLeader() const {
  for (const Node& node : nodes_) {
    DecisionClient client(kStatusTimeoutMs);
    if (!client.Connect(node.address).ok()) continue;
    rpc::NodeStatus status;
    if (!client.GetStatus(&status).ok()) continue;
    if (status.role == rpc::Role::LEADER) return node.address;
  }
  return "";
}

Status CoordinatorCluster::WaitForLeader(std::chrono::milliseconds timeout,
                                         std::string* leader_address) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_seen;
  while (true) {
    VERDICT_RETURN_IF_ERROR(CheckAlive());
    if (Interrupted()) return Status::Aborted("interrupted");
    last_seen.clear();
    for (const Node& node : nodes_) {
      DecisionClient client(kStatusTimeoutMs);
      Status s = client.Connect(node.address);
      rpc::NodeStatus status;
      if (s.ok()) s = client.GetStatus(&status);
      if (!s.ok()) {
        last_seen += " node " + std::to_string(node.id) + ": " + s.ToString() + ";";
        continue;
      }
      last_seen += " node " + std::to_string(node.id) + ": role " +
                   std::to_string(static_cast<int>(status.role)) + " term " +
                   std::to_string(status.term) + ";";
      if (status.role == rpc::Role::LEADER) {
        *leader_address = node.address;
        return Status::OK();
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout("no leader elected:" + last_seen);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Status CoordinatorCluster::CheckAlive() {
  for (Node& node : nodes_) {
    if (!node.process->Running()) {
      return Status::Unavailable("coordinator node " + std::to_string(node.id) + " exited (" +
                                 node.process->ExitDescription() + "); log: " + node.log_path);
    }
  }
  return Status::OK();
}

std::vector<NodeReading> CoordinatorCluster::Read() const {
  std::vector<NodeReading> readings;
  for (const Node& node : nodes_) {
    NodeReading r;
    r.cpu_seconds = ProcessCpuSeconds(node.process->pid());
    r.threads = ProcessThreads(node.process->pid());
    r.metrics = ScrapeMetrics(node.metrics_port, kScrapeTimeoutMs);
    readings.push_back(std::move(r));
  }
  return readings;
}

int CoordinatorCluster::IndexOf(const std::string& address) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].address == address) return static_cast<int>(i);
  }
  return -1;
}

void CoordinatorCluster::DumpLogTails(int lines) const {
  for (const Node& node : nodes_) {
    std::ifstream in(node.log_path);
    std::deque<std::string> tail;
    std::string line;
    while (std::getline(in, line)) {
      tail.push_back(line);
      if (static_cast<int>(tail.size()) > lines) tail.pop_front();
    }
    std::fprintf(stderr, "---- last %zu lines of %s\n", tail.size(), node.log_path.c_str());
    for (const auto& l : tail) std::fprintf(stderr, "  %s\n", l.c_str());
  }
}

void CoordinatorCluster::Stop() {
  for (Node& node : nodes_) {
    if (node.process) node.process->Stop(std::chrono::milliseconds(5000));
  }
  if (!root_dir_.empty()) {
    if (options_.keep_data) {
      std::fprintf(stderr, "verdict-bench: kept %s\n", root_dir_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(root_dir_, ec);
    }
    root_dir_.clear();
  }
}

}  // namespace verdict::bench
