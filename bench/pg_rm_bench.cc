// verdict-pg-rm-bench: prepare+commit branch operations per second through the PostgreSQL
// resource manager (participant/postgres/, no agent, no Thrift, no journal) at several
// concurrencies, next to the raw pgbench two-phase ceiling of the same machine
// (../shared/anchors/pg-2pc-ceiling.sh), run in the same session.
//
// Shape, matching the anchor: two databases ("shards") of one throwaway server, `clients`
// branches in flight on EACH at once; a branch is Begin + one UPDATE of a random row of
// 10,000 + PREPARE TRANSACTION + COMMIT PREPARED. Reported per concurrency: each shard's
// rate and the slower one (the transfer ceiling), and the anchor's figure at the same
// clients-per-shard. Last stdout line: one JSON object.
//
// Usage: verdict-pg-rm-bench [--seconds S=5] [--clients 1,8,32] [--no-anchor] [--anchor PATH]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "participant/postgres/postgres_resource_manager.h"
#include "tests/support/pg_server.h"

namespace {

using verdict::Status;
using verdict::participant::BranchKey;
using verdict::participant::BranchOptions;
using verdict::participant::PrepareResult;
using verdict::participant::QueryResult;
using verdict::participant::SqlValue;
using verdict::participant::postgres::PostgresOptions;
using verdict::participant::postgres::PostgresResourceManager;

constexpr int kAccounts = 10000;

struct ShardResult {
  double tps = 0;
  int64_t failures = 0;
};

// Runs `clients` threads of branches on `rm` for `seconds`.
ShardResult RunShard(PostgresResourceManager* rm, const std::string& tag, int clients,
                     int seconds) {
  std::atomic<int64_t> done{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(c * 7919 + 1);
      std::uniform_int_distribution<int> account(1, kAccounts);
      for (int64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const BranchKey key{tag + "-" + std::to_string(c) + "-" + std::to_string(i), "b"};
        QueryResult r;
        PrepareResult pr;
        Status s = rm->Begin(key, BranchOptions());
        if (s.ok()) {
          s = rm->Execute(key, "UPDATE accounts SET balance = balance + 1 WHERE id = ?",
                          {SqlValue::Integer(account(rng))}, &r);
        }
        if (s.ok()) s = rm->Prepare(key, {"a", "b"}, &pr);
        if (s.ok()) s = rm->CommitPrepared(key);
        if (s.ok()) {
          done.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
          rm->Rollback(key);
          rm->RollbackPrepared(key);
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ShardResult{static_cast<double>(done.load()) / elapsed, failed.load()};
}

// Runs the anchor script; returns its transfer_ceiling_tps (or -1) and its JSON line.
double RunAnchor(const std::string& path, int seconds, int clients, std::string* json) {
  const std::string cmd =
      "bash '" + path + "' " + std::to_string(seconds) + " " + std::to_string(clients) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string out, last;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) {
    out += buf;
    std::string line(buf);
    if (!line.empty() && line[0] == '{') last = line;
  }
  const int rc = pclose(p);
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  *json = last;
  const std::string field = "\"transfer_ceiling_tps\":";
  const size_t at = last.find(field);
  if (rc != 0 || at == std::string::npos) {
    std::fprintf(stderr, "anchor failed (rc %d):\n%s\n", rc, out.c_str());
    return -1;
  }
  return std::atof(last.c_str() + at + field.size());
}

std::string DefaultAnchor() {
  if (const char* dir = std::getenv("VERDICT_ANCHORS")) {
    return std::string(dir) + "/pg-2pc-ceiling.sh";
  }
#ifdef VERDICT_SOURCE_DIR
  return std::string(VERDICT_SOURCE_DIR) + "/../shared/anchors/pg-2pc-ceiling.sh";
#else
  return "../shared/anchors/pg-2pc-ceiling.sh";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  std::vector<int> concurrency = {1, 8, 32};
  bool anchor = true;
  std::string anchor_path = DefaultAnchor();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
    } else if (arg == "--clients" && i + 1 < argc) {
      concurrency.clear();
      std::stringstream ss(argv[++i]);
      std::string c;
      while (std::getline(ss, c, ',')) concurrency.push_back(std::atoi(c.c_str()));
    } else if (arg == "--no-anchor") {
      anchor = false;
    } else if (arg == "--anchor" && i + 1 < argc) {
      anchor_path = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: verdict-pg-rm-bench [--seconds S] [--clients 1,8,32] [--no-anchor] "
                   "[--anchor PATH]\n");
      return 2;
    }
  }

  verdict::test_support::PgServerOptions server_options;
  server_options.max_prepared_transactions = 256;
  server_options.max_connections = 200;
  verdict::test_support::PgServer server(server_options);
  Status s = server.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "verdict-pg-rm-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<PostgresResourceManager>> rms;
  for (const char* db : {"shard_a", "shard_b"}) {
    s = server.CreateDatabase(db);
    if (s.ok()) {
      s = server.Exec(db,
                      "CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL); "
                      "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, " +
                          std::to_string(kAccounts) + ") g");
    }
    PostgresOptions o;
    o.dsn = server.Dsn(db);
    o.participant_name = db;
    o.max_branch_connections = 64;
    rms.push_back(std::make_unique<PostgresResourceManager>(o));
    if (s.ok()) s = rms.back()->Start();
    if (!s.ok()) {
      std::fprintf(stderr, "verdict-pg-rm-bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }

  std::ostringstream json;
  json << "{\"seconds\":" << seconds << ",\"runs\":[";
  for (size_t n = 0; n < concurrency.size(); ++n) {
    const int c = concurrency[n];
    ShardResult a, b;
    // (Tags built outside the lambdas: GCC 12's -Wrestrict misfires on "x" + to_string.)
    const std::string tag_a = std::string("a").append(std::to_string(c));
    const std::string tag_b = std::string("b").append(std::to_string(c));
    std::thread ta([&] { a = RunShard(rms[0].get(), tag_a, c, seconds); });
    std::thread tb([&] { b = RunShard(rms[1].get(), tag_b, c, seconds); });
    ta.join();
    tb.join();
    const double rm_ceiling = std::min(a.tps, b.tps);
    double raw = -1;
    std::string anchor_json;
    if (anchor) raw = RunAnchor(anchor_path, seconds, c, &anchor_json);
    std::printf(
        "clients/shard %2d: RM %.1f / %.1f branches/s (failures %lld / %lld), "
        "ceiling %.1f; raw pgbench 2PC ceiling %.1f; ratio %.2f\n",
        c, a.tps, b.tps, static_cast<long long>(a.failures), static_cast<long long>(b.failures),
        rm_ceiling, raw, raw > 0 ? rm_ceiling / raw : 0.0);
    std::fflush(stdout);
    json << (n ? "," : "") << "{\"clients_per_shard\":" << c << ",\"rm_tps_shard_a\":" << a.tps
         << ",\"rm_tps_shard_b\":" << b.tps << ",\"rm_ceiling_tps\":" << rm_ceiling
         << ",\"failures\":" << (a.failures + b.failures) << ",\"raw_2pc_ceiling_tps\":" << raw
         << ",\"ratio\":" << (raw > 0 ? rm_ceiling / raw : 0.0) << "}";
  }
  json << "]}";
  std::printf("%s\n", json.str().c_str());
  return 0;
}
