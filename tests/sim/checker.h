// Checker: the global observer of one simulated run. It sees every node's role and term
// after every event, every entry handed out for persisting, every entry and snapshot a
// node applies, and records the first violated property:
//   election safety     at most one leader per term over the whole run;
//   entry identity      an (index, term) pair names one entry content, on every node;
//   log matching        two logs with the same term at an index agree up to it;
//   leader completeness an entry committed before term t is in the log of t's leader;
//   state-machine safety every node applies the same entry at each index;
//   first decision wins a gtid's decision is the first DECIDE applied for it, everywhere;
//                       more generally every node's TxnTable gives the same ApplyResult for
//                       each entry and serializes to the reference table at its index.
// Not thread-safe (the simulator is single-threaded).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/raft/raft.h"
#include "coordinator/txn/txn_table.h"
#include "tests/sim/trace.h"

namespace verdict::sim {

namespace raft = ::verdict::coordinator::raft;
namespace txn = ::verdict::coordinator::txn;

// The first decision applied for a gtid.
struct FirstDecision {
  txn::Outcome outcome = txn::Outcome::kAbort;
  raft::Index index = 0;
};

class Checker {
 public:
  explicit Checker(Trace* trace) : trace_(trace) {}
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  bool failed() const { return !failure_.empty(); }
  // The first violation, as "property: details".
  const std::string& failure() const { return failure_; }
  __attribute__((format(printf, 2, 3))) void Fail(const char* fmt, ...);

  // ---- observations ----

  // After every event a live node handled: election safety, and leader completeness the
  // first time `r` is seen leading its term.
  void ObserveNode(const raft::Raft& r);
  // Election safety only (also used by the self-test to feed a forged observation).
  void ObserveLeader(raft::NodeId id, raft::Term term);
  // Log matching between the in-memory logs of two live nodes.
  void CheckLogMatching(const raft::Raft& a, const raft::Raft& b);
  // Every entry a node hands to storage.
  void OnEntryWritten(raft::NodeId node, const raft::Entry& e);
  // The content ever written at (index, term), or nullptr.
  const raft::Entry* Written(raft::Index index, raft::Term term) const;
  // A node applied `e` (the caller has checked it is its applied index + 1) to its
  // TxnTable, which answered `result`. The first node to apply an index also applies it to
  // the reference table; every node's result must equal the reference's.
  void OnApply(raft::NodeId node, const raft::Entry& e, const txn::ApplyResult& result);
  // A node's table now holds the state machine at `applied` (snapshot restored, or the end
  // of the run): it must serialize exactly as the reference table at that index.
  void CheckTable(raft::NodeId node, raft::Index applied, const txn::TxnTable& table,
                  const char* when);

  // ---- reference state ----

  // Highest index applied by any node (the committed prefix the checker knows).
  raft::Index committed_index() const { return committed_.size(); }
  const raft::Entry& committed(raft::Index index) const { return committed_[index - 1].entry; }
  // The first decision applied for `gtid`, or nullptr.
  const FirstDecision* Decided(std::string_view gtid) const;
  const std::map<std::string, FirstDecision, std::less<>>& decisions() const { return first_; }
  // The reference table: the committed prefix applied once.
  const txn::TxnTable& reference() const { return ref_; }
  raft::Term max_term() const { return max_term_; }
  size_t leaders_seen() const { return leaders_.size(); }

 private:
  struct Committed {
    raft::Entry entry;
    raft::NodeId first_node;  // the node that applied it first
    // Upper bound on the term in which it was committed: the highest term any node had
    // when it was first applied. Leaders of later terms must hold it.
    raft::Term term_bound;
  };

  void CheckLeaderCompleteness(const raft::Raft& r);
  // The reference table's serialization at `index` (<= committed_index()).
  std::string ReferenceAt(raft::Index index) const;
  static constexpr raft::Index kCheckpointEvery = 32;

  Trace* trace_;
  std::string failure_;
  std::map<raft::Term, raft::NodeId> leaders_;
  raft::Term max_term_ = 0;
  std::map<std::pair<raft::Index, raft::Term>, raft::Entry> written_;
  std::vector<Committed> committed_;  // committed_[i - 1] is index i
  std::map<std::string, FirstDecision, std::less<>> first_;
  txn::TxnTable ref_;
  std::vector<txn::ApplyResult> ref_results_;       // [i - 1]: the result at index i
  std::map<raft::Index, std::string> checkpoints_;  // ref_ serialized every kCheckpointEvery
};

std::string Describe(const raft::Entry& e);

}  // namespace verdict::sim
