#include "bench/txn_section.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>

#include "ParticipantRegistryService.h"
#include "bench/agent_process.h"
#include "bench/bench_fixtures.h"
#include "bench/child_process.h"
#include "bench/coordinator_cluster.h"
#include "bench/latency_samples.h"
#include "coordinator/server/rpc_names.h"
#include "tests/support/pg_server.h"
#include "thrift/thrift_channel.h"
#include "verdict/client.h"

namespace verdict::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kCallTimeoutMs = 15000;
constexpr auto kStartTimeout = std::chrono::seconds(30);

template <typename... Args>
void Progress(const char* format, Args... args) {
  std::fprintf(stderr, "verdict-bench: txn: ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, "\n");
}

struct Shard {
  std::string name;
  std::string sqlite_path;
  std::unique_ptr<AgentProcess> agent;
};

// What one client saw during the measured window (and, for the money check, in all).
struct ClientTally {
  uint64_t committed = 0, aborted = 0, unknown = 0, errors = 0;
  uint64_t committed_total = 0;  // including warm-up: each moved 1 unit between shards
  uint64_t unknown_total = 0;
  LatencySamples latency;
  std::string last_error;
};

// One client: its own libverdict Client (a connection to the leader and one per agent),
// making transfers exactly as a service would.
class TxnClient {
 public:
  TxnClient(std::vector<std::string> coordinators, const std::vector<Shard>& shards,
            rpc::Protocol::type protocol, uint64_t seed)
      : coordinators_(std::move(coordinators)), shards_(shards), protocol_(protocol), rng_(seed) {}

  // Runs transfers until `stop`; counts those that end inside [measure_from, measure_to).
  void Run(const std::atomic<bool>& stop, Clock::time_point measure_from,
           Clock::time_point measure_to, ClientTally* tally) {
    while (!stop.load(std::memory_order_relaxed) && !Interrupted()) {
      const auto start = Clock::now();
      sdk::Outcome outcome = sdk::Outcome::kUnknown;
      std::string error;
      bool ok = Transfer(&outcome, &error);
      const auto end = Clock::now();
      const bool measured = start >= measure_from && end < measure_to;
      if (!ok) {
        ++tally->errors;
        tally->last_error = error;
        client_.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (outcome == sdk::Outcome::kCommitted) ++tally->committed_total;
      if (outcome == sdk::Outcome::kUnknown) ++tally->unknown_total;
      if (!measured) continue;
      switch (outcome) {
        case sdk::Outcome::kCommitted:
          ++tally->committed;
          tally->latency.Add(end - start);
          break;
        case sdk::Outcome::kAborted:
          ++tally->aborted;
          break;
        default:
          ++tally->unknown;
          break;
      }
    }
  }

 private:
  // One transfer: -1 on a random account of shard 0, +1 on one of shard 1. false on an
  // error the bench does not expect (then `error`).
  bool Transfer(sdk::Outcome* outcome, std::string* error) {
    if (client_ == nullptr) {
      sdk::ClientOptions o;
      o.coordinators = coordinators_;
      o.rpc_timeout_ms = kCallTimeoutMs;
      sdk::Status s = sdk::Client::Connect(o, &client_);
      if (!s.ok()) {
        *error = "Connect: " + s.ToString();
        return false;
      }
    }
    std::unique_ptr<sdk::Transaction> txn;
    sdk::Status s =
        client_->Begin({protocol_ == rpc::Protocol::THREE_PC ? sdk::Protocol::kThreePhase
                                                             : sdk::Protocol::kTwoPhase,
                        10000},
                       &txn);
    if (!s.ok()) {
      *error = "Begin: " + s.ToString();
      return false;
    }
    std::uniform_int_distribution<int> account(1, kAccounts);
    for (size_t i = 0; i < shards_.size(); ++i) {
      s = txn->Execute(shards_[i].name, "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                       {sdk::Value::Integer(i == 0 ? -1 : 1), sdk::Value::Integer(account(rng_))});
      // A lock timeout or SQL error aborted that branch: the commit below aborts.
      if (!s.ok() && s.code() != sdk::Status::Code::kLockTimeout &&
          s.code() != sdk::Status::Code::kSqlError) {
        *error = "Execute: " + s.ToString();
        return false;
      }
    }
    s = txn->Commit(outcome);
    if (!s.ok()) {
      *error = "Commit: " + s.ToString();
      return false;
    }
    return true;
  }

  const std::vector<std::string> coordinators_;
  const std::vector<Shard>& shards_;
  const rpc::Protocol::type protocol_;
  std::mt19937_64 rng_;
  std::unique_ptr<sdk::Client> client_;
};

// Waits until the leader's registry lists every shard.
Status WaitForRegistry(const std::string& leader, const std::vector<Shard>& shards) {
  const auto deadline = Clock::now() + kStartTimeout;
  std::string last;
  while (Clock::now() < deadline && !Interrupted()) {
    rpc::ThriftChannel ch(leader, coordinator::server::kRegistryServiceName, 5000);
    if (ch.Open().ok()) {
      try {
        rpc::ParticipantRegistryServiceClient client(ch.protocol());
        rpc::ListParticipantsResponse resp;
        client.ListParticipants(resp);
        size_t found = 0;
        for (const Shard& s : shards) {
          for (const auto& p : resp.participants) {
            if (p.name == s.name && p.address == s.agent->address()) ++found;
          }
        }
        if (found == shards.size()) return Status::OK();
        last = std::to_string(found) + " of " + std::to_string(shards.size()) + " registered";
      } catch (const std::exception& e) {
        last = e.what();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::Timeout("agents did not register with the coordinators: " + last);
}

}  // namespace

Status RunTxnSection(const TxnSectionOptions& options, TxnFigures* figures) {
  TempDir dir;
  VERDICT_RETURN_IF_ERROR(dir.Create("verdict-bench-txn", options.keep_data));
  ClusterOptions cluster_options;
  cluster_options.coordinator_binary = options.coordinator_binary;
  cluster_options.keep_data = options.keep_data;
  CoordinatorCluster cluster(cluster_options);
  Status s = cluster.Start();
  std::string leader;
  if (s.ok()) s = cluster.WaitForLeader(kStartTimeout, &leader);
  if (!s.ok()) {
    figures->errors.push_back("txn: coordinators: " + s.ToString());
    return s;
  }
  std::string coordinators;
  for (const auto& node : cluster.nodes()) {
    coordinators += (coordinators.empty() ? "" : ",") + node.address;
  }
  std::unique_ptr<test_support::PgServer> pg;
  if (options.postgres) {
    test_support::PgServerOptions server_options;
    server_options.max_prepared_transactions = 256;
    server_options.max_connections = 200;
    server_options.extra_config = {"shared_buffers = 128MB"};
    server_options.keep_dir = options.keep_data;
    pg = std::make_unique<test_support::PgServer>(server_options);
    Progress("starting a PostgreSQL server (initdb as the postgres user)");
    s = pg->Start();
    if (!s.ok()) {
      figures->errors.push_back("txn_pg: " + s.ToString());
      return s;
    }
  }
  std::vector<Shard> shards(2);
  for (size_t i = 0; i < shards.size(); ++i) {
    Shard& shard = shards[i];
    shard.name = std::string("shard_") + static_cast<char>('a' + i);
    AgentProcessOptions o;
    if (pg != nullptr) {
      s = pg->CreateDatabase(shard.name);
      if (s.ok()) {
        s = pg->Exec(shard.name,
                     "CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT "
                     "NULL); INSERT INTO accounts SELECT g, " +
                         std::to_string(kInitialBalance) + " FROM generate_series(1, " +
                         std::to_string(kAccounts) + ") g");
      }
      o.backend = "postgres";
      o.pg_dsn = pg->Dsn(shard.name);
    } else {
      shard.sqlite_path = dir.path() + "/" + shard.name + ".db";
      s = CreateSqliteAccounts(shard.sqlite_path);
      o.backend = "sqlite";
      o.sqlite_path = shard.sqlite_path;
    }
    if (!s.ok()) break;
    o.participant_binary = options.participant_binary;
    o.name = shard.name;
    o.coordinators = coordinators;
    o.keep_data = options.keep_data;
    shard.agent = std::make_unique<AgentProcess>(o);
    s = shard.agent->Start(kStartTimeout);
    if (!s.ok()) break;
  }
  if (s.ok()) s = WaitForRegistry(leader, shards);
  if (!s.ok()) {
    figures->errors.push_back("txn: " + s.ToString());
    return s;
  }

  uint64_t committed_total = 0, unknown_total = 0;
  for (rpc::Protocol::type protocol : {rpc::Protocol::TWO_PC, rpc::Protocol::THREE_PC}) {
    const std::string pname = protocol == rpc::Protocol::THREE_PC ? "3pc" : "2pc";
    JsonObject protocol_json;
    for (int k : options.clients) {
      if (Interrupted()) return Status::Aborted("interrupted");
      std::vector<std::string> addresses;
      for (const auto& node : cluster.nodes()) addresses.push_back(node.address);
      std::atomic<bool> stop{false};
      std::vector<ClientTally> tallies(static_cast<size_t>(k));
      std::vector<std::thread> threads;
      const auto t0 = Clock::now();
      const auto from =
          t0 + std::chrono::milliseconds(static_cast<int64_t>(options.warmup_s * 1e3));
      const auto to =
          from + std::chrono::milliseconds(static_cast<int64_t>(options.duration_s * 1e3));
      for (int c = 0; c < k; ++c) {
        threads.emplace_back([&, c] {
          TxnClient client(addresses, shards, protocol, 0x5eed0000u + c * 7919u + k);
          client.Run(stop, from, to, &tallies[static_cast<size_t>(c)]);
        });
      }
      std::this_thread::sleep_until(to);
      stop = true;
      for (auto& t : threads) t.join();
      ClientTally total;
      for (ClientTally& t : tallies) {
        total.committed += t.committed;
        total.aborted += t.aborted;
        total.unknown += t.unknown;
        total.errors += t.errors;
        total.committed_total += t.committed_total;
        total.unknown_total += t.unknown_total;
        if (!t.last_error.empty()) total.last_error = t.last_error;
        total.latency.Merge(std::move(t.latency));
      }
      committed_total += total.committed_total;
      unknown_total += total.unknown_total;
      const double tps = static_cast<double>(total.committed) / options.duration_s;
      const double p50 = total.latency.QuantileMs(0.5), p99 = total.latency.QuantileMs(0.99);
      figures->tps[pname][k] = tps;
      figures->p50_ms[pname][k] = p50;
      figures->p99_ms[pname][k] = p99;
      JsonObject level;
      level.Number("tps", tps)
          .Integer("committed", static_cast<int64_t>(total.committed))
          .Integer("aborted", static_cast<int64_t>(total.aborted))
          .Integer("unknown", static_cast<int64_t>(total.unknown))
          .Integer("errors", static_cast<int64_t>(total.errors))
          .Number("p50_ms", p50)
          .Number("p99_ms", p99)
          .Number("max_ms", total.latency.MaxMs());
      if (!total.last_error.empty()) level.String("last_error", total.last_error);
      protocol_json.Object(std::to_string(k), level);
      Progress(
          "%s, %d clients: %.0f commits/s, p50 %.2f ms, p99 %.2f ms (%llu aborted, %llu "
          "unknown, %llu errors)",
          pname.c_str(), k, tps, p50, p99, static_cast<unsigned long long>(total.aborted),
          static_cast<unsigned long long>(total.unknown),
          static_cast<unsigned long long>(total.errors));
      if (total.errors > 0) Progress("last error: %s", total.last_error.c_str());
    }
    figures->levels.Object(pname, protocol_json);
  }

  // Money check: every committed transfer moved one unit from shard_a to shard_b, so the
  // total is unchanged and shard_b gained what shard_a lost. Phase two is asynchronous:
  // let the agents finish it first.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  int64_t a = 0, b = 0;
  auto sum = [&](const Shard& shard, int64_t* out) {
    if (pg == nullptr) return SqliteBalanceSum(shard.sqlite_path, out);
    std::string v;
    Status qs = pg->QueryValue(shard.name, "SELECT SUM(balance) FROM accounts", &v);
    if (qs.ok()) *out = std::stoll(v);
    return qs;
  };
  Status sa = sum(shards[0], &a);
  Status sb = sum(shards[1], &b);
  JsonObject money;
  if (sa.ok() && sb.ok()) {
    const int64_t initial = static_cast<int64_t>(kAccounts) * kInitialBalance;
    money.Integer("moved_out_of_a", initial - a)
        .Integer("moved_into_b", b - initial)
        .Integer("commits_seen", static_cast<int64_t>(committed_total))
        .Integer("unknown_seen", static_cast<int64_t>(unknown_total))
        .Bool("conserved", a + b == 2 * initial);
    if (a + b != 2 * initial) {
      figures->errors.push_back(std::string(options.postgres ? "txn_pg" : "txn") +
                                ": money not conserved: " + std::to_string(a + b - 2 * initial));
    }
  } else {
    figures->errors.push_back("txn: cannot read balances: " + sa.ToString() + " " + sb.ToString());
  }
  figures->levels.Object("money", money);
  return Status::OK();
}

}  // namespace verdict::bench
