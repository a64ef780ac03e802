// verdict-sim: the deterministic simulator of a Verdict coordinator group.
//
//   verdict-sim --seeds N [--seed S] [--workload decide|txn] [--nodes 3|5] [--steps K] [-v]
//   verdict-sim --self-test [-v]
//   (any option may also come from --config FILE: "key = value" lines)
//
// Runs N seeds from S (default 1). Each seed is one whole simulated run (see
// docs/simulation.md); a violated property prints the seed and makes the exit status
// non-zero. The same seed replays the same run; -v prints its trace.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/sim/self_test.h"
#include "tests/sim/simulation.h"

namespace {

// The message printed if the process dies while running a seed (a PANIC in the code under
// test is a finding too). Formatted before each seed; the handler only write()s it.
char g_fatal_msg[256];
size_t g_fatal_len = 0;

void OnFatalSignal(int sig) {
  if (g_fatal_len > 0) {
    ssize_t ignored = write(STDERR_FILENO, g_fatal_msg, g_fatal_len);
    (void)ignored;
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "verdict-sim: %s\n"
               "usage: verdict-sim --seeds N [--seed S] [--workload decide|txn] [--nodes 3|5]\n"
               "                   [--steps K] [-v]\n"
               "       verdict-sim --self-test [-v]\n"
               "       any option may also come from --config FILE (lines \"seeds = 100\")\n",
               why);
  return 2;
}

bool ParseU64(const char* s, uint64_t* out) {
  if (s == nullptr || *s == '\0') return false;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

// Reads "key = value" lines ('#' starts a comment) as "--key value" arguments; a bare
// "key" is a flag ("verbose", "self-test").
bool ReadConfig(const std::string& path, std::vector<std::string>* args) {
  std::ifstream in(path);
  if (!in) return false;
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  for (std::string line; std::getline(in, line);) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    size_t eq = line.find('=');
    args->push_back("--" + trim(line.substr(0, eq)));
    if (eq != std::string::npos) args->push_back(trim(line.substr(eq + 1)));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace verdict::sim;
  uint64_t seeds = 0, first = 1, nodes = 0, steps = 0;
  bool verbose = false, self_test = false, have_seeds = false;
  WorkloadKind workload = WorkloadKind::kDecide;
  // The config file's options come first, so the command line overrides them.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--config") {
      if (i + 1 >= argc || !ReadConfig(argv[i + 1], &args)) {
        return Usage("--config needs a readable file");
      }
      ++i;
    }
  }
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--config") {
      ++i;
      continue;
    }
    args.push_back(argv[i]);
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const char* val = i + 1 < args.size() ? args[i + 1].c_str() : nullptr;
    if (arg == "--seeds") {
      if (!ParseU64(val, &seeds)) return Usage("--seeds needs a number");
      have_seeds = true;
      ++i;
    } else if (arg == "--seed") {
      if (!ParseU64(val, &first)) return Usage("--seed needs a number");
      ++i;
    } else if (arg == "--nodes") {
      if (!ParseU64(val, &nodes) || (nodes != 3 && nodes != 5)) {
        return Usage("--nodes must be 3 or 5");
      }
      ++i;
    } else if (arg == "--steps") {
      if (!ParseU64(val, &steps) || steps == 0) return Usage("--steps needs a positive number");
      ++i;
    } else if (arg == "--workload") {
      if (val != nullptr && std::string(val) == "decide") {
        workload = WorkloadKind::kDecide;
      } else if (val != nullptr && std::string(val) == "txn") {
        workload = WorkloadKind::kTxn;
      } else {
        return Usage("--workload must be decide or txn");
      }
      ++i;
    } else if (arg == "-v" || arg == "--verbose" || arg == "--v") {
      verbose = true;
    } else if (arg == "--self-test") {
      self_test = true;
    } else {
      return Usage(("unknown argument " + arg).c_str());
    }
  }
  std::signal(SIGABRT, OnFatalSignal);
  std::signal(SIGSEGV, OnFatalSignal);
  std::signal(SIGFPE, OnFatalSignal);
  std::signal(SIGBUS, OnFatalSignal);
  std::signal(SIGILL, OnFatalSignal);

  // The storage logs recoveries of torn tails as warnings: part of the trace, else noise.
  spdlog::set_level(verbose ? spdlog::level::warn : spdlog::level::err);
  spdlog::set_pattern("[%l] %v");  // no wall-clock stamps: a replayed trace is identical
  if (self_test) return RunSelfTest(verbose) == 0 ? 0 : 1;
  if (!have_seeds) {
    if (!verbose) return Usage("--seeds is required");
    seeds = 1;  // "--seed S -v" replays one seed
  }

  std::string replay_flags;
  if (workload == WorkloadKind::kTxn) replay_flags += " --workload txn";
  if (nodes != 0) replay_flags += " --nodes " + std::to_string(nodes);
  if (steps != 0) replay_flags += " --steps " + std::to_string(steps);
  auto wall_start = std::chrono::steady_clock::now();
  uint64_t failed = 0, events = 0, crashes = 0, partitions = 0, transfers = 0;
  uint64_t committed = 0, requests = 0, leaders = 0, delivered = 0, lost = 0;
  uint64_t conf_changes = 0, installs = 0, compactions = 0, torn = 0, lost_readys = 0, in_call = 0;
  double virtual_seconds = 0, max_heal = 0;
  TxnStats tx;
  uint64_t group_crashes = 0;
  uint64_t max_heal_seed = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    std::string replay = "verdict-sim --seeds 1 --seed " + std::to_string(seed) + replay_flags;
    int n = std::snprintf(g_fatal_msg, sizeof(g_fatal_msg),
                          "\nverdict-sim: FAIL seed %llu: the process died; replay: %s -v\n",
                          static_cast<unsigned long long>(seed), replay.c_str());
    g_fatal_len = n > 0 ? std::min(static_cast<size_t>(n), sizeof(g_fatal_msg) - 1) : 0;
    SimOptions options;
    options.seed = seed;
    options.nodes = static_cast<int>(nodes);
    options.steps = steps;
    options.verbose = verbose;
    options.workload = workload;
    SimResult r = Simulation(options).Run();
    events += r.events;
    crashes += r.crashes;
    partitions += r.partitions;
    transfers += r.transfers;
    conf_changes += r.conf_changes;
    committed += r.committed;
    requests += r.requests;
    leaders += r.terms_with_leader;
    delivered += r.net.delivered;
    lost += r.net.dropped + r.net.cut;
    installs += r.node_stats.snapshots_installed;
    compactions += r.node_stats.compactions;
    torn += r.node_stats.torn_files;
    lost_readys += r.node_stats.lost_readys;
    in_call += r.node_stats.crashes_in_call;
    virtual_seconds += static_cast<double>(r.virtual_time) / kSeconds;
    group_crashes += r.group_crashes;
    tx.transactions += r.txn.transactions;
    tx.committed += r.txn.committed;
    tx.aborted += r.txn.aborted;
    tx.unknown_given_up += r.txn.unknown_given_up;
    tx.branches_committed += r.txn.branches_committed;
    tx.branches_aborted += r.txn.branches_aborted;
    tx.self_commits += r.txn.self_commits;
    tx.terminations_commit += r.txn.terminations_commit;
    tx.terminations_abort += r.txn.terminations_abort;
    tx.fenced_by_peers += r.txn.fenced_by_peers;
    tx.inquiries += r.txn.inquiries;
    tx.agent_crashes += r.txn.agent_crashes;
    tx.agent_partitions += r.txn.agent_partitions;
    tx.group_isolations += r.txn.group_isolations;
    if (static_cast<double>(r.heal_time) / kSeconds > max_heal) {
      max_heal = static_cast<double>(r.heal_time) / kSeconds;
      max_heal_seed = seed;
    }
    if (!r.ok) {
      ++failed;
      std::printf("FAIL seed %llu (%d nodes): %s\n  params: %s\n  replay: %s -v\n",
                  static_cast<unsigned long long>(seed), r.nodes, r.failure.c_str(),
                  r.params.c_str(), replay.c_str());
      std::fflush(stdout);
    } else if (verbose) {
      std::printf("ok seed %llu (%d nodes): %llu events, %llu committed, %zu gtids\n",
                  static_cast<unsigned long long>(seed), r.nodes,
                  static_cast<unsigned long long>(r.events),
                  static_cast<unsigned long long>(r.committed), r.gtids);
    }
  }
  double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("verdict-sim: seeds %llu..%llu: %llu passed, %llu failed\n", u(first),
              u(first + seeds - 1), u(seeds - failed), u(failed));
  std::printf(
      "  simulated: %llu events, %.0f virtual s, %llu leaders, %llu entries committed, "
      "%llu client requests\n",
      u(events), virtual_seconds, u(leaders), u(committed), u(requests));
  std::printf(
      "  faults: %llu crashes (%llu inside a storage call, %llu unsynced Readys lost, %llu "
      "torn files), %llu partitions, %llu transfers, %llu membership changes, %llu msgs lost "
      "of %llu delivered\n",
      u(crashes), u(in_call), u(lost_readys), u(torn), u(partitions), u(transfers), u(conf_changes),
      u(lost), u(delivered));
  std::printf(
      "  snapshots: %llu compactions, %llu installed from a leader; slowest heal %.1f "
      "virtual s (seed %llu)\n",
      u(compactions), u(installs), max_heal, u(max_heal_seed));
  if (workload == WorkloadKind::kTxn) {
    std::printf(
        "  transactions: %llu begun, clients told %llu COMMITTED / %llu ABORTED (%llu gave up "
        "on UNKNOWN); branches %llu committed / %llu aborted\n",
        u(tx.transactions), u(tx.committed), u(tx.aborted), u(tx.unknown_given_up),
        u(tx.branches_committed), u(tx.branches_aborted));
    std::printf(
        "  participants: %llu inquiries, %llu self-commits, terminations %llu commit / %llu "
        "abort, %llu fenced by peers; %llu crashes, %llu partitions; coordinator group: %llu "
        "isolations, %llu total crashes\n",
        u(tx.inquiries), u(tx.self_commits), u(tx.terminations_commit), u(tx.terminations_abort),
        u(tx.fenced_by_peers), u(tx.agent_crashes), u(tx.agent_partitions), u(tx.group_isolations),
        u(group_crashes));
  }
  std::printf("  wall: %.1f s, %.1f seeds/s\n", wall,
              wall > 0 ? static_cast<double>(seeds) / wall : 0.0);
  return failed == 0 ? 0 : 1;
}
