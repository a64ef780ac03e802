// AgentProcess: one real verdict-participant process for integration and crash tests, on
// either back end (SQLite file or PostgreSQL DSN), with extra flags and environment (e.g.
// VERDICT_FAILPOINT), kill -9 / SIGTERM / restart, its log, and small verbs over a Thrift
// client. Binaries come from $VERDICT_BIN_DIR (set by verdict_test()).
// Not thread-safe: one test thread drives an AgentProcess.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ParticipantService.h"
#include "thrift/thrift_channel.h"

namespace verdict::test_support {

// $VERDICT_BIN_DIR, else "build/bin".
std::string BinDir();
// A loopback port that was free a moment ago.
int FreePort();
// "127.0.0.1:<port>" with nobody listening: an unreachable coordinator group or peer.
std::string UnreachableAddress();
// Runs a binary to completion; returns its exit status (128 + signal if killed) and stderr.
int RunToExit(const std::vector<std::string>& args, std::string* err);
std::string ReadFile(const std::string& path);

struct AgentProcessOptions {
  std::string name;                // --name
  std::string dir;                 // holds NAME.log, the journal NAME-data/ and (SQLite) NAME.db
  std::string coordinators;        // --coordinators; empty = an unreachable address
  std::string backend = "sqlite";  // "sqlite" or "postgres"
  std::string pg_dsn;              // --pg-dsn (backend "postgres")
};

class AgentProcess {
 public:
  explicit AgentProcess(AgentProcessOptions options);
  // A SQLite agent (NAME.db in `dir`).
  AgentProcess(std::string name, std::string dir, std::string coordinators);
  ~AgentProcess();  // kill -9
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Flags added to every start (flag -> value); tests may change them between restarts.
  std::map<std::string, std::string> extra_flags = {{"--inquiry-after-ms", "300"},
                                                    {"--precommit-timeout-ms", "1500"},
                                                    {"--rpc-timeout-ms", "500"},
                                                    {"--lock-timeout-ms", "300"},
                                                    {"--tick-ms", "50"}};
  // Environment added to every start (VERDICT_FAILPOINT is taken from Start()'s argument).
  std::map<std::string, std::string> env;

  std::string address() const;
  const std::string& name() const { return options_.name; }
  const std::string& backend() const { return options_.backend; }
  std::string db() const;   // SQLite file
  std::string log() const;  // stderr of every run, appended
  std::string ReadLog() const;
  // Polls the log until it contains `needle`; true if it did within timeout_ms.
  bool WaitForLog(const std::string& needle, int timeout_ms) const;

  // The command line of a start.
  std::vector<std::string> Args() const;
  // Starts the process (with VERDICT_FAILPOINT=failpoint if not empty) and waits until it
  // answers RPCs. Throws std::runtime_error (with the log) if it exits or never answers.
  void Start(const std::string& failpoint = "");
  void Kill9();
  void Restart(const std::string& failpoint = "") {
    Kill9();
    Start(failpoint);
  }
  // SIGTERM; returns the exit status (or -1).
  int Terminate();
  // Waits for the process to die by itself (e.g. a kill failpoint); true if it did.
  bool WaitForDeath(int timeout_ms);

  // A client on a connection opened on first use (reopened after a restart). Throws if the
  // agent cannot be reached.
  rpc::ParticipantServiceClient& Client();
  void Reconnect();

  // --- Small verbs over RPC ----------------------------------------------------------
  rpc::OpenBranchResponse Open(const std::string& gtid, const std::string& branch,
                               rpc::Protocol::type p = rpc::Protocol::TWO_PC);
  rpc::ExecuteResponse Exec(const std::string& gtid, const std::string& branch,
                            const std::string& sql, std::vector<rpc::SqlValue> params = {});
  // `parts` defaults to this branch alone.
  rpc::PrepareResponse Prepare(const std::string& gtid, const std::string& branch,
                               std::vector<rpc::PeerBranch> parts = {});
  rpc::BranchResponse Commit(const std::string& gtid, const std::string& branch,
                             bool one_phase = false);
  rpc::BranchResponse Abort(const std::string& gtid, const std::string& branch);
  rpc::BranchResponse AbortIfUnvoted(const std::string& gtid, const std::string& branch);
  rpc::BranchResponse Precommit(const std::string& gtid, const std::string& branch);
  rpc::BranchResponse Fence(const std::string& gtid, const std::string& branch);
  rpc::BranchStatusResponse Status(const std::string& gtid, const std::string& branch);
  rpc::BranchState::type State(const std::string& gtid, const std::string& branch);
  rpc::ListInDoubtResponse ListInDoubt();
  // Polls until the branch reaches `want` or timeout; returns the last state.
  rpc::BranchState::type WaitState(const std::string& gtid, const std::string& branch,
                                   rpc::BranchState::type want, int timeout_ms);
  rpc::PeerBranch Peer(const std::string& branch) const;

  // SQLite only: table t(id INTEGER PRIMARY KEY, v INTEGER) with rows 1..n at 0.
  void CreateTable(int n);
  // t.v for `id`, read in a throw-away branch (-1 if absent).
  int64_t V(int id);

 private:
  const AgentProcessOptions options_;
  int port_;
  pid_t pid_ = -1;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
  int reads_ = 0;
};

rpc::SqlValue Int(int64_t v);
rpc::SqlValue Text(const std::string& v);

}  // namespace verdict::test_support
