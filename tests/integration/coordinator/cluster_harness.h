// CoordinatorCluster: a test fixture's handle on real verdict-coordinator processes on
// loopback (free ports, a temp dir per cluster), with verbs to start, signal, kill -9,
// restart and query nodes. Shared by the integration and crash tests. Not thread-safe
// (the test's main thread drives it; client threads use their own CoordinatorClients).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CoordinatorService.h"
#include "common/status.h"
#include "tools/coordinator_client.h"

namespace verdict::testing {

// A path under $VERDICT_BIN_DIR (set by verdict_test); aborts the test binary if unset.
std::string BinaryPath(const std::string& name);
// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
// mkdtemp() under $TMPDIR or /tmp.
std::string MakeTempDir(const std::string& prefix);
void RemoveTree(const std::string& path);
std::string ReadFileOrEmpty(const std::string& path);

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string output;  // stdout + stderr
};
// Runs `args` (args[0] is the binary path) to completion, at most `timeout`.
ProcessResult RunProcess(const std::vector<std::string>& args, std::chrono::milliseconds timeout);

class CoordinatorCluster {
 public:
  // `n` nodes with ids 1..n; `extra_flags` go to every node.
  explicit CoordinatorCluster(int n, std::vector<std::string> extra_flags = {});
  ~CoordinatorCluster();  // kill -9 every node, remove the temp dir
  CoordinatorCluster(const CoordinatorCluster&) = delete;
  CoordinatorCluster& operator=(const CoordinatorCluster&) = delete;

  // Runs node `id` at `host(id)` (instead of 127.0.0.1) with `prefix(id)` before its
  // command line, e.g. inside a network namespace (tests/support/netns.h). Before Start.
  void SetNetwork(std::function<std::string(int)> host,
                  std::function<std::vector<std::string>(int)> prefix);

  void StartAll();
  void Start(int id);
  // Sends `sig`; for SIGKILL also reaps the process.
  void Signal(int id, int sig);
  void Kill(int id) { Signal(id, 9); }
  void KillAll();
  // Waits for node `id` to exit; its exit code, or -1 if killed by a signal, or nullopt on
  // timeout.
  std::optional<int> WaitExit(int id, std::chrono::milliseconds timeout);
  bool Running(int id) const { return pids_.count(id) != 0; }

  int size() const { return n_; }
  const std::string& dir() const { return dir_; }
  std::string Address(int id) const;
  std::vector<std::string> Addresses() const;
  std::string ClusterFlag() const;
  std::string DataDir(int id) const;
  std::string LogPath(int id) const;
  std::string Log(int id) const { return ReadFileOrEmpty(LogPath(id)); }
  // The command line node `id` is started with.
  std::vector<std::string> Args(int id) const;

  // GetStatus on one node.
  Status NodeStatus(int id, rpc::NodeStatus* out) const;
  // Waits until exactly one running node is leader and every running node reports it with
  // the same term; returns its id, or 0 on timeout.
  int WaitForLeader(std::chrono::milliseconds timeout) const;
  // Waits until every running node has applied at least `index`.
  bool WaitForApplied(int64_t index, std::chrono::milliseconds timeout) const;
  std::unique_ptr<tools::CoordinatorClient> Client(int id, int timeout_ms = 10000) const;

 private:
  const int n_;
  const std::vector<std::string> extra_flags_;
  std::string dir_;
  std::map<int, int> ports_;
  std::map<int, pid_t> pids_;                            // running nodes
  std::function<std::string(int)> host_;                 // null: 127.0.0.1
  std::function<std::vector<std::string>(int)> prefix_;  // null: none
};

}  // namespace verdict::testing
