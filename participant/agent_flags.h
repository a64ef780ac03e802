// Command-line (and --config FILE) options of verdict-participant (DESIGN §7), parsed and
// validated. Plain values; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "participant/agent.h"

namespace verdict::participant {

struct AgentFlags {
  AgentOptions agent;  // name, address (= --listen), timeouts
  std::string listen;  // HOST:PORT
  // Also serve on this Unix-domain socket (clients on the same host: unix:PATH). Optional;
  // the coordinator group is always given the TCP address.
  std::string local_socket;
  std::vector<std::string> coordinators;
  std::string data_dir;
  std::string backend;  // "sqlite" | "postgres"
  std::string sqlite_path;
  std::string pg_dsn;
  bool pg_named_statements = true;  // postgres::PostgresOptions::named_statements
  int rpc_timeout_ms = 2000;        // coordinator and peer calls
  uint32_t max_frame_bytes = 64u << 20;
  // How connections are served: "fibers" (every connection a fiber of one event loop,
  // rpc::FiberServer) or "threads" (a thread per connection, rpc::ThriftServer). After
  // parsing, never "auto" (which means fibers for postgres, threads for sqlite).
  std::string server_model = "auto";
  int server_loops = 1;  // --server-loops: event-loop threads of the fiber server
  bool sync = true;      // false = --unsafe-no-fsync
  std::string log_level = "info";
  bool help = false;
  std::string help_text;
};

// Parses argv (command-line values win over --config). InvalidArgument with a one-line
// reason on any bad or missing flag.
Status ParseAgentFlags(int argc, const char* const* argv, AgentFlags* flags);

}  // namespace verdict::participant
