#include "coordinator/server/metrics.h"

#include <cmath>
#include <cstdio>

#include "coordinator/raft/types.h"

namespace verdict::coordinator::server {

namespace {

void Line(std::string* out, const std::string& name, const char* type, const char* help,
          uint64_t value) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  *out += name + " " + std::to_string(value) + "\n";
}

std::string FormatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::llround(seconds * 1e9)),
                       std::memory_order_relaxed);
}

void LatencyHistogram::Render(const std::string& name, const std::string& help,
                              std::string* out) const {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    *out += name + "_bucket{le=\"" + FormatDouble(kBounds[i]) + "\"} " +
            std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_[kBounds.size()].load(std::memory_order_relaxed);
  *out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  *out += name + "_sum " +
          FormatDouble(static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9) +
          "\n";
  *out += name + "_count " + std::to_string(count_.load(std::memory_order_relaxed)) + "\n";
}

std::string Metrics::RenderPrometheus() const {
  std::string out;
  out.reserve(4096);
  Line(&out, "verdict_raft_term", "gauge", "Current Raft term.", term.load());
  int r = role.load();
  out +=
      "# HELP verdict_raft_role 1 for this node's current Raft role.\n"
      "# TYPE verdict_raft_role gauge\n";
  for (int i = 0; i <= static_cast<int>(raft::Role::kLeader); ++i) {
    out += std::string("verdict_raft_role{role=\"") + raft::RoleName(static_cast<raft::Role>(i)) +
           "\"} " + (i == r ? "1" : "0") + "\n";
  }
  Line(&out, "verdict_raft_leader_id", "gauge", "Id of the leader this node knows (0: none).",
       leader.load());
  Line(&out, "verdict_raft_commit_index", "gauge", "Highest log index known committed.",
       commit_index.load());
  Line(&out, "verdict_raft_applied_index", "gauge", "Highest log index applied.",
       applied_index.load());
  Line(&out, "verdict_raft_last_index", "gauge", "Last index in the log.", last_index.load());
  Line(&out, "verdict_raft_snapshot_index", "gauge", "Index covered by the latest snapshot.",
       snapshot_index.load());
  Line(&out, "verdict_decisions_applied_total", "counter",
       "Decide entries applied to the register (repeats included).", decisions_applied.load());
  Line(&out, "verdict_decisions", "gauge", "Transactions with a decision in the register.",
       decisions.load());
  Line(&out, "verdict_proposals_total", "counter", "Entries proposed by this node as leader.",
       proposals.load());
  Line(&out, "verdict_proposals_not_leader_total", "counter",
       "Proposals refused because this node is not the leader.", proposals_not_leader.load());
  Line(&out, "verdict_proposals_lost_total", "counter",
       "Proposals whose entry was replaced by another leader's.", proposals_lost.load());
  Line(&out, "verdict_proposals_timed_out_total", "counter",
       "Client calls answered UNKNOWN after the request timeout.", proposals_timed_out.load());
  Line(&out, "verdict_reads_total", "counter", "GetDecision calls served.", reads.load());
  Line(&out, "verdict_invalid_requests_total", "counter", "Malformed client requests.",
       invalid_requests.load());
  Line(&out, "verdict_fsyncs_total", "counter", "Log syncs (each covers a group of writes).",
       fsyncs.load());
  Line(&out, "verdict_entries_persisted_total", "counter", "Log entries made durable.",
       entries_persisted.load());
  Line(&out, "verdict_snapshots_saved_total", "counter", "Local snapshots written.",
       snapshots_saved.load());
  Line(&out, "verdict_snapshots_installed_total", "counter",
       "Snapshots received from the leader and installed.", snapshots_installed.load());
  fsync_seconds.Render("verdict_fsync_seconds", "Latency of one log sync.", &out);
  loop_busy_seconds.Render("verdict_event_loop_busy_seconds",
                           "Time the Raft event loop spends on one batch of work.", &out);
  Line(&out, "verdict_raft_messages_sent_total", "counter", "Raft messages sent to peers.",
       messages_sent.load());
  Line(&out, "verdict_raft_messages_dropped_total", "counter",
       "Raft messages dropped (peer down, queue full, malformed).", messages_dropped.load());
  Line(&out, "verdict_raft_messages_received_total", "counter",
       "Raft messages received from peers.", messages_received.load());
  Line(&out, "verdict_peer_connects_total", "counter", "Connections opened to peers.",
       peer_connects.load());
  Line(&out, "verdict_txns_begun_total", "counter", "Transactions begun by this node as leader.",
       txns_begun.load());
  Line(&out, "verdict_txns_committed_total", "counter",
       "Transactions this node as leader saw commit.", txns_committed.load());
  Line(&out, "verdict_txns_aborted_total", "counter", "Transactions this node as leader saw abort.",
       txns_aborted.load());
  Line(&out, "verdict_heuristic_hazards_total", "counter",
       "Heuristic hazards seen (e.g. COMMIT answered by a branch that never existed).",
       heuristic_hazards.load());
  Line(&out, "verdict_participant_calls_total", "counter", "Calls made to participant agents.",
       participant_calls.load());
  Line(&out, "verdict_participant_calls_failed_total", "counter",
       "Participant calls with no answer (connect, timeout, transport error).",
       participant_calls_failed.load());
  Line(&out, "verdict_participant_messages_coalesced_total", "counter",
       "Resends dropped because the same call was already queued or in flight.",
       participant_messages_coalesced.load());
  Line(&out, "verdict_participant_messages_dropped_total", "counter",
       "Participant messages dropped because the agent's queue was full.",
       participant_messages_dropped.load());
  return out;
}

}  // namespace verdict::coordinator::server
