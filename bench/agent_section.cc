#include "bench/agent_section.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "bench/agent_benchmark.h"
#include "bench/agent_process.h"
#include "bench/bench_fixtures.h"
#include "bench/branch_client.h"
#include "bench/child_process.h"
#include "bench/pg_anchor.h"
#include "bench/resource_usage.h"
#include "tests/support/pg_server.h"

namespace verdict::bench {

namespace {

constexpr auto kAgentStartTimeout = std::chrono::seconds(30);
constexpr auto kAnchorTimeout = std::chrono::seconds(300);
// The agent levels warm up at least this long: a PostgreSQL agent's branch pool grows to K
// connections on first use, and a new backend took up to 3 s to start on the loaded
// machine (pgbench connects every client before its clock starts).
constexpr double kMinAgentWarmupS = 2.0;

template <typename... Args>
void Progress(const char* format, Args... args) {
  std::fprintf(stderr, "verdict-bench: ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, "\n");
}

// Every committed branch added exactly 1: the sum of the balances must have grown by the
// number of commits the clients saw (exact only without transport errors, after which a
// branch's fate is unknown to the client).
Status CheckBalances(const std::string& what, int64_t sum, uint64_t committed,
                     uint64_t transport_errors, JsonObject* json) {
  const int64_t grown = sum - static_cast<int64_t>(kAccounts) * kInitialBalance;
  json->Integer("balance_growth", grown).Integer("commits_seen", static_cast<int64_t>(committed));
  if (transport_errors == 0 && grown != static_cast<int64_t>(committed)) {
    return Status::Corruption(what + ": balances grew by " + std::to_string(grown) + " but " +
                              std::to_string(committed) + " branches were committed");
  }
  return Status::OK();
}

AgentRunOptions RunOptions(const AgentSectionOptions& options, const std::string& backend) {
  AgentRunOptions o;
  o.warmup = std::chrono::milliseconds(
      static_cast<int64_t>(std::max(options.warmup_s, kMinAgentWarmupS) * 1000));
  o.duration = std::chrono::milliseconds(static_cast<int64_t>(options.duration_s * 1000));
  o.accounts = kAccounts;
  o.driver = options.driver;
  o.gtid_prefix = "bench-" + backend + "-" + std::to_string(getpid()) + "-" +
                  std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  return o;
}

JsonObject ShardJson(const AgentRun& run, ShardRun& s) {
  JsonObject o;
  o.Number("per_s", run.PerS(s))
      .Integer("ok", static_cast<int64_t>(s.ok))
      .Number("p50_ms", s.latency.QuantileMs(0.50))
      .Number("p90_ms", s.latency.QuantileMs(0.90))
      .Number("p99_ms", s.latency.QuantileMs(0.99))
      .Number("max_ms", s.latency.MaxMs())
      .Integer("voted_no", static_cast<int64_t>(s.voted_no))
      .Integer("transport_errors", static_cast<int64_t>(s.transport_errors))
      .Integer("commit_retries", static_cast<int64_t>(s.commit_retries))
      .Integer("rejected", static_cast<int64_t>(s.rejected))
      .Number("agent_cpu_pct", s.agent_cpu_pct)
      .Integer("agent_threads", s.agent_threads);
  JsonObject mean, max;
  for (size_t i = 0; i < s.step_mean_ms.size(); ++i) {
    mean.Number(BranchClient::kStepNames[i], s.step_mean_ms[i]);
    max.Number(BranchClient::kStepNames[i], s.step_max_ms[i]);
  }
  o.Object("step_mean_ms", mean).Object("step_max_ms", max);
  if (!s.first_problem.empty()) o.String("first_problem", s.first_problem);
  return o;
}

// The level's JSON: one shard's fields flat, or per shard plus the slower/total rates
// and latency over every shard.
JsonObject RunJson(AgentRun& run) {
  JsonObject o;
  if (run.shards.size() == 1) {
    o = ShardJson(run, run.shards[0]);
  } else {
    o.Number("per_s", run.SlowestPerS()).Number("total_per_s", run.TotalPerS());
    LatencySamples all;
    for (ShardRun& s : run.shards) {
      o.Object(s.name, ShardJson(run, s));
      LatencySamples copy = s.latency;
      all.Merge(std::move(copy));
    }
    o.Number("p50_ms", all.QuantileMs(0.50)).Number("p99_ms", all.QuantileMs(0.99));
  }
  o.Integer("clients_per_agent", run.clients_per_agent)
      .String("driver", run.driver == AgentDriver::kMux ? "mux" : "threads")
      .Number("bench_cpu_pct", run.bench_cpu_pct)
      .Number("machine_busy_pct", run.machine_busy_pct)
      .String("loadavg", LoadAverageLine());
  return o;
}

void ReportRun(const char* backend, AgentRun& run) {
  for (ShardRun& s : run.shards) {
    Progress(
        "%s %s, %d client(s): %.1f branches/s, p50 %.2f ms, p99 %.2f ms | voted NO %llu, "
        "transport errors %llu, commit retries %llu, rejected %llu | agent cpu %.0f%%, bench "
        "%.0f%%, machine %.0f%%",
        backend, s.name.c_str(), run.clients_per_agent, run.PerS(s), s.latency.QuantileMs(0.5),
        s.latency.QuantileMs(0.99), static_cast<unsigned long long>(s.voted_no),
        static_cast<unsigned long long>(s.transport_errors),
        static_cast<unsigned long long>(s.commit_retries),
        static_cast<unsigned long long>(s.rejected), s.agent_cpu_pct, run.bench_cpu_pct,
        run.machine_busy_pct);
    Progress(
        "  mean / max ms per step: open+execute %.2f / %.0f, prepare %.2f / %.0f, commit %.2f / "
        "%.0f",
        s.step_mean_ms[0], s.step_max_ms[0], s.step_mean_ms[1], s.step_max_ms[1], s.step_mean_ms[2],
        s.step_max_ms[2]);
    if (!s.first_problem.empty()) Progress("  first problem: %s", s.first_problem.c_str());
  }
}

Status RunSqlite(const AgentSectionOptions& options, AgentFigures* figures) {
  TempDir dir;
  VERDICT_RETURN_IF_ERROR(dir.Create("verdict-bench-sqlite", options.keep_data));
  const std::string db_path = dir.path() + "/accounts.db";
  VERDICT_RETURN_IF_ERROR(CreateSqliteAccounts(db_path));
  AgentProcessOptions agent_options;
  agent_options.participant_binary = options.participant_binary;
  agent_options.name = "bench_sqlite";
  agent_options.backend = "sqlite";
  agent_options.sqlite_path = db_path;
  agent_options.keep_data = options.keep_data;
  agent_options.local_socket = options.local_socket;
  AgentProcess agent(agent_options);
  Progress("sqlite: starting %s on %s", options.participant_binary.c_str(), db_path.c_str());
  VERDICT_RETURN_IF_ERROR(agent.Start(kAgentStartTimeout));
  const std::vector<AgentTarget> targets = {{agent.name(), agent.client_address(), agent.pid()}};
  const AgentRunOptions run_options = RunOptions(options, "sqlite");
  uint64_t committed = 0, transport_errors = 0;
  for (int k : options.clients) {
    if (Interrupted()) return Status::Aborted("interrupted");
    Progress("sqlite: %d client(s), %.1f s warm-up + %.1f s", k,
             std::max(options.warmup_s, kMinAgentWarmupS), options.duration_s);
    AgentRun run = RunAgentClosedLoop(targets, k, run_options);
    if (Interrupted()) return Status::Aborted("interrupted");
    ReportRun("sqlite", run);
    committed += run.shards[0].committed_total;
    transport_errors += run.shards[0].transport_errors;
    figures->sqlite_bps[k] = run.SlowestPerS();
    figures->sqlite_levels.Object(std::to_string(k), RunJson(run));
    VERDICT_RETURN_IF_ERROR(agent.CheckAlive());
    if (run.Rejected() > 0) {
      return Status::FailedPrecondition("sqlite: unexpected answer: " +
                                        run.shards[0].first_problem);
    }
  }
  agent.Stop();  // the database is consistent once the agent is gone
  int64_t sum = 0;
  VERDICT_RETURN_IF_ERROR(SqliteBalanceSum(db_path, &sum));
  JsonObject check;
  Status s = CheckBalances("sqlite", sum, committed, transport_errors, &check);
  figures->sqlite_levels.Object("balances", check);
  return s;
}

Status RunPostgres(const AgentSectionOptions& options, AgentFigures* figures) {
  std::string anchor_script;
  if (options.pg_anchor) {
    Status s = FindPgAnchorScript(options.source_dir, &anchor_script);
    if (!s.ok()) {
      figures->errors.push_back("pg anchor: " + s.ToString());
      anchor_script.clear();
    }
  }
  // The anchor's server settings (max_prepared_transactions 256, max_connections 200,
  // PostgreSQL's default shared_buffers), fsync on.
  test_support::PgServerOptions server_options;
  server_options.max_prepared_transactions = 256;
  server_options.max_connections = 200;
  server_options.extra_config = {"shared_buffers = 128MB"};
  server_options.keep_dir = options.keep_data;
  test_support::PgServer server(server_options);
  Progress("postgres: starting a server (initdb as the postgres user)");
  VERDICT_RETURN_IF_ERROR(server.Start());
  const std::vector<std::string> shards = {"shard_a", "shard_b"};
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::vector<AgentTarget> targets;
  for (const std::string& db : shards) {
    VERDICT_RETURN_IF_ERROR(server.CreateDatabase(db));
    VERDICT_RETURN_IF_ERROR(
        server.Exec(db,
                    "CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL); "
                    "INSERT INTO accounts SELECT g, " +
                        std::to_string(kInitialBalance) + " FROM generate_series(1, " +
                        std::to_string(kAccounts) + ") g"));
    AgentProcessOptions agent_options;
    agent_options.participant_binary = options.participant_binary;
    agent_options.name = db;
    agent_options.backend = "postgres";
    agent_options.pg_dsn = server.Dsn(db);
    agent_options.keep_data = options.keep_data;
    agent_options.local_socket = options.local_socket;
    agents.push_back(std::make_unique<AgentProcess>(agent_options));
    Progress("postgres: starting agent %s", db.c_str());
    VERDICT_RETURN_IF_ERROR(agents.back()->Start(kAgentStartTimeout));
    targets.push_back({db, agents.back()->client_address(), agents.back()->pid()});
  }
  const AgentRunOptions run_options = RunOptions(options, "pg");
  std::vector<uint64_t> committed(shards.size()), transport_errors(shards.size());
  const int anchor_seconds = std::max(1, static_cast<int>(std::lround(options.duration_s)));
  for (int k : options.clients) {
    if (Interrupted()) return Status::Aborted("interrupted");
    Progress("postgres: %d client(s) on each of %zu agents at once, %.1f s warm-up + %.1f s", k,
             targets.size(), std::max(options.warmup_s, kMinAgentWarmupS), options.duration_s);
    AgentRun run = RunAgentClosedLoop(targets, k, run_options);
    if (Interrupted()) return Status::Aborted("interrupted");
    ReportRun("postgres", run);
    for (size_t i = 0; i < shards.size(); ++i) {
      committed[i] += run.shards[i].committed_total;
      transport_errors[i] += run.shards[i].transport_errors;
    }
    figures->pg_bps[k] = run.SlowestPerS();
    figures->pg_levels.Object(std::to_string(k), RunJson(run));
    for (auto& agent : agents) VERDICT_RETURN_IF_ERROR(agent->CheckAlive());
    if (run.Rejected() > 0) {
      return Status::FailedPrecondition("postgres: unexpected answer: " +
                                        run.shards[0].first_problem + run.shards[1].first_problem);
    }
    if (anchor_script.empty() || Interrupted()) continue;
    // The anchor runs while the agents idle, never at the same time as their load.
    Progress("postgres: anchor %s %d %d (plain, then two-phase on two databases)",
             anchor_script.c_str(), anchor_seconds, k);
    PgAnchorResult anchor;
    Status s = RunPgAnchor(anchor_script, anchor_seconds, k, kAnchorTimeout, &anchor);
    if (!s.ok()) {
      Progress("pg anchor failed: %s", s.ToString().c_str());
      figures->errors.push_back("pg anchor (" + std::to_string(k) + " clients): " + s.ToString());
      if (s.code() == Status::Code::kNotFound) anchor_script.clear();
      continue;
    }
    Progress(
        "postgres: pgbench two-phase %.1f / %.1f tps (ceiling %.1f), plain %.1f tps; "
        "agent / pgbench = %.2f",
        anchor.twopc_tps_shard_a, anchor.twopc_tps_shard_b, anchor.ceiling_tps, anchor.plain_tps,
        run.SlowestPerS() / anchor.ceiling_tps);
    figures->pgbench_tps[k] = anchor.ceiling_tps;
    JsonObject a;
    a.Number("twopc_tps_shard_a", anchor.twopc_tps_shard_a)
        .Number("twopc_tps_shard_b", anchor.twopc_tps_shard_b)
        .Number("transfer_ceiling_tps", anchor.ceiling_tps)
        .Number("plain_tps", anchor.plain_tps)
        .Integer("seconds", anchor_seconds)
        .Integer("clients_per_shard", k)
        .String("loadavg", LoadAverageLine());
    figures->pgbench_levels.Object(std::to_string(k), a);
  }
  for (auto& agent : agents) agent->Stop();
  JsonObject checks;
  Status result = Status::OK();
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string value;
    VERDICT_RETURN_IF_ERROR(
        server.QueryValue(shards[i], "SELECT sum(balance) FROM accounts", &value));
    JsonObject check;
    Status s = CheckBalances("postgres " + shards[i], std::stoll(value), committed[i],
                             transport_errors[i], &check);
    if (result.ok()) result = s;
    checks.Object(shards[i], check);
  }
  figures->pg_levels.Object("balances", checks);
  return result;
}

}  // namespace

Status RunAgentSection(const AgentSectionOptions& options, AgentFigures* figures) {
  if (options.sqlite && !Interrupted()) {
    Status s = RunSqlite(options, figures);
    if (!s.ok()) {
      Progress("sqlite agent benchmark failed: %s", s.ToString().c_str());
      figures->errors.push_back("agent sqlite: " + s.ToString());
    }
  }
  if (options.postgres && !Interrupted()) {
    Status s = RunPostgres(options, figures);
    if (!s.ok()) {
      Progress("postgres agent benchmark failed: %s", s.ToString().c_str());
      figures->errors.push_back("agent postgres: " + s.ToString());
    }
  }
  return Interrupted() ? Status::Aborted("interrupted") : Status::OK();
}

}  // namespace verdict::bench
