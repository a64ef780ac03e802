#include "bench/txn_section.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>

#include "CoordinatorService.h"
#include "ParticipantRegistryService.h"
#include "ParticipantService.h"
#include "bench/agent_process.h"
#include "bench/bench_fixtures.h"
#include "bench/child_process.h"
#include "bench/coordinator_cluster.h"
#include "bench/latency_samples.h"
#include "coordinator/server/rpc_names.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

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

// One client: its own connections to the leader and to both agents.
class TxnClient {
 public:
  TxnClient(std::string leader, const std::vector<Shard>& shards, rpc::Protocol::type protocol,
            uint64_t seed)
      : leader_(std::move(leader)), shards_(shards), protocol_(protocol), rng_(seed) {}

  // Runs transfers until `stop`; counts those that end inside [measure_from, measure_to).
  void Run(const std::atomic<bool>& stop, Clock::time_point measure_from,
           Clock::time_point measure_to, ClientTally* tally) {
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed) && !Interrupted()) {
      const auto start = Clock::now();
      rpc::TxnOutcome::type outcome = rpc::TxnOutcome::UNKNOWN;
      std::string error;
      bool ok = Transfer(++n, &outcome, &error);
      const auto end = Clock::now();
      const bool measured = start >= measure_from && end < measure_to;
      if (!ok) {
        ++tally->errors;
        tally->last_error = error;
        Reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (outcome == rpc::TxnOutcome::COMMITTED) ++tally->committed_total;
      if (outcome == rpc::TxnOutcome::UNKNOWN) ++tally->unknown_total;
      if (!measured) continue;
      switch (outcome) {
        case rpc::TxnOutcome::COMMITTED:
          ++tally->committed;
          tally->latency.Add(end - start);
          break;
        case rpc::TxnOutcome::ABORTED:
          ++tally->aborted;
          break;
        default:
          ++tally->unknown;
          break;
      }
    }
  }

 private:
  // One transfer: -1 on a random account of shard 0, +1 on one of shard 1. false on a
  // transport error or an answer the bench does not expect (then `error`).
  bool Transfer(uint64_t n, rpc::TxnOutcome::type* outcome, std::string* error) {
    try {
      if (!Connect(error)) return false;
      rpc::BeginRequest begin;
      begin.protocol = protocol_;
      begin.deadline_ms = 10000;
      rpc::BeginResponse b;
      coordinator_->Begin(b, begin);
      if (b.code != rpc::ResultCode::OK) {
        *error = "Begin: code " + std::to_string(b.code) + " " + b.message;
        if (b.code == rpc::ResultCode::NOT_LEADER && b.__isset.leader &&
            !b.leader.address.empty()) {
          leader_ = b.leader.address;
        }
        return false;
      }
      std::uniform_int_distribution<int> account(1, kAccounts);
      for (size_t i = 0; i < shards_.size(); ++i) {
        const std::string branch = "b" + std::to_string(n);
        rpc::OpenBranchRequest open;
        open.gtid = b.gtid;
        open.branch = branch;
        open.protocol =
            protocol_ == rpc::Protocol::THREE_PC ? rpc::Protocol::THREE_PC : rpc::Protocol::TWO_PC;
        open.timeout_ms = 10000;
        rpc::OpenBranchResponse o;
        agents_[i]->OpenBranch(o, open);
        if (o.code != rpc::ParticipantCode::OK) {
          *error = "OpenBranch: " + o.message;
          return false;
        }
        rpc::ExecuteRequest exec;
        exec.gtid = b.gtid;
        exec.branch = branch;
        exec.sql = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
        rpc::SqlValue delta, id;
        delta.type = rpc::SqlType::INTEGER;
        delta.__set_integer(i == 0 ? -1 : 1);
        id.type = rpc::SqlType::INTEGER;
        id.__set_integer(account(rng_));
        exec.params = {delta, id};
        exec.seq = 1;
        rpc::ExecuteResponse e;
        agents_[i]->Execute(e, exec);
        if (e.code == rpc::ParticipantCode::OK) {
          rpc::RegisterBranchRequest reg;
          reg.gtid = b.gtid;
          reg.participant = shards_[i].name;
          reg.branch = branch;
          rpc::RegisterBranchResponse r;
          coordinator_->RegisterBranch(r, reg);
          if (r.code != rpc::ResultCode::OK) {
            *error = "RegisterBranch: " + r.message;
            return false;
          }
        }
        // A lock timeout or SQL error aborted that branch: the commit below aborts.
      }
      rpc::TxnRequest commit;
      commit.gtid = b.gtid;
      rpc::TxnOutcomeResponse c;
      coordinator_->Commit(c, commit);
      if (c.code != rpc::ResultCode::OK) {
        *error = "Commit: code " + std::to_string(c.code) + " " + c.message;
        return false;
      }
      *outcome = c.outcome;
      return true;
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
  }

  bool Connect(std::string* error) {
    if (coordinator_) return true;
    coordinator_channel_ = std::make_unique<rpc::ThriftChannel>(
        leader_, coordinator::server::kCoordinatorServiceName, kCallTimeoutMs);
    Status s = coordinator_channel_->Open();
    if (!s.ok()) {
      *error = s.ToString();
      Reset();
      return false;
    }
    coordinator_ =
        std::make_unique<rpc::CoordinatorServiceClient>(coordinator_channel_->protocol());
    for (const Shard& shard : shards_) {
      auto ch = std::make_unique<rpc::ThriftChannel>(
          shard.agent->address(), participant::kParticipantServiceName, kCallTimeoutMs);
      s = ch->Open();
      if (!s.ok()) {
        *error = s.ToString();
        Reset();
        return false;
      }
      agents_.push_back(std::make_unique<rpc::ParticipantServiceClient>(ch->protocol()));
      agent_channels_.push_back(std::move(ch));
    }
    return true;
  }

  void Reset() {
    agents_.clear();
    agent_channels_.clear();
    coordinator_.reset();
    coordinator_channel_.reset();
  }

  std::string leader_;
  const std::vector<Shard>& shards_;
  const rpc::Protocol::type protocol_;
  std::mt19937_64 rng_;
  std::unique_ptr<rpc::ThriftChannel> coordinator_channel_;
  std::unique_ptr<rpc::CoordinatorServiceClient> coordinator_;
  std::vector<std::unique_ptr<rpc::ThriftChannel>> agent_channels_;
  std::vector<std::unique_ptr<rpc::ParticipantServiceClient>> agents_;
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
  std::vector<Shard> shards(2);
  for (size_t i = 0; i < shards.size(); ++i) {
    Shard& shard = shards[i];
    shard.name = std::string("shard_") + static_cast<char>('a' + i);
    shard.sqlite_path = dir.path() + "/" + shard.name + ".db";
    s = CreateSqliteAccounts(shard.sqlite_path);
    if (!s.ok()) break;
    AgentProcessOptions o;
    o.participant_binary = options.participant_binary;
    o.name = shard.name;
    o.backend = "sqlite";
    o.sqlite_path = shard.sqlite_path;
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
      std::string current = cluster.FindLeader();
      if (current.empty()) current = leader;
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
          TxnClient client(current, shards, protocol, 0x5eed0000u + c * 7919u + k);
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
  Status sa = SqliteBalanceSum(shards[0].sqlite_path, &a);
  Status sb = SqliteBalanceSum(shards[1].sqlite_path, &b);
  JsonObject money;
  if (sa.ok() && sb.ok()) {
    const int64_t initial = static_cast<int64_t>(kAccounts) * kInitialBalance;
    money.Integer("moved_out_of_a", initial - a)
        .Integer("moved_into_b", b - initial)
        .Integer("commits_seen", static_cast<int64_t>(committed_total))
        .Integer("unknown_seen", static_cast<int64_t>(unknown_total))
        .Bool("conserved", a + b == 2 * initial);
    if (a + b != 2 * initial) {
      figures->errors.push_back("txn: money not conserved: " + std::to_string(a + b - 2 * initial));
    }
  } else {
    figures->errors.push_back("txn: cannot read balances: " + sa.ToString() + " " + sb.ToString());
  }
  figures->levels.Object("money", money);
  return Status::OK();
}

}  // namespace verdict::bench
