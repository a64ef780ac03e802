#include "coordinator/server/node_options.h"

#include <charconv>
#include <set>

#include "thrift/thrift_channel.h"

namespace verdict::coordinator::server {

namespace {

bool ParseUint(std::string_view s, uint64_t* v) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

Status ParseCluster(std::string_view spec, raft::Membership* cluster) {
  raft::Membership result;
  std::set<std::string> addresses;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    uint64_t id = 0;
    if (eq == std::string_view::npos || !ParseUint(item.substr(0, eq), &id) || id == 0) {
      return Status::InvalidArgument("--cluster item '" + std::string(item) +
                                     "' is not ID=HOST:PORT with a positive ID");
    }
    std::string address(item.substr(eq + 1));
    std::string host;
    int port;
    VERDICT_RETURN_IF_ERROR(rpc::SplitHostPort(std::string(address), &host, &port));
    if (!result.voters.emplace(id, address).second) {
      return Status::InvalidArgument("--cluster names node " + std::to_string(id) + " twice");
    }
    if (!addresses.insert(address).second) {
      return Status::InvalidArgument("--cluster names address " + address + " twice");
    }
  }
  if (result.voters.empty()) return Status::InvalidArgument("--cluster is empty");
  *cluster = std::move(result);
  return Status::OK();
}

Status ValidateOptions(const NodeOptions& o) {
  if (o.id == raft::kNoNode) return Status::InvalidArgument("--id must be a positive integer");
  if (!o.cluster.Contains(o.id)) {
    return Status::InvalidArgument("--id " + std::to_string(o.id) + " is not in --cluster");
  }
  if (o.data_dir.empty()) return Status::InvalidArgument("--data-dir is required");
  if (o.tick_ms < 1 || o.tick_ms > 10000) {
    return Status::InvalidArgument("--tick-ms must be in 1..10000");
  }
  if (o.election_ticks < 3 || o.election_ticks > 1000) {
    return Status::InvalidArgument("--election-ticks must be in 3..1000");
  }
  if (o.heartbeat_ticks < 1 || o.heartbeat_ticks >= o.election_ticks) {
    return Status::InvalidArgument(
        "--heartbeat-ticks must be at least 1 and below --election-ticks");
  }
  if (o.snapshot_entries < 1) return Status::InvalidArgument("--snapshot-entries must be >= 1");
  if (o.metrics_port < 0 || o.metrics_port > 65535) {
    return Status::InvalidArgument("--metrics-port must be in 0..65535");
  }
  // Raft sends appends of up to 1 MiB of entries: a frame must hold one with room to spare.
  if (o.max_frame_bytes < (4u << 20) || o.max_frame_bytes > (1u << 30)) {
    return Status::InvalidArgument("--max-frame-bytes must be in 4 MiB..1 GiB");
  }
  if (o.request_timeout_ms < 10) {
    return Status::InvalidArgument("--request-timeout-ms must be at least 10");
  }
  if (o.default_deadline_ms < 1 || o.max_deadline_ms < o.default_deadline_ms) {
    return Status::InvalidArgument(
        "--default-deadline-ms must be positive and at most --max-deadline-ms");
  }
  if (o.vote_timeout_ms < 1) return Status::InvalidArgument("--vote-timeout-ms must be positive");
  if (o.retry_initial_ms < 1 || o.retry_max_ms < o.retry_initial_ms) {
    return Status::InvalidArgument(
        "--retry-initial-ms must be positive and at most --retry-max-ms");
  }
  if (o.participant_rpc_timeout_ms < 10) {
    return Status::InvalidArgument("--participant-rpc-timeout-ms must be at least 10");
  }
  if (o.participant_connections < 1 || o.participant_connections > 256) {
    return Status::InvalidArgument("--participant-connections must be in 1..256");
  }
  return Status::OK();
}

}  // namespace verdict::coordinator::server
