#include "bench/pg_anchor.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "bench/child_process.h"
#include "bench/etcd_anchor.h"
#include "bench/json_writer.h"

namespace verdict::bench {

Status FindPgAnchorScript(const std::string& source_dir, std::string* path) {
  return FindAnchorScript(source_dir, "pg-2pc-ceiling.sh", path);
}

Status RunPgAnchor(const std::string& script, int seconds, int clients,
                   std::chrono::seconds timeout, PgAnchorResult* result) {
  *result = PgAnchorResult();
  ChildProcess child;
  VERDICT_RETURN_IF_ERROR(
      child.Start({"/bin/bash", script, std::to_string(seconds), std::to_string(clients)}, "",
                  /*capture_stdout=*/true));
  std::string out;
  const bool eof = child.ReadStdoutUntilEof(std::chrono::steady_clock::now() + timeout, &out);
  // After EOF the script is cleaning up (stopping its server, removing its directory).
  if (eof) child.WaitExit(std::chrono::milliseconds(30000));
  child.Stop(std::chrono::milliseconds(5000));
  if (!eof) {
    return Interrupted() ? Status::Aborted("interrupted")
                         : Status::Timeout("pg anchor took longer than " +
                                           std::to_string(timeout.count()) + " s");
  }
  if (child.exit_code() == 2) return Status::NotFound("PostgreSQL server binaries not found");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  const size_t nl = out.rfind('\n');
  result->line = nl == std::string::npos ? out : out.substr(nl + 1);
  result->plain_tps = FlatJsonNumber(result->line, "plain_tps");
  result->twopc_tps_shard_a = FlatJsonNumber(result->line, "twopc_tps_shard_a");
  result->twopc_tps_shard_b = FlatJsonNumber(result->line, "twopc_tps_shard_b");
  result->ceiling_tps = FlatJsonNumber(result->line, "transfer_ceiling_tps");
  if (std::isnan(result->ceiling_tps)) {
    return Status::Corruption("no transfer_ceiling_tps in '" + result->line + "' (" +
                              child.ExitDescription() + ")");
  }
  return Status::OK();
}

}  // namespace verdict::bench
