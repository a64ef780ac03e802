// verdict-bench: Verdict's benchmarks (docs/performance.md). The replicated decision log
// (3 real coordinator processes on loopback, fsync on), closed-loop at several concurrency
// levels and open-loop at a paced rate, plus the etcd anchor run on the same machine in the
// same run; and the participant agent (real verdict-participant processes over Thrift, on
// SQLite and on PostgreSQL), with the pgbench two-phase anchor at the same concurrencies.
// Progress goes to stderr; the last stdout line is one JSON object.

#include <thrift/Thrift.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <map>
#include <string>
#include <thread>

#include "bench/agent_section.h"
#include "bench/bench_options.h"
#include "bench/child_process.h"
#include "bench/coordinator_cluster.h"
#include "bench/etcd_anchor.h"
#include "bench/json_writer.h"
#include "bench/log_benchmark.h"
#include "bench/resource_usage.h"
#include "bench/txn_section.h"

namespace verdict::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The targets the project set for the decision log.
constexpr double kTargetLogVsEtcd = 10;
constexpr double kTargetP50Ms = 2;
// Issue 3: the PostgreSQL agent reaches this fraction of raw pgbench two-phase throughput.
constexpr double kTargetAgentVsPgbench = 0.7;

template <typename... Args>
void Progress(const char* format, Args... args) {
  std::fprintf(stderr, "verdict-bench: ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, "\n");
}

JsonObject RunJson(RunResult& r) {
  JsonObject o;
  o.Number("per_s", r.per_s())
      .Integer("ok", static_cast<int64_t>(r.ok))
      .Number("p50_ms", r.latency.QuantileMs(0.50))
      .Number("p90_ms", r.latency.QuantileMs(0.90))
      .Number("p99_ms", r.latency.QuantileMs(0.99))
      .Number("p999_ms", r.latency.QuantileMs(0.999))
      .Number("max_ms", r.latency.MaxMs())
      .Integer("not_leader", static_cast<int64_t>(r.not_leader))
      .Integer("retries", static_cast<int64_t>(r.retries))
      .Integer("transport_errors", static_cast<int64_t>(r.transport_errors))
      .Integer("rejected", static_cast<int64_t>(r.rejected))
      .Integer("unfinished", static_cast<int64_t>(r.unfinished));
  if (r.target_per_s > 0) {
    o.Number("target_per_s", r.target_per_s)
        .Integer("threads", r.concurrency)
        .Integer("late_sends", static_cast<int64_t>(r.late_sends));
  }
  const UsageReport& u = r.usage;
  o.Number("leader_cpu_pct", u.leader_cpu_pct)
      .Number("follower_cpu_pct", u.follower_cpu_pct)
      .Number("bench_cpu_pct", u.bench_cpu_pct)
      .Number("machine_busy_pct", u.machine_busy_pct)
      .Integer("leader_threads", u.leader_threads)
      .Number("fsyncs_per_s", u.leader_fsyncs_per_s)
      .Number("entries_per_fsync", u.leader_entries_per_fsync)
      .Number("fsync_ms", u.leader_fsync_ms)
      .Number("follower_fsyncs_per_s", u.follower_fsyncs_per_s)
      .Number("decisions_per_entry", u.decisions_per_entry)
      .Number("raft_msgs_per_s", u.raft_messages_per_s)
      .Number("term_changes", u.term_changes);
  return o;
}

// True if the anchor's figure is close enough to its load's pacing cap that etcdctl, not
// etcd, may have been the limit.
bool EtcdAtCap(double writes_per_s, const std::string& load) {
  return std::isfinite(writes_per_s) && writes_per_s >= 0.8 * EtcdLoadCap(load);
}

void ReportRun(RunResult& r) {
  const UsageReport& u = r.usage;
  Progress(
      "%s: %.0f decisions/s, p50 %.3f ms, p99 %.3f ms, max %.1f ms | not_leader %llu, "
      "retries %llu, errors %llu | leader cpu %.0f%%, followers %.0f%%, bench %.0f%%, machine "
      "%.0f%% | leader fsyncs/s %.0f, entries/fsync %.2f, fsync %.3f ms, decisions/entry %.2f | "
      "elections %.0f",
      r.name.c_str(), r.per_s(), r.latency.QuantileMs(0.5), r.latency.QuantileMs(0.99),
      r.latency.MaxMs(), static_cast<unsigned long long>(r.not_leader),
      static_cast<unsigned long long>(r.retries),
      static_cast<unsigned long long>(r.transport_errors), u.leader_cpu_pct, u.follower_cpu_pct,
      u.bench_cpu_pct, u.machine_busy_pct, u.leader_fsyncs_per_s, u.leader_entries_per_fsync,
      u.leader_fsync_ms, u.decisions_per_entry, u.term_changes);
}

// What the decision-log benchmark contributes to the JSON line.
struct LogFigures {
  double best_per_s = kNaN;
  int best_concurrency = 0;
  double paced_p50_ms = kNaN;
  double paced_p99_ms = kNaN;
  JsonObject levels;
  JsonObject paced;
  bool paced_ran = false;
};

Status RunLog(const BenchOptions& options, LogFigures* figures) {
  ClusterOptions cluster_options;
  cluster_options.coordinator_binary = options.bin_dir + "/verdict-coordinator";
  cluster_options.keep_data = options.keep_data;
  CoordinatorCluster cluster(cluster_options);
  Progress("starting 3 coordinators (%s, fsync on)", cluster_options.coordinator_binary.c_str());
  Status s = cluster.Start();
  std::string leader;
  if (s.ok()) s = cluster.WaitForLeader(std::chrono::seconds(20), &leader);
  if (!s.ok()) {
    if (!cluster.nodes().empty()) cluster.DumpLogTails(15);
    return s;
  }
  Progress("leader %s; data under %s", leader.c_str(), cluster.root_dir().c_str());

  LogBenchmarkOptions bench_options;
  bench_options.warmup = std::chrono::milliseconds(static_cast<int64_t>(options.warmup_s * 1000));
  bench_options.duration =
      std::chrono::milliseconds(static_cast<int64_t>(options.duration_s * 1000));
  bench_options.gtid_prefix =
      "bench-" + std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  bench_options.proposers_per_call = options.proposers_per_call;
  LogBenchmark bench(cluster, leader, bench_options);

  for (int c : options.concurrency) {
    if (Interrupted()) return Status::Aborted("interrupted");
    Progress("closed loop, %d proposer(s), %.1f s warm-up + %.1f s", c, options.warmup_s,
             options.duration_s);
    RunResult r = bench.RunClosedLoop(c);
    if (Interrupted()) return Status::Aborted("interrupted");
    ReportRun(r);
    figures->levels.Object(std::to_string(c), RunJson(r));
    if (r.rejected > 0) {
      return Status::FailedPrecondition("the daemon rejected a Decide: " + r.first_rejection);
    }
    VERDICT_RETURN_IF_ERROR(cluster.CheckAlive());
    if (std::isnan(figures->best_per_s) || r.per_s() > figures->best_per_s) {
      figures->best_per_s = r.per_s();
      figures->best_concurrency = c;
    }
  }
  if (Interrupted()) return Status::Aborted("interrupted");
  Progress("open loop, %.0f decisions/s paced over %d senders, %.1f s warm-up + %.1f s",
           options.paced_rate, options.paced_threads, options.warmup_s, options.duration_s);
  RunResult paced = bench.RunPaced(options.paced_rate, options.paced_threads);
  if (Interrupted()) return Status::Aborted("interrupted");
  ReportRun(paced);
  figures->paced = RunJson(paced);
  figures->paced_ran = true;
  figures->paced_p50_ms = paced.latency.QuantileMs(0.5);
  figures->paced_p99_ms = paced.latency.QuantileMs(0.99);
  if (paced.rejected > 0) {
    return Status::FailedPrecondition("the daemon rejected a Decide: " + paced.first_rejection);
  }
  VERDICT_RETURN_IF_ERROR(cluster.CheckAlive());
  cluster.Stop();
  return Status::OK();
}

int Main(int argc, char** argv) {
  InstallInterruptHandlers();
  // Thrift prints every refused connect while the nodes start; the benchmark reports what
  // matters itself.
  apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
  BenchOptions options;
  std::string usage;
  Status s = ParseBenchOptions(argc, argv, &options, &usage);
  if (!s.ok()) {
    std::fprintf(stderr, "verdict-bench: %s\n", s.message().c_str());
    return 2;
  }
  if (options.help) {
    std::printf("%s", usage.c_str());
    return 0;
  }
  const auto started = std::chrono::steady_clock::now();
  JsonObject machine;
  machine.Integer("cores", std::thread::hardware_concurrency())
      .String("loadavg_before", LoadAverageLine());
  Progress("%u cores, load average %s", std::thread::hardware_concurrency(),
           LoadAverageLine().c_str());
  // Other work on the machine competes with the coordinators for CPU and skews every figure.
  const bool busy = LoadAverage1() > std::thread::hardware_concurrency();
  machine.Bool("busy_at_start", busy);
  if (busy) {
    Progress(
        "WARNING: the 1-minute load average exceeds the core count: other work is "
        "running and the figures below will be lower and noisier than this machine can do");
  }

  std::string error;
  LogFigures log;
  if (options.Selected("log")) {
    s = RunLog(options, &log);
    if (!s.ok()) {
      error = "log: " + s.ToString();
      Progress("%s", error.c_str());
    }
  }
  machine.String("loadavg_after_log", LoadAverageLine());

  EtcdAnchorResult anchor;
  int anchor_attempts = 0;
  anchor.writes_per_s = kNaN;
  anchor.slowest_s = kNaN;
  if (options.anchor && options.Selected("log") && !Interrupted()) {
    std::string script;
    s = FindEtcdAnchorScript(VERDICT_SOURCE_DIR, &script);
    if (s.ok()) {
      Progress("etcd anchor: %s %s (etcdctl check perf runs 60 s)", script.c_str(),
               options.etcd_load.c_str());
      s = RunEtcdAnchor(script, options.etcd_load, std::chrono::seconds(240), &anchor);
      ++anchor_attempts;
      // A null figure means etcdctl printed no throughput at all (it gives up when the
      // cluster errors out, e.g. on a machine overloaded by other work): try once more.
      if (s.code() == Status::Code::kCorruption && !Interrupted()) {
        Progress("etcd anchor printed no figure (%s); retrying once", s.ToString().c_str());
        s = RunEtcdAnchor(script, options.etcd_load, std::chrono::seconds(240), &anchor);
        ++anchor_attempts;
      }
    }
    if (s.ok()) {
      Progress("etcd anchor: %.0f writes/s (load %s)", anchor.writes_per_s,
               options.etcd_load.c_str());
    } else {
      Progress("etcd anchor failed: %s", s.ToString().c_str());
      if (error.empty()) error = "etcd anchor: " + s.ToString();
    }
    machine.String("loadavg_after", LoadAverageLine());
  }
  const double ratio = log.best_per_s / anchor.writes_per_s;

  AgentFigures agent;
  const bool agent_selected = options.Selected("agent_sqlite") || options.Selected("agent_pg");
  if (agent_selected && !Interrupted()) {
    AgentSectionOptions agent_options;
    agent_options.participant_binary = options.bin_dir + "/verdict-participant";
    agent_options.source_dir = VERDICT_SOURCE_DIR;
    agent_options.clients = options.agent_clients;
    agent_options.duration_s = options.duration_s;
    agent_options.warmup_s = options.warmup_s;
    agent_options.sqlite = options.Selected("agent_sqlite");
    agent_options.postgres = options.Selected("agent_pg");
    agent_options.pg_anchor = options.pg_anchor;
    agent_options.keep_data = options.keep_data;
    agent_options.local_socket = options.agent_local_socket;
    agent_options.driver = options.agent_threads_driver ? AgentDriver::kThreads : AgentDriver::kMux;
    RunAgentSection(agent_options, &agent);
    for (const auto& e : agent.errors) {
      if (error.empty()) error = e;
    }
    machine.String("loadavg_after_agent", LoadAverageLine());
  }

  // End-to-end transfers through the SDK: over SQLite agents (txn), and over PostgreSQL
  // agents (txn_pg).
  TxnFigures txn, txn_pg;
  for (const bool postgres : {false, true}) {
    const char* name = postgres ? "txn_pg" : "txn";
    if (!options.Selected(name) || Interrupted()) continue;
    TxnSectionOptions txn_options;
    txn_options.coordinator_binary = options.bin_dir + "/verdict-coordinator";
    txn_options.participant_binary = options.bin_dir + "/verdict-participant";
    txn_options.clients = options.txn_clients;
    txn_options.duration_s = options.duration_s;
    txn_options.warmup_s = options.warmup_s;
    txn_options.keep_data = options.keep_data;
    txn_options.postgres = postgres;
    TxnFigures& figures = postgres ? txn_pg : txn;
    RunTxnSection(txn_options, &figures);
    for (const auto& e : figures.errors) {
      if (error.empty()) error = e;
    }
    machine.String(std::string("loadavg_after_") + name, LoadAverageLine());
  }
  // The best committed transactions/s over the levels of one protocol.
  auto best = [](const std::map<int, double>& levels) {
    double b = kNaN;
    for (const auto& [k, v] : levels) {
      if (!std::isfinite(b) || v > b) b = v;
    }
    return b;
  };

  JsonObject out;
  out.String("benchmark", "verdict-bench")
      .Bool("quick", options.quick)
      .Number("duration_s", options.duration_s)
      .Number("warmup_s", options.warmup_s)
      .Bool("fsync", true)
      .Integer("proposers_per_call", options.proposers_per_call)
      .Number("log_decisions_per_s", log.best_per_s);
  if (log.best_concurrency > 0) {
    out.Integer("log_best_concurrency", log.best_concurrency);
  } else {
    out.Null("log_best_concurrency");
  }
  out.Object("log", log.levels);
  if (log.paced_ran) {
    out.Object("log_paced", log.paced);
  } else {
    out.Null("log_paced");
  }
  // p50/p99 are the open-loop point (the paced rate, 1,000/s by default).
  out.Number("p50_ms", log.paced_p50_ms)
      .Number("p99_ms", log.paced_p99_ms)
      // End-to-end 2-branch transactions over SQLite agents (the txn section), best level.
      .Number("sqlite_2pc_tps", best(txn.tps["2pc"]))
      .Number("sqlite_3pc_tps", best(txn.tps["3pc"]))
      // The same over PostgreSQL agents (txn_pg), and PostgreSQL's own two-phase ceiling
      // (pg-2pc-ceiling.sh, the agent section's anchor), best level of each.
      .Number("pg_2pc_tps", best(txn_pg.tps["2pc"]))
      .Number("pg_3pc_tps", best(txn_pg.tps["3pc"]))
      .Number("raw_2pc_tps", best(agent.pgbench_tps))
      .Number("etcd_writes_per_s", anchor.writes_per_s)
      .Number("etcd_slowest_s", anchor.slowest_s);
  if (options.anchor) {
    // etcdctl check perf paces its writers at a fixed rate per load; a figure near that
    // cap measures the load generator, not etcd.
    const double cap = EtcdLoadCap(options.etcd_load);
    out.String("etcd_load", options.etcd_load)
        .Number("etcd_load_cap_per_s", cap)
        .Integer("etcd_attempts", anchor_attempts);
    if (std::isfinite(anchor.writes_per_s)) {
      out.Bool("etcd_at_cap", EtcdAtCap(anchor.writes_per_s, options.etcd_load));
    } else {
      out.Null("etcd_at_cap");
    }
  } else {
    out.Null("etcd_load");
  }
  out.Number("log_vs_etcd", ratio);
  JsonObject targets;
  targets.Number("log_vs_etcd_min", kTargetLogVsEtcd).Number("p50_ms_max", kTargetP50Ms);
  // When etcd ran at its load's pacing cap, its figure is a lower bound on what etcd can
  // do, so the ratio is an upper bound: it can prove a miss, never a pass.
  const bool ratio_is_upper_bound =
      options.anchor && EtcdAtCap(anchor.writes_per_s, options.etcd_load);
  if (std::isfinite(ratio) && !(ratio_is_upper_bound && ratio >= kTargetLogVsEtcd)) {
    targets.Bool("log_vs_etcd_met", ratio >= kTargetLogVsEtcd);
  } else {
    targets.Null("log_vs_etcd_met");
  }
  targets.Bool("log_vs_etcd_upper_bound", ratio_is_upper_bound);
  if (std::isfinite(log.paced_p50_ms)) {
    targets.Bool("p50_met", log.paced_p50_ms < kTargetP50Ms);
  } else {
    targets.Null("p50_met");
  }
  // The participant agent (issue 3): per level K (concurrent branches per agent), branches/s
  // of the SQLite agent, of the slower of the two PostgreSQL agents, the pgbench two-phase
  // ceiling at K clients per database, and their ratio.
  auto level_value = [](const std::map<int, double>& m, int k) {
    auto it = m.find(k);
    return it == m.end() ? kNaN : it->second;
  };
  bool agent_ratio_met = true, agent_ratio_known = false;
  for (int k : options.agent_clients) {
    const std::string suffix = "_" + std::to_string(k);
    const double pg = level_value(agent.pg_bps, k);
    const double pgbench = level_value(agent.pgbench_tps, k);
    const double agent_ratio = pg / pgbench;
    out.Number("agent_sqlite_bps" + suffix, level_value(agent.sqlite_bps, k))
        .Number("agent_pg_bps" + suffix, pg)
        .Number("pgbench_2pc_tps" + suffix, pgbench)
        .Number("agent_pg_ratio" + suffix, agent_ratio);
    if (std::isfinite(agent_ratio)) {
      agent_ratio_known = true;
      agent_ratio_met = agent_ratio_met && agent_ratio >= kTargetAgentVsPgbench;
    }
  }
  // Transactions (issue 4): per level, commits/s and latency of 2PC and 3PC, and the
  // throughput 3PC gives up (1 - 3pc/2pc).
  for (int k : options.txn_clients) {
    const std::string suffix = "_" + std::to_string(k);
    for (const char* p : {"2pc", "3pc"}) {
      out.Number(std::string("txn_") + p + "_tps" + suffix, level_value(txn.tps[p], k))
          .Number(std::string("txn_") + p + "_p50_ms" + suffix, level_value(txn.p50_ms[p], k))
          .Number(std::string("txn_") + p + "_p99_ms" + suffix, level_value(txn.p99_ms[p], k));
    }
    out.Number("txn_3pc_overhead" + suffix,
               1.0 - level_value(txn.tps["3pc"], k) / level_value(txn.tps["2pc"], k));
  }
  if (options.Selected("txn")) out.Object("txn", txn.levels);
  if (options.Selected("txn_pg")) out.Object("txn_pg", txn_pg.levels);
  if (agent_selected) {
    out.Object("agent_sqlite", agent.sqlite_levels)
        .Object("agent_pg", agent.pg_levels)
        .Object("pgbench_2pc", agent.pgbench_levels);
  }
  targets.Number("agent_pg_vs_pgbench_min", kTargetAgentVsPgbench);
  if (agent_ratio_known) {
    targets.Bool("agent_pg_vs_pgbench_met", agent_ratio_met);
  } else {
    targets.Null("agent_pg_vs_pgbench_met");
  }
  out.Object("targets", targets).Object("machine", machine);
  out.Number("elapsed_s",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!error.empty()) out.String("error", error);
  std::printf("%s\n", out.ToString().c_str());
  std::fflush(stdout);
  if (Interrupted()) return 130;
  return error.empty() ? 0 : 1;
}

}  // namespace
}  // namespace verdict::bench

int main(int argc, char** argv) {
  // Catching here unwinds the stack, so every child is stopped and every temp directory
  // removed by the destructors even on an unexpected exception.
  try {
    return verdict::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "verdict-bench: fatal: %s\n", e.what());
    return 1;
  }
}
