#include "tests/sim/checker.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

namespace verdict::sim {

namespace {
using raft::Entry;
using raft::Index;
using raft::NodeId;
using raft::Term;

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }
}  // namespace

std::string Describe(const Entry& e) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "(i%llu t%llu ", U(e.index), U(e.term));
  std::string out = buf;
  if (e.type == raft::EntryType::kConfChange) {
    raft::ConfChange cc;
    if (raft::DecodeConfChange(e.data, &cc)) {
      out += cc.kind == raft::ConfChange::Kind::kAddVoter ? "add n" : "remove n";
      out += std::to_string(cc.node);
    } else {
      out += "conf?";
    }
  } else if (e.data.empty()) {
    out += "noop";
  } else {
    txn::DecideCommand cmd;
    if (txn::DecodeDecide(e.data, &cmd).ok()) {
      out += cmd.gtid + "=" + txn::OutcomeName(cmd.outcome);
    } else {
      out += "garbage[" + std::to_string(e.data.size()) + "]";
    }
  }
  return out + ")";
}

void Checker::Fail(const char* fmt, ...) {
  if (!failure_.empty()) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  failure_ = buf;
  trace_->Log("VIOLATION %s", buf);
}

void Checker::ObserveLeader(NodeId id, Term term) {
  auto [it, inserted] = leaders_.emplace(term, id);
  if (!inserted && it->second != id) {
    Fail("election safety: n%llu and n%llu both leader in term %llu", U(it->second), U(id),
         U(term));
  }
}

void Checker::ObserveNode(const raft::Raft& r) {
  max_term_ = std::max(max_term_, r.term());
  if (r.role() != raft::Role::kLeader) return;
  bool first_sighting = leaders_.count(r.term()) == 0;
  ObserveLeader(r.id(), r.term());
  if (first_sighting) CheckLeaderCompleteness(r);
}

void Checker::CheckLeaderCompleteness(const raft::Raft& r) {
  for (Index i = committed_.size(); i >= 1; --i) {
    const Committed& c = committed_[i - 1];
    if (c.term_bound >= r.term()) continue;
    // Everything at or below i was committed before this leader's term too.
    if (r.last_index() < i) {
      Fail(
          "leader completeness: n%llu leads term %llu with last index %llu, but %s was "
          "committed (applied by n%llu) before that term",
          U(r.id()), U(r.term()), U(r.last_index()), Describe(c.entry).c_str(), U(c.first_node));
      return;
    }
    for (Index j = i; j >= 1; --j) {
      std::optional<Term> t = r.TermAt(j);
      if (!t) break;  // compacted into the leader's snapshot
      if (*t != committed_[j - 1].entry.term) {
        Fail(
            "leader completeness: n%llu leads term %llu with term %llu at index %llu, but "
            "%s was committed before that term",
            U(r.id()), U(r.term()), U(*t), U(j), Describe(committed_[j - 1].entry).c_str());
        return;
      }
    }
    return;
  }
}

void Checker::CheckLogMatching(const raft::Raft& a, const raft::Raft& b) {
  // Overlap of the two in-memory logs; a snapshot's own index reports its term.
  Index lo = std::max(a.first_index(), b.first_index());
  if (lo > 1) --lo;
  Index hi = std::min(a.last_index(), b.last_index());
  Index match = 0;
  for (Index i = hi; i >= lo && i >= 1; --i) {
    std::optional<Term> ta = a.TermAt(i), tb = b.TermAt(i);
    if (ta && tb && *ta == *tb) {
      match = i;
      break;
    }
  }
  if (match == 0) return;
  for (Index j = match; j >= lo && j >= 1; --j) {
    std::optional<Term> ta = a.TermAt(j), tb = b.TermAt(j);
    if (!ta || !tb) break;
    if (*ta != *tb) {
      Fail(
          "log matching: n%llu and n%llu agree on term %llu at index %llu but differ at "
          "index %llu (terms %llu vs %llu)",
          U(a.id()), U(b.id()), U(*a.TermAt(match)), U(match), U(j), U(*ta), U(*tb));
      return;
    }
  }
}

void Checker::OnEntryWritten(NodeId node, const Entry& e) {
  auto [it, inserted] = written_.emplace(std::make_pair(e.index, e.term), e);
  if (!inserted && !(it->second == e)) {
    Fail("log matching: n%llu writes %s but %s was written before at the same index and term",
         U(node), Describe(e).c_str(), Describe(it->second).c_str());
  }
}

const Entry* Checker::Written(Index index, Term term) const {
  auto it = written_.find({index, term});
  return it == written_.end() ? nullptr : &it->second;
}

void Checker::OnApply(NodeId node, const Entry& e, const txn::DecideCommand* cmd,
                      const txn::DecisionRecord* rec) {
  if (e.index > committed_.size() + 1) {
    Fail("state-machine safety: n%llu applies %s but no node has applied index %llu", U(node),
         Describe(e).c_str(), U(committed_.size() + 1));
    return;
  }
  if (e.index == committed_.size() + 1) {
    committed_.push_back(Committed{e, node, max_term_});
    if (cmd != nullptr && first_.count(cmd->gtid) == 0) {
      first_.emplace(cmd->gtid, txn::DecisionRecord{cmd->outcome, cmd->participants, e.index});
    }
  } else {
    const Committed& c = committed_[e.index - 1];
    if (!(c.entry == e)) {
      Fail("state-machine safety: n%llu applies %s at index %llu, n%llu applied %s", U(node),
           Describe(e).c_str(), U(e.index), U(c.first_node), Describe(c.entry).c_str());
      return;
    }
  }
  if (rec != nullptr && cmd != nullptr) {
    const txn::DecisionRecord* want = Decided(cmd->gtid);
    if (want == nullptr || !(*want == *rec)) {
      Fail(
          "first decision wins: n%llu holds %s@%llu for %s after applying index %llu; the "
          "first decision applied was %s@%llu",
          U(node), txn::OutcomeName(rec->outcome), U(rec->index), cmd->gtid.c_str(), U(e.index),
          want ? txn::OutcomeName(want->outcome) : "none", want ? U(want->index) : 0ull);
    }
  }
}

void Checker::CheckRegister(NodeId node, Index applied, const txn::DecisionRegister& reg,
                            const char* when) {
  size_t expected = 0;
  for (const auto& [gtid, want] : first_) {
    if (want.index > applied) continue;
    ++expected;
    const txn::DecisionRecord* got = reg.Find(gtid);
    if (got == nullptr || !(*got == want)) {
      Fail(
          "first decision wins: %s n%llu (applied %llu) holds %s@%llu for %s; the first "
          "decision applied was %s@%llu",
          when, U(node), U(applied), got ? txn::OutcomeName(got->outcome) : "nothing",
          got ? U(got->index) : 0ull, gtid.c_str(), txn::OutcomeName(want.outcome), U(want.index));
      return;
    }
  }
  if (reg.size() != expected) {
    Fail("state-machine safety: %s n%llu (applied %llu) holds %zu decisions, expected %zu", when,
         U(node), U(applied), reg.size(), expected);
  }
}

const txn::DecisionRecord* Checker::Decided(std::string_view gtid) const {
  auto it = first_.find(gtid);
  return it == first_.end() ? nullptr : &it->second;
}

}  // namespace verdict::sim
