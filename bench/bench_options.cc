#include "bench/bench_options.h"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace verdict::bench {

namespace po = boost::program_options;

namespace {

// Benchmarks that DESIGN §7 names, plus the participant agent's (issue 3). "agent" is
// agent_sqlite + agent_pg; "all" is everything built.
const std::vector<std::string> kKnown = {"all", "log",    "agent",  "agent_sqlite", "agent_pg",
                                         "txn", "txn_pg", "pg_2pc", "raw_2pc"};
const std::vector<std::string> kBuilt = {"all",      "log", "agent", "agent_sqlite",
                                         "agent_pg", "txn", "txn_pg"};

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Parses a comma-separated list of levels, each in 1..max.
Status ParseLevels(const char* flag, const std::string& text, int max, std::vector<int>* out) {
  out->clear();
  for (const auto& item : SplitCommas(text)) {
    int c = 0;
    try {
      size_t used = 0;
      c = std::stoi(item, &used);
      if (used != item.size()) c = 0;
    } catch (const std::exception&) {
    }
    if (c < 1 || c > max) {
      return Status::InvalidArgument(std::string(flag) + ": '" + item + "' is not in 1.." +
                                     std::to_string(max));
    }
    out->push_back(c);
  }
  if (out->empty()) return Status::InvalidArgument(std::string(flag) + " is empty");
  return Status::OK();
}

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

bool BenchOptions::Selected(const std::string& name) const {
  auto has = [&](const char* n) { return std::find(only.begin(), only.end(), n) != only.end(); };
  if (only.empty() || has("all") || has(name.c_str())) return true;
  return name.rfind("agent_", 0) == 0 && has("agent");
}

Status ParseBenchOptions(int argc, char** argv, BenchOptions* options, std::string* usage) {
  std::string only, concurrency, agent_clients, agent_transport, agent_driver, txn_clients,
      etcd_load, config;
  bool no_anchor = false, no_pg_anchor = false;
  std::optional<double> duration, warmup;
  po::options_description desc(
      "verdict-bench: Verdict's benchmarks; the last stdout line is one JSON object");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help")
    ("config", po::value(&config), "read options from FILE (key = value lines; the command "
     "line wins)")
    ("quick", po::bool_switch(&options->quick),
     "short runs (3 s per level, etcd load m): a few minutes in all")
    ("only", po::value(&only), "comma-separated benchmarks to run: log, agent (= agent_sqlite,"
     "agent_pg), agent_sqlite, agent_pg, txn (end-to-end 2PC and 3PC over SQLite agents), txn_pg "
     "(the same over PostgreSQL agents), all (default: all)")
    ("bin-dir", po::value(&options->bin_dir),
     "directory holding verdict-coordinator and verdict-participant (default: this binary's "
     "directory)")
    ("concurrency", po::value(&concurrency)->default_value("1,16,64,256"),
     "closed-loop proposer counts, comma-separated")
    ("agent-clients", po::value(&agent_clients)->default_value("1,8,32"),
     "agent benchmark: concurrent branches per agent, comma-separated")
    ("agent-transport", po::value(&agent_transport)->default_value("tcp"),
     "agent benchmark: how clients reach the agents, tcp (loopback) or unix (the agents' "
     "--local-socket, as pgbench reaches the server in the anchor)")
    ("agent-driver", po::value(&agent_driver)->default_value("mux"),
     "agent benchmark: how the clients run, mux (all of one agent's on one thread and epoll "
     "loop, as pgbench runs its clients) or threads (a thread per client, blocking calls)")
    ("txn-clients", po::value(&txn_clients)->default_value("1,16,64"),
     "transaction benchmark: concurrent clients, comma-separated")
    ("duration", po::value<double>(), "measured seconds per level (default 10, --quick 3)")
    ("warmup", po::value<double>(), "unmeasured seconds before each level (default 1, --quick 0.5)")
    ("paced-rate", po::value(&options->paced_rate)->default_value(1000),
     "offered decisions/s of the open-loop latency point")
    ("paced-threads", po::value(&options->paced_threads)->default_value(16),
     "senders sharing the paced schedule")
    ("proposers-per-call", po::value(&options->proposers_per_call)->default_value(1),
     "closed loop: proposers whose outstanding decisions share one DecideBatch call "
     "(1 = one Decide RPC per decision)")
    ("no-anchor", po::bool_switch(&no_anchor), "skip the etcd and pgbench anchors")
    ("no-pg-anchor", po::bool_switch(&no_pg_anchor), "skip the pgbench anchor only")
    ("etcd-load", po::value(&etcd_load),
     "etcdctl check perf load for the anchor: s, m, l, xl (default l, --quick m)")
    ("keep-data", po::bool_switch(&options->keep_data),
     "keep the temp directories of the coordinators, agents and PostgreSQL server after the "
     "run");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config") && !vm.count("help")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) return Status::InvalidArgument("cannot read --config file " + path);
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Status::InvalidArgument(e.what());
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << desc;
    *usage = text.str();
    options->help = true;
    return Status::OK();
  }
  options->anchor = !no_anchor;
  options->pg_anchor = !no_anchor && !no_pg_anchor;
  options->duration_s =
      vm.count("duration") ? vm["duration"].as<double>() : (options->quick ? 3.0 : 10.0);
  options->warmup_s = vm.count("warmup") ? vm["warmup"].as<double>() : (options->quick ? 0.5 : 1.0);
  options->etcd_load = !etcd_load.empty() ? etcd_load : (options->quick ? "m" : "l");
  if (options->bin_dir.empty()) options->bin_dir = SelfDir();

  options->only = SplitCommas(only);
  for (const auto& name : options->only) {
    if (std::find(kKnown.begin(), kKnown.end(), name) == kKnown.end()) {
      return Status::InvalidArgument("--only: unknown benchmark '" + name + "'");
    }
    if (std::find(kBuilt.begin(), kBuilt.end(), name) == kBuilt.end()) {
      return Status::InvalidArgument("--only: benchmark '" + name +
                                     "' does not exist yet (its subsystem is not built)");
    }
  }
  VERDICT_RETURN_IF_ERROR(ParseLevels("--concurrency", concurrency, 4096, &options->concurrency));
  // Each PostgreSQL agent holds at most 64 branch connections (its pool).
  VERDICT_RETURN_IF_ERROR(
      ParseLevels("--agent-clients", agent_clients, 64, &options->agent_clients));
  if (agent_transport != "tcp" && agent_transport != "unix") {
    return Status::InvalidArgument("--agent-transport must be tcp or unix, not '" +
                                   agent_transport + "'");
  }
  options->agent_local_socket = agent_transport == "unix";
  if (agent_driver != "mux" && agent_driver != "threads") {
    return Status::InvalidArgument("--agent-driver must be mux or threads, not '" + agent_driver +
                                   "'");
  }
  options->agent_threads_driver = agent_driver == "threads";
  VERDICT_RETURN_IF_ERROR(ParseLevels("--txn-clients", txn_clients, 256, &options->txn_clients));
  if (!(options->duration_s > 0)) return Status::InvalidArgument("--duration must be > 0");
  if (!(options->warmup_s >= 0)) return Status::InvalidArgument("--warmup must be >= 0");
  if (!(options->paced_rate > 0)) return Status::InvalidArgument("--paced-rate must be > 0");
  if (options->paced_threads < 1) return Status::InvalidArgument("--paced-threads must be >= 1");
  if (options->proposers_per_call < 1 || options->proposers_per_call > 1024) {
    return Status::InvalidArgument("--proposers-per-call must be in 1..1024");
  }
  const std::vector<std::string> loads = {"s", "m", "l", "xl"};
  if (std::find(loads.begin(), loads.end(), options->etcd_load) == loads.end()) {
    return Status::InvalidArgument("--etcd-load must be s, m, l or xl");
  }
  return Status::OK();
}

}  // namespace verdict::bench
