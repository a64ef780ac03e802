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
    txn::TxnCommand cmd;
    if (!txn::DecodeCommand(e.data, &cmd).ok()) {
      out += "garbage[" + std::to_string(e.data.size()) + "]";
    } else if (const auto* d = std::get_if<txn::DecideCmd>(&cmd)) {
      out += d->gtid + "=" + txn::OutcomeName(d->outcome) + "/" + txn::DecideBasisName(d->basis);
    } else if (const auto* p = std::get_if<txn::PrecommitCmd>(&cmd)) {
      out += "PRECOMMIT " + p->gtid;
    } else if (const auto* end = std::get_if<txn::EndCmd>(&cmd)) {
      out += "END " + std::to_string(end->gtids.size());
    } else {
      out += "REGISTER " + std::get<txn::RegisterParticipantCmd>(cmd).name;
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

namespace {
bool SameResult(const txn::ApplyResult& a, const txn::ApplyResult& b) {
  return a.code == b.code && a.index == b.index && a.decision == b.decision &&
         a.intent == b.intent && a.forgotten == b.forgotten;
}
}  // namespace

void Checker::OnApply(NodeId node, const Entry& e, const txn::ApplyResult& result) {
  if (e.index > committed_.size() + 1) {
    Fail("state-machine safety: n%llu applies %s but no node has applied index %llu", U(node),
         Describe(e).c_str(), U(committed_.size() + 1));
    return;
  }
  if (e.index == committed_.size() + 1) {
    if (committed_.empty()) checkpoints_[0] = ref_.Serialize();
    committed_.push_back(Committed{e, node, max_term_});
    txn::ApplyResult r;
    if (!ref_.Apply(e, &r).ok()) {
      Fail("state-machine safety: n%llu applies %s, which is not a command", U(node),
           Describe(e).c_str());
      return;
    }
    ref_results_.push_back(r);
    if (e.index % kCheckpointEvery == 0) checkpoints_[e.index] = ref_.Serialize();
    if (r.code == txn::ApplyResult::Code::kDecided) {
      txn::TxnCommand cmd;
      if (txn::DecodeCommand(e.data, &cmd).ok()) {
        if (const auto* d = std::get_if<txn::DecideCmd>(&cmd)) {
          first_.emplace(d->gtid, FirstDecision{*r.decision, e.index});
        }
      }
    }
  } else {
    const Committed& c = committed_[e.index - 1];
    if (!(c.entry == e)) {
      Fail("state-machine safety: n%llu applies %s at index %llu, n%llu applied %s", U(node),
           Describe(e).c_str(), U(e.index), U(c.first_node), Describe(c.entry).c_str());
      return;
    }
  }
  const txn::ApplyResult& want = ref_results_[e.index - 1];
  if (!SameResult(result, want)) {
    auto name = [](const std::optional<txn::Outcome>& o) {
      return o ? txn::OutcomeName(*o) : "none";
    };
    Fail(
        "%s: n%llu applying %s got %s (decision %s); the reference table got %s "
        "(decision %s)",
        result.decision != want.decision ? "first decision wins" : "state-machine safety", U(node),
        Describe(e).c_str(), txn::ApplyCodeName(result.code), name(result.decision),
        txn::ApplyCodeName(want.code), name(want.decision));
  }
}

std::string Checker::ReferenceAt(Index index) const {
  if (index == committed_.size()) return ref_.Serialize();
  auto it = checkpoints_.upper_bound(index);
  --it;  // checkpoints_[0] exists once anything was applied
  txn::TxnTable t;
  if (!t.Restore(it->second).ok()) return "";
  for (Index i = it->first + 1; i <= index; ++i) {
    txn::ApplyResult r;
    if (!t.Apply(committed_[i - 1].entry, &r).ok()) return "";
  }
  return t.Serialize();
}

void Checker::CheckTable(NodeId node, Index applied, const txn::TxnTable& table, const char* when) {
  if (applied > committed_.size()) {
    Fail("state-machine safety: %s n%llu holds a table at %llu, beyond every applied index %llu",
         when, U(node), U(applied), U(committed_.size()));
    return;
  }
  if (applied == 0 && committed_.empty()) return;
  if (table.Serialize() != ReferenceAt(applied)) {
    Fail(
        "state-machine safety: %s n%llu's table at index %llu differs from the reference "
        "table (%zu vs %zu records)",
        when, U(node), U(applied), table.records().size(), ref_.records().size());
  }
}

const FirstDecision* Checker::Decided(std::string_view gtid) const {
  auto it = first_.find(gtid);
  return it == first_.end() ? nullptr : &it->second;
}

}  // namespace verdict::sim
