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

// Benchmarks that DESIGN §7 names; only "log" exists today.
const std::vector<std::string> kKnown = {"log", "sqlite_2pc", "sqlite_3pc", "pg_2pc", "raw_2pc"};
const std::vector<std::string> kBuilt = {"log"};

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

bool BenchOptions::Selected(const std::string& name) const {
  return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
}

Status ParseBenchOptions(int argc, char** argv, BenchOptions* options, std::string* usage) {
  std::string only, concurrency, etcd_load, config;
  bool no_anchor = false;
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
    ("only", po::value(&only), "comma-separated benchmarks to run (today: log)")
    ("bin-dir", po::value(&options->bin_dir),
     "directory holding verdict-coordinator (default: this binary's directory)")
    ("concurrency", po::value(&concurrency)->default_value("1,16,64,256"),
     "closed-loop proposer counts, comma-separated")
    ("duration", po::value<double>(), "measured seconds per level (default 10, --quick 3)")
    ("warmup", po::value<double>(), "unmeasured seconds before each level (default 1, --quick 0.5)")
    ("paced-rate", po::value(&options->paced_rate)->default_value(1000),
     "offered decisions/s of the open-loop latency point")
    ("paced-threads", po::value(&options->paced_threads)->default_value(16),
     "senders sharing the paced schedule")
    ("proposers-per-call", po::value(&options->proposers_per_call)->default_value(1),
     "closed loop: proposers whose outstanding decisions share one DecideBatch call "
     "(1 = one Decide RPC per decision)")
    ("no-anchor", po::bool_switch(&no_anchor), "skip the etcd anchor")
    ("etcd-load", po::value(&etcd_load),
     "etcdctl check perf load for the anchor: s, m, l, xl (default l, --quick m)")
    ("keep-data", po::bool_switch(&options->keep_data),
     "keep the coordinators' temp directory (data, logs) after the run");
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
  options->concurrency.clear();
  for (const auto& item : SplitCommas(concurrency)) {
    int c = 0;
    try {
      size_t used = 0;
      c = std::stoi(item, &used);
      if (used != item.size()) c = 0;
    } catch (const std::exception&) {
    }
    if (c < 1 || c > 4096) {
      return Status::InvalidArgument("--concurrency: '" + item + "' is not in 1..4096");
    }
    options->concurrency.push_back(c);
  }
  if (options->concurrency.empty()) return Status::InvalidArgument("--concurrency is empty");
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
