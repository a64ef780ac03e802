// Metrics: the coordinator node's counters, gauges and histograms, rendered in the
// Prometheus text exposition format (prometheus-cpp is not packaged in Debian 12).
// Thread-safe: every field is atomic; writers and the renderer never block each other.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace verdict::coordinator::server {

// A fixed-bucket histogram of seconds. Observe() is lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                     0.0025,  0.005,  0.01,    0.025,  0.05,
                                                     0.1,     0.25,   0.5,     1.0};
  void Observe(double seconds);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last: +Inf only
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

struct Metrics {
  // Raft state, published by the event loop.
  std::atomic<uint64_t> term{0};
  std::atomic<int> role{0};  // raft::Role
  std::atomic<uint64_t> leader{0};
  std::atomic<uint64_t> commit_index{0};
  std::atomic<uint64_t> applied_index{0};
  std::atomic<uint64_t> last_index{0};
  std::atomic<uint64_t> snapshot_index{0};

  // Decisions and client calls.
  std::atomic<uint64_t> decisions_applied{0};  // Decide entries applied (incl. no-op repeats)
  std::atomic<uint64_t> decisions{0};          // gtids in the register
  std::atomic<uint64_t> proposals{0};          // entries proposed by this node as leader
  std::atomic<uint64_t> proposals_not_leader{0};
  std::atomic<uint64_t> proposals_lost{0};  // proposed, then overwritten by another term
  std::atomic<uint64_t> proposals_timed_out{0};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> invalid_requests{0};

  // Storage.
  std::atomic<uint64_t> fsyncs{0};
  std::atomic<uint64_t> entries_persisted{0};
  std::atomic<uint64_t> snapshots_saved{0};
  std::atomic<uint64_t> snapshots_installed{0};
  LatencyHistogram fsync_seconds;
  // Time the event loop spends on one batch of work (ticks, messages, proposals, Readys).
  LatencyHistogram loop_busy_seconds;

  // Peer transport.
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> messages_dropped{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> peer_connects{0};

  // Transactions (engine counters published by the event loop on the leader that ran them).
  std::atomic<uint64_t> txns_begun{0};
  std::atomic<uint64_t> txns_committed{0};
  std::atomic<uint64_t> txns_aborted{0};
  std::atomic<uint64_t> heuristic_hazards{0};
  // Calls to participant agents.
  std::atomic<uint64_t> participant_calls{0};
  std::atomic<uint64_t> participant_calls_failed{0};        // no connection, timeout, error
  std::atomic<uint64_t> participant_messages_coalesced{0};  // equal one already queued
  std::atomic<uint64_t> participant_messages_dropped{0};    // queue full

  // The whole exposition (text/plain; version=0.0.4).
  std::string RenderPrometheus() const;
};

}  // namespace verdict::coordinator::server
