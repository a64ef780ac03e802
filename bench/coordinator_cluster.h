// CoordinatorCluster: a group of real verdict-coordinator processes on loopback, started
// by the benchmark on free ports with fresh data directories under /tmp (fsync always on),
// and stopped (processes killed, directories removed) by Stop() or the destructor.
// Not thread-safe, except FindLeader(), which any thread may call.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/child_process.h"
#include "common/status.h"

namespace verdict::bench {

struct ClusterOptions {
  std::string coordinator_binary;  // path to verdict-coordinator
  int nodes = 3;
  bool keep_data = false;  // leave the temp directory (logs, data) after Stop()
};

// Readings of one node taken at one moment (see resource_usage.h).
struct NodeReading {
  double cpu_seconds = 0;
  int threads = -1;
  std::map<std::string, double> metrics;  // empty if the endpoint did not answer
};

// Distinct loopback ports that were free a moment ago (bound together, then released).
Status PickFreePorts(int n, std::vector<int>* ports);

class CoordinatorCluster {
 public:
  struct Node {
    int id = 0;
    std::string address;  // 127.0.0.1:PORT
    int metrics_port = 0;
    std::string data_dir;
    std::string log_path;
    std::unique_ptr<ChildProcess> process;
  };

  explicit CoordinatorCluster(ClusterOptions options) : options_(std::move(options)) {}
  CoordinatorCluster(const CoordinatorCluster&) = delete;
  CoordinatorCluster& operator=(const CoordinatorCluster&) = delete;
  ~CoordinatorCluster() { Stop(); }

  // Picks ports, creates the data directories and starts every node.
  Status Start();
  // Polls GetStatus on every node until one reports itself LEADER. Timeout (with every
  // node's last answer) if none does in time; Unavailable if a node process exited.
  Status WaitForLeader(std::chrono::milliseconds timeout, std::string* leader_address);
  // One GetStatus round over every node: the address of a node that says it is LEADER, or
  // "" if none does. Thread-safe.
  std::string FindLeader() const;
  // OK while every node process runs; Unavailable naming the first one that exited.
  Status CheckAlive();
  // The readings of every node, in node order.
  std::vector<NodeReading> Read() const;
  // Index in nodes() of the node at `address`, -1 if none.
  int IndexOf(const std::string& address) const;
  // Prints the last `lines` lines of every node's log to stderr.
  void DumpLogTails(int lines) const;
  // Stops every node (SIGTERM, then SIGKILL) and removes the temp directory unless
  // keep_data. Idempotent.
  void Stop();

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::string& root_dir() const { return root_dir_; }

 private:
  const ClusterOptions options_;
  std::string root_dir_;
  std::vector<Node> nodes_;
};

}  // namespace verdict::bench
