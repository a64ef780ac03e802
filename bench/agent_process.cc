#include "bench/agent_process.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "bench/branch_client.h"
#include "bench/coordinator_cluster.h"

namespace verdict::bench {

Status AgentProcess::Start(std::chrono::milliseconds timeout) {
  if (process_) return Status::FailedPrecondition("agent already started");
  if (access(options_.participant_binary.c_str(), X_OK) != 0) {
    return Status::NotFound(options_.participant_binary + " is not an executable (build it: " +
                            "cmake --build BUILD --target verdict-participant)");
  }
  char tmpl[] = "/tmp/verdict-bench-agent.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return Status::IOError(std::string("mkdtemp: ") + std::strerror(errno));
  }
  root_dir_ = tmpl;
  // Two ports: the agent's, and one for the coordinator group that is released and never
  // listened on (registration retries in the background; no branch needs an inquiry).
  std::vector<int> ports;
  VERDICT_RETURN_IF_ERROR(PickFreePorts(2, &ports));
  address_ = "127.0.0.1:" + std::to_string(ports[0]);
  log_path_ = root_dir_ + "/agent.log";
  std::vector<std::string> argv = {options_.participant_binary,
                                   "--name",
                                   options_.name,
                                   "--listen",
                                   address_,
                                   "--coordinators",
                                   options_.coordinators.empty()
                                       ? "127.0.0.1:" + std::to_string(ports[1])
                                       : options_.coordinators,
                                   "--data-dir",
                                   root_dir_ + "/data",
                                   "--backend",
                                   options_.backend};
  client_address_ = address_;
  if (options_.local_socket) {
    argv.insert(argv.end(), {"--local-socket", root_dir_ + "/agent.sock"});
    client_address_ = "unix:" + root_dir_ + "/agent.sock";
  }
  if (options_.backend == "sqlite") {
    argv.insert(argv.end(), {"--sqlite-path", options_.sqlite_path});
  } else {
    argv.insert(argv.end(), {"--pg-dsn", options_.pg_dsn});
  }
  // fsync stays on: the benchmark never passes --unsafe-no-fsync.
  process_ = std::make_unique<ChildProcess>();
  VERDICT_RETURN_IF_ERROR(process_->Start(argv, log_path_));

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (true) {
    VERDICT_RETURN_IF_ERROR(CheckAlive());
    if (Interrupted()) return Status::Aborted("interrupted");
    BranchClient client(1000);
    Status s = client.Connect(client_address_);
    rpc::ListInDoubtResponse in_doubt;
    if (s.ok()) s = client.ListInDoubt(&in_doubt);
    if (s.ok()) return Status::OK();
    last = s.ToString();
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout("agent " + options_.name + " does not serve on " + client_address_ +
                             " (" + last + "); its log ends:\n" + LogTail(15));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Status AgentProcess::CheckAlive() {
  if (process_ && !process_->Running()) {
    return Status::Unavailable("agent " + options_.name + " exited (" +
                               process_->ExitDescription() + "); its log ends:\n" + LogTail(15));
  }
  return Status::OK();
}

void AgentProcess::Stop() {
  if (process_) process_->Stop(std::chrono::milliseconds(5000));
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

std::string AgentProcess::LogTail(int lines) const {
  std::ifstream in(log_path_);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += "  " + l + "\n";
  return out;
}

}  // namespace verdict::bench
