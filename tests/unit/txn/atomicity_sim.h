// AtomicitySim: a seeded, single-threaded world of coordinator nodes (ProtocolEngine +
// TxnTable each, over an abstract Raft log with leader changes that keep or lose the old
// leader's uncommitted suffix), simulated participant agents that follow DESIGN §3-§4
// (votes, PRECOMMIT/FENCE rules, self-commit of PRECOMMITTED on timeout, inquiries and
// cooperative termination one peer at a time, as the Python model does), and clients,
// joined by a network that loses, duplicates and reorders every message.
//
// After every step it checks atomicity: no gtid COMMITTED on one branch and ABORTED on
// another; a log COMMIT => no branch ABORTED; a log ABORT => no branch COMMITTED; a client
// told COMMITTED/ABORTED => no branch decided the other way. Then a healed phase checks
// that nothing stays in doubt. Same seed, same run.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "coordinator/txn/engine.h"
#include "coordinator/txn/txn_table.h"

namespace verdict::coordinator::txn::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int participants = 3;
  int steps = 3'000;
  int max_txns = 12;
  bool leader_changes = true;
  double loss = 0.15;
  double duplicate = 0.15;
  bool verbose = false;
};

struct SimResult {
  bool ok = true;
  std::string failure;  // first violation, with the seed
  uint64_t committed = 0, aborted = 0, leader_changes = 0, messages = 0;
  size_t in_doubt_after_heal = 0;
};

SimResult RunAtomicitySim(const SimOptions& options);

}  // namespace verdict::coordinator::txn::sim
