// verdict-bench's participant-agent section (issue 3, docs/performance.md): real
// verdict-participant processes, one per SQLite database and two per PostgreSQL server
// (shard_a, shard_b, as in the pgbench anchor), driven over Thrift at several
// concurrencies (agent_benchmark.h); for PostgreSQL, pg-2pc-ceiling.sh runs right after
// each level at the same clients per shard. Every process and temp directory it starts is
// gone when RunAgentSection returns, whatever happened. Main thread only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bench/agent_benchmark.h"
#include "bench/json_writer.h"
#include "common/status.h"

namespace verdict::bench {

struct AgentSectionOptions {
  std::string participant_binary;         // verdict-participant
  std::string source_dir;                 // to find ../shared/anchors
  std::vector<int> clients = {1, 8, 32};  // concurrent branches per agent
  double duration_s = 10;
  double warmup_s = 1;
  bool sqlite = true;
  bool postgres = true;
  bool pg_anchor = true;  // run pg-2pc-ceiling.sh after each PostgreSQL level
  bool keep_data = false;
  // Clients reach the agents over a Unix-domain socket (--local-socket), as pgbench reaches
  // the server in the anchor, instead of loopback TCP.
  bool local_socket = false;
  AgentDriver driver = AgentDriver::kMux;  // --agent-driver
};

// What the section measured. A level missing from a map was not measured (see errors).
struct AgentFigures {
  std::map<int, double> sqlite_bps;   // branches/s of the one SQLite agent
  std::map<int, double> pg_bps;       // the slower of the two PostgreSQL agents
  std::map<int, double> pgbench_tps;  // the anchor's two-phase ceiling (slower database)
  JsonObject sqlite_levels;           // per level: every reading
  JsonObject pg_levels;
  JsonObject pgbench_levels;
  std::vector<std::string> errors;
};

// Runs the selected back ends. Errors are collected in figures->errors (a back end that
// fails is abandoned, the other still runs); Aborted if interrupted.
Status RunAgentSection(const AgentSectionOptions& options, AgentFigures* figures);

}  // namespace verdict::bench
