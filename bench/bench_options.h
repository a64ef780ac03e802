// BenchOptions: verdict-bench's command line. Plain values.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace verdict::bench {

struct BenchOptions {
  bool quick = false;
  bool help = false;
  std::vector<std::string> only;  // empty: every benchmark that exists
  std::string bin_dir;            // where verdict-coordinator and verdict-participant live
  std::vector<int> concurrency = {1, 16, 64, 256};
  double duration_s = 10;  // measured seconds per level
  double warmup_s = 1;     // unmeasured seconds before each level
  double paced_rate = 1000;
  int paced_threads = 16;
  int proposers_per_call = 1;  // closed loop: decisions coalesced into one DecideBatch
  bool anchor = true;          // the etcd anchor (with the log benchmark)
  bool pg_anchor = true;       // pg-2pc-ceiling.sh (with the PostgreSQL agent benchmark)
  std::vector<int> agent_clients = {1, 8, 32};  // concurrent branches per agent
  bool agent_local_socket = false;              // --agent-transport unix
  bool agent_threads_driver = false;            // --agent-driver threads
  std::vector<int> txn_clients = {1, 16, 64};   // concurrent 2-branch transactions
  std::string etcd_load = "l";
  bool keep_data = false;

  // True if benchmark `name` ("log", "agent_sqlite", "agent_pg", "txn") is selected; "agent"
  // selects both agent back ends, "all" (or no --only) everything.
  bool Selected(const std::string& name) const;
};

// Parses argv. InvalidArgument with a one-line reason on a bad option; with --help, sets
// `help` and fills `usage`.
Status ParseBenchOptions(int argc, char** argv, BenchOptions* options, std::string* usage);

}  // namespace verdict::bench
