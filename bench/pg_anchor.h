// The PostgreSQL two-phase anchor: runs the shared pg-2pc-ceiling.sh (its own throwaway
// server; pgbench on two databases at once, `clients` clients on EACH, every transaction a
// one-row UPDATE + PREPARE TRANSACTION + COMMIT PREPARED; before that a plain-COMMIT run
// on one database) and reads its figures: the yardstick for the agent benchmark on the
// PostgreSQL back end, run on the same machine in the same verdict-bench run.
// Blocking; main thread only.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace verdict::bench {

struct PgAnchorResult {
  double plain_tps = 0;          // one database, plain COMMIT
  double twopc_tps_shard_a = 0;  // two-phase, shard_a, while shard_b runs too
  double twopc_tps_shard_b = 0;
  double ceiling_tps = 0;  // min of the two: the script's transfer_ceiling_tps
  std::string line;        // the script's JSON line
};

// The script: $VERDICT_ANCHORS/pg-2pc-ceiling.sh, else <source>/../shared/anchors, else
// /work/shared/anchors. NotFound listing the places tried.
Status FindPgAnchorScript(const std::string& source_dir, std::string* path);

// Runs `script seconds clients` and parses its last stdout line. NotFound if the
// PostgreSQL server binaries are missing (exit 2), Timeout after `timeout`, Corruption if
// no figure could be read (the script's stderr is inherited: pgbench errors show there).
Status RunPgAnchor(const std::string& script, int seconds, int clients,
                   std::chrono::seconds timeout, PgAnchorResult* result);

}  // namespace verdict::bench
