// verdict-bench's end-to-end transaction section (issue 4, docs/performance.md): a real
// 3-node coordinator group and two SQLite-backed verdict-participant agents; C clients
// each loop over 2-branch transfers the way an SDK would (Begin on the leader, OpenBranch +
// Execute + RegisterBranch on each shard, Commit), under 2PC and then 3PC, at several
// concurrencies. Reports committed transactions/s and Begin-to-outcome latency; checks
// that the money on the two shards is conserved. Every process and temp directory is gone
// when RunTxnSection returns. Main thread only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bench/json_writer.h"
#include "common/status.h"

namespace verdict::bench {

struct TxnSectionOptions {
  std::string coordinator_binary;
  std::string participant_binary;
  std::vector<int> clients = {1, 16, 64};
  double duration_s = 10;
  double warmup_s = 1;
  bool keep_data = false;
  bool postgres = false;  // agents on two databases of a throwaway PostgreSQL server
};

struct TxnFigures {
  // Per protocol ("2pc", "3pc") and level: committed transactions/s, p50 and p99 ms.
  std::map<std::string, std::map<int, double>> tps, p50_ms, p99_ms;
  JsonObject levels;  // every reading, by protocol and level
  std::vector<std::string> errors;
};

Status RunTxnSection(const TxnSectionOptions& options, TxnFigures* figures);

}  // namespace verdict::bench
