// AgentProcess: one real verdict-participant process started by the benchmark on a free
// loopback port, with a fresh data directory under /tmp (fsync always on) and a
// --coordinators address on which nothing listens (the agent registers in the background
// and never needs a coordinator while every branch is decided promptly). Stop() or the
// destructor kills it and removes its directory.
// Not thread-safe: start and stop from the main thread (see child_process.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "bench/child_process.h"
#include "common/status.h"

namespace verdict::bench {

struct AgentProcessOptions {
  std::string participant_binary;  // path to verdict-participant
  std::string name;                // --name
  std::string backend;             // "sqlite" or "postgres"
  std::string sqlite_path;         // --sqlite-path (sqlite)
  std::string pg_dsn;              // --pg-dsn (postgres)
  // --coordinators; empty: a free port nobody listens on (the agent alone, for the agent
  // benchmark).
  std::string coordinators;
  bool keep_data = false;  // leave the temp directory (data, log) after Stop()
  // Clients connect through the agent's --local-socket (unix:PATH) instead of TCP.
  bool local_socket = false;
};

class AgentProcess {
 public:
  explicit AgentProcess(AgentProcessOptions options) : options_(std::move(options)) {}
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  ~AgentProcess() { Stop(); }

  // Picks a port, creates the data directory, starts the agent and waits (up to `timeout`)
  // until it answers ListInDoubt. On failure the agent's log tail is in the message.
  Status Start(std::chrono::milliseconds timeout);
  // OK while the process runs; Unavailable with its exit and log tail once it has exited.
  Status CheckAlive();
  // SIGTERM, then SIGKILL; removes the temp directory unless keep_data. Idempotent.
  void Stop();

  const std::string& address() const { return address_; }  // TCP HOST:PORT
  // Where clients connect: address(), or unix:PATH with options.local_socket.
  const std::string& client_address() const { return client_address_; }
  const std::string& name() const { return options_.name; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // The last `lines` lines of the agent's stderr.
  std::string LogTail(int lines) const;

 private:
  const AgentProcessOptions options_;
  std::string root_dir_;
  std::string address_;
  std::string client_address_;
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace verdict::bench
