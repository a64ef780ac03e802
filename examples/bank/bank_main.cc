// verdict-bank: the bank-transfer demo (DESIGN §7). Accounts 0..N-1 are spread over the
// shards (account i on shard i % S); C client threads, each with its own libverdict
// Client, move random amounts between random accounts for S seconds, one global
// transaction per transfer (a debit guarded by `balance >= amount`, and a credit). Then it
// waits for phase two to settle and checks the invariant: the sum over all shards is
// N x initial balance, and no balance is negative.
//
// Progress goes to stderr; the last line on stdout is one JSON object.
#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "examples/bank/bank_schema.h"
#include "verdict/client.h"

namespace po = boost::program_options;
using namespace verdict::sdk;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kExitBadFlags = 2;

struct Flags {
  std::vector<std::string> coordinators;
  std::vector<std::string> shards;
  int64_t accounts = 1000;
  int clients = 4;
  double duration_s = 10;
  Protocol protocol = Protocol::kTwoPhase;
  bool init = false;
  int64_t initial_balance = 1000;
  int64_t max_amount = 100;
  int64_t deadline_ms = 5000;
  int settle_s = 30;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

[[noreturn]] void BadFlags(const std::string& why) {
  std::fprintf(stderr, "verdict-bank: %s\n", why.c_str());
  std::exit(kExitBadFlags);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  std::string coordinators, shards, protocol, config;
  po::options_description desc(
      "Usage: verdict-bank --coordinators HOST:PORT,... --shards NAME,NAME,... [--init] "
      "[options]\nOptions");
  // clang-format off
  desc.add_options()
      ("help", "this text")
      ("config", po::value(&config), "read options from FILE (name = value lines)")
      ("coordinators", po::value(&coordinators), "the coordinator nodes, HOST:PORT,... (required)")
      ("shards", po::value(&shards), "participant names of the shards, NAME,NAME,... (required)")
      ("accounts", po::value(&f.accounts)->default_value(1000), "number of accounts N")
      ("clients", po::value(&f.clients)->default_value(4), "concurrent client threads")
      ("duration", po::value(&f.duration_s)->default_value(10), "seconds of transfers (0: none)")
      ("protocol", po::value(&protocol)->default_value("2pc"), "2pc or 3pc")
      ("init", po::bool_switch(&f.init), "create and fill the accounts table on every shard first")
      ("initial-balance", po::value(&f.initial_balance)->default_value(1000), "each account's balance at --init")
      ("max-amount", po::value(&f.max_amount)->default_value(100), "largest amount of one transfer")
      ("deadline-ms", po::value(&f.deadline_ms)->default_value(5000), "each transaction's deadline")
      ("settle-s", po::value(&f.settle_s)->default_value(30), "how long to wait for phase two before checking");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config") > 0) {
      std::ifstream in(vm["config"].as<std::string>());
      if (!in) BadFlags("cannot read --config " + vm["config"].as<std::string>());
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    BadFlags(e.what());
  }
  if (vm.count("help") > 0) {
    std::cout << desc << "\n";
    std::exit(0);
  }
  f.coordinators = SplitList(coordinators);
  f.shards = SplitList(shards);
  if (f.coordinators.empty()) BadFlags("--coordinators is required");
  if (f.shards.empty()) BadFlags("--shards is required");
  if (f.accounts < 2) BadFlags("--accounts must be at least 2");
  if (f.clients < 1 || f.clients > 1024) BadFlags("--clients must be in 1..1024");
  if (f.duration_s < 0) BadFlags("--duration must not be negative");
  if (protocol != "2pc" && protocol != "3pc") BadFlags("--protocol must be 2pc or 3pc");
  f.protocol = protocol == "3pc" ? Protocol::kThreePhase : Protocol::kTwoPhase;
  if (f.initial_balance < 0) BadFlags("--initial-balance must not be negative");
  if (f.max_amount < 1) BadFlags("--max-amount must be positive");
  if (f.deadline_ms < 1) BadFlags("--deadline-ms must be positive");
  return f;
}

void Log(const char* fmt, const std::string& a = "") {
  std::fprintf(stderr, "verdict-bank: ");
  std::fprintf(stderr, fmt, a.c_str());
  std::fprintf(stderr, "\n");
}

const std::string& ShardOf(const Flags& f, int64_t account) {
  return f.shards[static_cast<size_t>(account % static_cast<int64_t>(f.shards.size()))];
}

Status Connect(const Flags& f, std::unique_ptr<Client>* client) {
  ClientOptions o;
  o.coordinators = f.coordinators;
  return Client::Connect(o, client);
}

// Creates the table on every shard and fills it with this shard's accounts (one
// single-shard transaction each: a one-phase commit).
Status Init(const Flags& f, Client& client) {
  for (size_t s = 0; s < f.shards.size(); ++s) {
    std::unique_ptr<Transaction> txn;
    Status st = client.Begin({Protocol::kTwoPhase, 60000}, &txn);
    if (!st.ok()) return st;
    const std::string& shard = f.shards[s];
    st = txn->Execute(shard, verdict::bank::kSchemaSql);
    if (st.ok()) st = txn->Execute(shard, "DELETE FROM accounts");
    std::vector<int64_t> ids;
    for (int64_t id = static_cast<int64_t>(s); id < f.accounts;
         id += static_cast<int64_t>(f.shards.size())) {
      ids.push_back(id);
    }
    for (size_t i = 0; st.ok() && i < ids.size(); i += 100) {
      std::string sql = "INSERT INTO accounts(id, balance) VALUES ";
      std::vector<Value> params;
      for (size_t j = i; j < std::min(ids.size(), i + 100); ++j) {
        sql += j == i ? "(?, ?)" : ", (?, ?)";
        params.push_back(Value::Integer(ids[j]));
        params.push_back(Value::Integer(f.initial_balance));
      }
      st = txn->Execute(shard, sql, params);
    }
    if (!st.ok()) return Status(st.code(), "init of " + shard + ": " + st.message());
    Outcome outcome;
    st = txn->Commit(&outcome);
    if (!st.ok()) return st;
    if (outcome != Outcome::kCommitted) {
      return Status(Status::Code::kAborted,
                    "init of " + shard + ": " + OutcomeName(outcome) + " " + st.message());
    }
  }
  return Status::OK();
}

struct Tally {
  std::mutex mu;
  int64_t committed = 0, aborted = 0, unknown = 0, errors = 0;
  std::vector<double> latencies_ms;  // committed transfers
  std::string first_error;
};

// One transfer; returns its outcome (kAborted also for an insufficient balance), or
// nothing if no transaction could be begun (then `error`).
std::optional<Outcome> Transfer(const Flags& f, Client& client, std::mt19937_64& rng,
                                std::string* error) {
  std::uniform_int_distribution<int64_t> account(0, f.accounts - 1);
  std::uniform_int_distribution<int64_t> amount_of(1, f.max_amount);
  const int64_t from = account(rng);
  int64_t to = account(rng);
  while (to == from) to = account(rng);
  const int64_t amount = amount_of(rng);
  std::unique_ptr<Transaction> txn;
  Status s = client.Begin({f.protocol, f.deadline_ms}, &txn);
  if (!s.ok()) {
    *error = "Begin: " + s.ToString();
    return std::nullopt;
  }
  Result r;
  s = txn->Execute(ShardOf(f, from),
                   "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                   {Value::Integer(amount), Value::Integer(from), Value::Integer(amount)}, &r);
  if (s.ok() && r.rows_affected == 1) {
    s = txn->Execute(ShardOf(f, to), "UPDATE accounts SET balance = balance + ? WHERE id = ?",
                     {Value::Integer(amount), Value::Integer(to)}, &r);
    if (s.ok() && r.rows_affected != 1) {
      s = Status(Status::Code::kNotFound, "account " + std::to_string(to) + " missing");
    }
  } else if (s.ok()) {
    txn->Abort();  // insufficient balance: declined
    return Outcome::kAborted;
  }
  if (!s.ok()) {
    // Lock timeouts and the like abort the transfer; other failures are reported.
    if (s.code() != Status::Code::kLockTimeout && s.code() != Status::Code::kWrongState) {
      *error = "Execute: " + s.ToString();
    }
    txn->Abort();
    return Outcome::kAborted;
  }
  Outcome outcome = Outcome::kUnknown;
  s = txn->Commit(&outcome);
  if (!s.ok()) *error = "Commit: " + s.ToString();
  return outcome;
}

void RunClient(const Flags& f, int index, Clock::time_point end, Tally* tally) {
  std::unique_ptr<Client> client;
  Status s = Connect(f, &client);
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(tally->mu);
    ++tally->errors;
    if (tally->first_error.empty()) tally->first_error = "connect: " + s.ToString();
    return;
  }
  std::mt19937_64 rng(0x5eed + static_cast<uint64_t>(index));
  while (Clock::now() < end) {
    const auto start = Clock::now();
    std::string error;
    std::optional<Outcome> o = Transfer(f, *client, rng, &error);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!o.has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // no leader
    std::lock_guard<std::mutex> l(tally->mu);
    if (!error.empty()) {
      ++tally->errors;
      if (tally->first_error.empty()) tally->first_error = error;
    }
    if (!o.has_value()) continue;
    switch (*o) {
      case Outcome::kCommitted:
        ++tally->committed;
        tally->latencies_ms.push_back(ms);
        break;
      case Outcome::kAborted:
        ++tally->aborted;
        break;
      case Outcome::kUnknown:
        ++tally->unknown;
        break;
    }
  }
}

struct Totals {
  int64_t accounts = 0, sum = 0, negative = 0;
};

// Sums every shard in one read-only global transaction.
Status ReadTotals(const Flags& f, Client& client, Totals* out) {
  *out = Totals();
  std::unique_ptr<Transaction> txn;
  Status s = client.Begin({Protocol::kTwoPhase, 30000}, &txn);
  if (!s.ok()) return s;
  for (const std::string& shard : f.shards) {
    Result r;
    s = txn->Execute(shard,
                     "SELECT COUNT(*), COALESCE(SUM(balance), 0), "
                     "COALESCE(SUM(CASE WHEN balance < 0 THEN 1 ELSE 0 END), 0) FROM accounts",
                     {}, &r);
    if (!s.ok()) return Status(s.code(), shard + ": " + s.message());
    if (r.rows.size() != 1 || r.rows[0].size() != 3) {
      return Status(Status::Code::kInvalidArgument, shard + ": unexpected totals row");
    }
    out->accounts += r.rows[0][0].integer();
    out->sum += r.rows[0][1].integer();
    out->negative += r.rows[0][2].integer();
  }
  Outcome outcome;
  return txn->Commit(&outcome);
}

double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  std::unique_ptr<Client> client;
  Status s = Connect(f, &client);
  if (!s.ok()) {
    std::fprintf(stderr, "verdict-bank: cannot reach the coordinator group: %s\n",
                 s.ToString().c_str());
    return 1;
  }
  std::map<std::string, std::string> participants;
  s = client->Participants(&participants);
  for (const std::string& shard : f.shards) {
    if (s.ok() && participants.count(shard) == 0) {
      std::fprintf(stderr, "verdict-bank: shard '%s' is not a registered participant\n",
                   shard.c_str());
      return 1;
    }
  }
  if (f.init) {
    Log("initialising %s accounts", std::to_string(f.accounts));
    s = Init(f, *client);
    if (!s.ok()) {
      std::fprintf(stderr, "verdict-bank: --init failed: %s\n", s.ToString().c_str());
      return 1;
    }
  }

  Tally tally;
  const auto begin = Clock::now();
  const auto end = begin + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(f.duration_s));
  if (f.duration_s > 0) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", f.duration_s);
    Log("%s", std::to_string(f.clients) + " clients moving money for " + seconds + " s (" +
                  (f.protocol == Protocol::kThreePhase ? "3pc" : "2pc") + ")");
    std::vector<std::thread> threads;
    for (int i = 0; i < f.clients; ++i) threads.emplace_back(RunClient, f, i, end, &tally);
    for (std::thread& t : threads) t.join();
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  if (!tally.first_error.empty()) Log("first error: %s", tally.first_error);

  // Phase two runs after each answer: wait until the shards add up (or --settle-s).
  const int64_t expected = f.accounts * f.initial_balance;
  Totals totals;
  std::vector<std::string> in_doubt;
  const auto settle_end = Clock::now() + std::chrono::seconds(f.settle_s);
  while (true) {
    s = ReadTotals(f, *client, &totals);
    Status d = client->ListInDoubt(&in_doubt);
    if (s.ok() && d.ok() && totals.sum == expected && in_doubt.empty()) break;
    if (Clock::now() >= settle_end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!s.ok()) Log("cannot read the totals: %s", s.ToString());
  const bool ok =
      s.ok() && totals.sum == expected && totals.negative == 0 && totals.accounts == f.accounts;
  Log("%s", "committed " + std::to_string(tally.committed) + ", aborted " +
                std::to_string(tally.aborted) + ", unknown " + std::to_string(tally.unknown) +
                "; total " + std::to_string(totals.sum) + " of " + std::to_string(expected) +
                (ok ? ": invariant ok" : ": INVARIANT VIOLATED"));

  std::vector<double>& lat = tally.latencies_ms;
  const double p50 = Quantile(lat, 0.50);
  const double p99 = Quantile(lat, 0.99);
  std::printf(
      "{\"committed\":%lld,\"aborted\":%lld,\"unknown\":%lld,\"errors\":%lld,\"tps\":%.1f,"
      "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"total_expected\":%lld,\"total_actual\":%lld,"
      "\"accounts\":%lld,\"negative_balances\":%lld,\"in_doubt\":%zu,\"protocol\":\"%s\","
      "\"clients\":%d,\"seconds\":%.1f,\"invariant\":\"%s\"}\n",
      static_cast<long long>(tally.committed), static_cast<long long>(tally.aborted),
      static_cast<long long>(tally.unknown), static_cast<long long>(tally.errors),
      elapsed > 0 && f.duration_s > 0 ? static_cast<double>(tally.committed) / elapsed : 0.0, p50,
      p99, static_cast<long long>(expected), static_cast<long long>(totals.sum),
      static_cast<long long>(totals.accounts), static_cast<long long>(totals.negative),
      in_doubt.size(), f.protocol == Protocol::kThreePhase ? "3pc" : "2pc", f.clients, f.duration_s,
      ok ? "ok" : "violated");
  return ok ? 0 : 3;
}
