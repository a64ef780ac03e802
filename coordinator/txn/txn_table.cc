#include "coordinator/txn/txn_table.h"

#include <algorithm>
#include <iterator>

#include "common/coding.h"

namespace verdict::coordinator::txn {

namespace {

constexpr uint32_t kLegacySnapshotVersion = 1;  // DecisionRegister::Serialize
constexpr uint32_t kSnapshotVersion = 2;

constexpr uint8_t kFlagPrecommit = 1;
constexpr uint8_t kFlagDecided = 2;
constexpr uint8_t kFlagEnded = 4;
constexpr uint8_t kFlagHeuristic = 8;

void PutBranches(std::string* dst, const std::vector<BranchRef>& list) {
  PutVarint64(dst, list.size());
  for (const BranchRef& b : list) {
    PutLengthPrefixed(dst, b.participant);
    PutLengthPrefixed(dst, b.branch);
  }
}

bool GetString(std::string_view* in, std::string* out) {
  std::string_view s;
  if (!GetLengthPrefixed(in, &s)) return false;
  *out = std::string(s);
  return true;
}

bool GetBranches(std::string_view* in, std::vector<BranchRef>* out) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size() / 2) return false;
  out->resize(n);
  for (BranchRef& b : *out) {
    if (!GetString(in, &b.participant) || !GetString(in, &b.branch)) return false;
  }
  return true;
}

bool GetByte(std::string_view* in, uint8_t* b) {
  if (in->empty()) return false;
  *b = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  return true;
}

}  // namespace

const char* ApplyCodeName(ApplyResult::Code c) {
  using C = ApplyResult::Code;
  switch (c) {
    case C::kNoop:
      return "noop";
    case C::kPrecommitAccepted:
      return "precommit-accepted";
    case C::kPrecommitRejected:
      return "precommit-rejected";
    case C::kDecided:
      return "decided";
    case C::kAlreadyDecided:
      return "already-decided";
    case C::kDecideRejected:
      return "decide-rejected";
    case C::kEnded:
      return "ended";
    case C::kRegistered:
      return "registered";
  }
  return "?";
}

const char* GtidStateName(GtidState s) {
  switch (s) {
    case GtidState::kUnknown:
      return "unknown";
    case GtidState::kIntent:
      return "precommit-intent";
    case GtidState::kDecided:
      return "decided";
    case GtidState::kEndedCommit:
      return "ended-commit";
    case GtidState::kBeyondMemory:
      return "beyond-memory";
  }
  return "?";
}

TxnTable::TxnTable(Options options) : options_(options) {
  if (options_.max_commit_tombstone_ranges == 0) options_.max_commit_tombstone_ranges = 1;
}

Status TxnTable::Apply(const raft::Entry& entry, ApplyResult* result) {
  *result = ApplyResult{};
  result->index = entry.index;
  result->term = entry.term;
  if (entry.type != raft::EntryType::kNormal || entry.data.empty()) {
    applied_index_ = entry.index;
    return Status::OK();
  }
  TxnCommand cmd;
  Status s = DecodeCommand(entry.data, &cmd);
  if (!s.ok()) {
    return Status::Corruption("entry " + std::to_string(entry.index) + ": " + s.message());
  }
  *result = ApplyCommand(cmd, entry.index, entry.term);
  return Status::OK();
}

ApplyResult TxnTable::ApplyCommand(const TxnCommand& cmd, uint64_t index, uint64_t term) {
  ApplyResult r;
  if (const auto* p = std::get_if<PrecommitCmd>(&cmd)) {
    r = ApplyPrecommit(*p, index);
  } else if (const auto* d = std::get_if<DecideCmd>(&cmd)) {
    r = ApplyDecide(*d, index);
  } else if (const auto* e = std::get_if<EndCmd>(&cmd)) {
    r = ApplyEnd(*e);
  } else {
    const auto& reg = std::get<RegisterParticipantCmd>(cmd);
    participants_[reg.name] = ParticipantInfo{reg.address, reg.backend, index};
    r.code = ApplyResult::Code::kRegistered;
  }
  r.index = index;
  r.term = term;
  applied_index_ = index;
  return r;
}

ApplyResult TxnTable::ApplyPrecommit(const PrecommitCmd& c, uint64_t index) {
  ApplyResult r;
  auto it = records_.find(c.gtid);
  if (it != records_.end()) {
    if (it->second.decision) {
      // PRECOMMIT is an intent, not a decision: too late once a decision exists.
      ++counters_.precommits_rejected;
      r.code = ApplyResult::Code::kPrecommitRejected;
      r.decision = it->second.decision;
      return r;
    }
    r.code = ApplyResult::Code::kPrecommitAccepted;  // repeated intent
    r.intent = true;
    return r;
  }
  Gtid g;
  if (ParseGtid(c.gtid, &g) && IsEndedCommit(g)) {
    ++counters_.precommits_rejected;
    r.code = ApplyResult::Code::kPrecommitRejected;
    r.decision = Outcome::kCommit;
    return r;
  }
  TxnRecord rec;
  rec.precommit = true;
  rec.precommit_index = index;
  rec.participants = c.participants;
  records_.emplace(c.gtid, std::move(rec));
  r.code = ApplyResult::Code::kPrecommitAccepted;
  r.intent = true;
  return r;
}

ApplyResult TxnTable::ApplyDecide(const DecideCmd& c, uint64_t index) {
  ApplyResult r;
  auto it = records_.find(c.gtid);
  if (it == records_.end()) {
    Gtid g;
    if (ParseGtid(c.gtid, &g) && IsEndedCommit(g)) {
      // First decision wins, even after END: an ended COMMIT stays COMMIT.
      if (c.outcome != Outcome::kCommit) ++counters_.overridden;
      r.code = ApplyResult::Code::kAlreadyDecided;
      r.decision = Outcome::kCommit;
      return r;
    }
    it = records_.emplace(c.gtid, TxnRecord{}).first;
  } else if (it->second.decision) {
    if (*it->second.decision != c.outcome) ++counters_.overridden;
    r.code = ApplyResult::Code::kAlreadyDecided;
    r.decision = it->second.decision;
    return r;
  } else if (c.outcome == Outcome::kAbort && c.basis != DecideBasis::kFenced &&
             c.basis != DecideBasis::kHeuristic) {
    // 3PC (DESIGN §4.3): after PRECOMMIT is applied, a branch may be PRECOMMITTED and commit
    // on its own; ABORT needs every branch fenced. A presumed abort must not win here.
    ++counters_.decides_rejected;
    r.code = ApplyResult::Code::kDecideRejected;
    r.intent = true;
    return r;
  }
  TxnRecord& rec = it->second;
  rec.decision = c.outcome;
  rec.basis = c.basis;
  rec.decision_index = index;
  if (!c.participants.empty() || rec.participants.empty()) rec.participants = c.participants;
  rec.heuristic = c.heuristic;
  (c.outcome == Outcome::kCommit ? counters_.commits : counters_.aborts)++;
  r.code = ApplyResult::Code::kDecided;
  r.decision = c.outcome;
  return r;
}

ApplyResult TxnTable::ApplyEnd(const EndCmd& c) {
  ApplyResult r;
  r.code = ApplyResult::Code::kEnded;
  for (const std::string& gtid : c.gtids) {
    auto it = records_.find(gtid);
    if (it == records_.end() || !it->second.decision) continue;  // unknown, or only an intent
    Gtid g;
    if (it->second.heuristic || !ParseGtid(gtid, &g)) {
      it->second.ended = true;  // kept forever
      continue;
    }
    if (*it->second.decision == Outcome::kCommit) AddTombstone(g);
    records_.erase(it);
    ++counters_.ended;
    ++r.forgotten;
  }
  EvictTombstones();
  return r;
}

bool TxnTable::IsEndedCommit(const Gtid& g) const {
  auto group = ended_commits_.find({g.term, g.node});
  if (group == ended_commits_.end()) return false;
  auto it = group->second.upper_bound(g.seq);
  if (it == group->second.begin()) return false;
  --it;
  return it->first <= g.seq && g.seq <= it->second;
}

void TxnTable::AddTombstone(const Gtid& g) {
  Ranges& ranges = ended_commits_[{g.term, g.node}];
  auto next = ranges.upper_bound(g.seq);
  if (next != ranges.begin()) {
    auto prev = std::prev(next);
    if (prev->second >= g.seq) return;  // already there
    if (prev->second + 1 == g.seq) {
      prev->second = g.seq;
      if (next != ranges.end() && next->first == g.seq + 1) {  // bridge two ranges
        prev->second = next->second;
        ranges.erase(next);
        --tombstone_ranges_;
      }
      return;
    }
  }
  if (next != ranges.end() && next->first == g.seq + 1) {
    uint64_t hi = next->second;
    ranges.erase(next);
    ranges.emplace(g.seq, hi);
    return;
  }
  ranges.emplace(g.seq, g.seq);
  ++tombstone_ranges_;
}

void TxnTable::EvictTombstones() {
  while (tombstone_ranges_ > options_.max_commit_tombstone_ranges) {
    auto group = ended_commits_.begin();
    auto range = group->second.begin();
    Gtid top{group->first.first, group->first.second, range->second};
    if (!horizon_ || *horizon_ < top) horizon_ = top;
    group->second.erase(range);
    --tombstone_ranges_;
    if (group->second.empty()) ended_commits_.erase(group);
  }
}

GtidLookup TxnTable::Find(std::string_view gtid) const {
  GtidLookup out;
  auto it = records_.find(gtid);
  if (it != records_.end()) {
    out.state = it->second.decision ? GtidState::kDecided : GtidState::kIntent;
    out.record = &it->second;
    return out;
  }
  Gtid g;
  if (ParseGtid(gtid, &g)) {
    if (IsEndedCommit(g)) {
      out.state = GtidState::kEndedCommit;
    } else if (horizon_ && g <= *horizon_) {
      out.state = GtidState::kBeyondMemory;
    }
  }
  return out;
}

const ParticipantInfo* TxnTable::FindParticipant(std::string_view name) const {
  auto it = participants_.find(name);
  return it == participants_.end() ? nullptr : &it->second;
}

bool TxnTable::operator==(const TxnTable& o) const {
  return applied_index_ == o.applied_index_ && records_ == o.records_ &&
         participants_ == o.participants_ && ended_commits_ == o.ended_commits_ &&
         horizon_ == o.horizon_ && counters_ == o.counters_;
}

// Snapshot format, version 2 (all integers varint unless noted):
//   fixed32 version, applied_index, commits, aborts, overridden, precommits_rejected,
//   decides_rejected, ended,
//   count x record: gtid, flags byte, [outcome byte, basis byte]  (if decided),
//       precommit_index, decision_index, branches, [who, when, why] (if heuristic)
//   count x participant: name, address, backend, index
//   horizon flag byte [term, node, seq]
//   count x group: term, node, count x (lo, hi)
std::string TxnTable::Serialize() const {
  std::string out;
  PutFixed32(&out, kSnapshotVersion);
  PutVarint64(&out, applied_index_);
  for (uint64_t c : {counters_.commits, counters_.aborts, counters_.overridden,
                     counters_.precommits_rejected, counters_.decides_rejected, counters_.ended}) {
    PutVarint64(&out, c);
  }
  PutVarint64(&out, records_.size());
  for (const auto& [gtid, rec] : records_) {
    PutLengthPrefixed(&out, gtid);
    uint8_t flags = (rec.precommit ? kFlagPrecommit : 0) | (rec.decision ? kFlagDecided : 0) |
                    (rec.ended ? kFlagEnded : 0) | (rec.heuristic ? kFlagHeuristic : 0);
    out.push_back(static_cast<char>(flags));
    if (rec.decision) {
      out.push_back(static_cast<char>(*rec.decision));
      out.push_back(static_cast<char>(rec.basis));
    }
    PutVarint64(&out, rec.precommit_index);
    PutVarint64(&out, rec.decision_index);
    PutBranches(&out, rec.participants);
    if (rec.heuristic) {
      PutLengthPrefixed(&out, rec.heuristic->who);
      PutVarint64(&out, static_cast<uint64_t>(rec.heuristic->when_unix_ms));
      PutLengthPrefixed(&out, rec.heuristic->why);
    }
  }
  PutVarint64(&out, participants_.size());
  for (const auto& [name, p] : participants_) {
    PutLengthPrefixed(&out, name);
    PutLengthPrefixed(&out, p.address);
    PutLengthPrefixed(&out, p.backend);
    PutVarint64(&out, p.index);
  }
  out.push_back(horizon_ ? 1 : 0);
  if (horizon_) {
    PutVarint64(&out, horizon_->term);
    PutVarint64(&out, horizon_->node);
    PutVarint64(&out, horizon_->seq);
  }
  PutVarint64(&out, ended_commits_.size());
  for (const auto& [key, ranges] : ended_commits_) {
    PutVarint64(&out, key.first);
    PutVarint64(&out, key.second);
    PutVarint64(&out, ranges.size());
    for (const auto& [lo, hi] : ranges) {
      PutVarint64(&out, lo);
      PutVarint64(&out, hi);
    }
  }
  return out;
}

Status TxnTable::Restore(std::string_view in) {
  auto bad = [](const char* what) {
    return Status::Corruption(std::string("transaction table snapshot: ") + what);
  };
  std::string_view whole = in;
  uint32_t version;
  if (!GetFixed32(&in, &version)) return bad("truncated header");
  if (version == kLegacySnapshotVersion) {
    DecisionRegister legacy;
    Status s = legacy.Restore(whole);
    if (!s.ok()) return Status::Corruption(s.message());
    // DecisionRegister offers no iteration; re-read its records from the bytes it accepted.
    std::string_view rd = whole.substr(4);
    uint64_t counters[3] = {0, 0, 0}, n = 0;
    for (uint64_t& c : counters) GetVarint64(&rd, &c);
    GetVarint64(&rd, &n);
    std::map<std::string, TxnRecord, std::less<>> records;
    uint64_t max_index = 0;
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view gtid, name;
      uint64_t index = 0, count = 0;
      GetLengthPrefixed(&rd, &gtid);
      TxnRecord rec;
      rec.decision = static_cast<Outcome>(rd[0]);
      rd.remove_prefix(1);
      rec.basis = DecideBasis::kLegacy;
      GetVarint64(&rd, &index);
      rec.decision_index = index;
      max_index = std::max(max_index, index);
      GetVarint64(&rd, &count);
      for (uint64_t j = 0; j < count; ++j) {
        GetLengthPrefixed(&rd, &name);
        rec.participants.push_back({std::string(name), ""});
      }
      records.emplace(std::string(gtid), std::move(rec));
    }
    records_ = std::move(records);
    participants_.clear();
    ended_commits_.clear();
    tombstone_ranges_ = 0;
    horizon_.reset();
    counters_ = Counters{};
    counters_.commits = counters[0];
    counters_.aborts = counters[1];
    counters_.overridden = counters[2];
    applied_index_ = max_index;  // the old format does not record it; the driver knows it
    return Status::OK();
  }
  if (version != kSnapshotVersion) return bad("unknown version");

  uint64_t applied, n;
  Counters counters;
  if (!GetVarint64(&in, &applied) || !GetVarint64(&in, &counters.commits) ||
      !GetVarint64(&in, &counters.aborts) || !GetVarint64(&in, &counters.overridden) ||
      !GetVarint64(&in, &counters.precommits_rejected) ||
      !GetVarint64(&in, &counters.decides_rejected) || !GetVarint64(&in, &counters.ended) ||
      !GetVarint64(&in, &n) || n > in.size()) {
    return bad("truncated header");
  }
  std::map<std::string, TxnRecord, std::less<>> records;
  for (uint64_t i = 0; i < n; ++i) {
    std::string gtid;
    uint8_t flags;
    TxnRecord rec;
    if (!GetString(&in, &gtid) || gtid.empty() || !GetByte(&in, &flags) || flags > 15 ||
        (flags & (kFlagPrecommit | kFlagDecided)) == 0) {
      return bad("bad record");
    }
    rec.precommit = flags & kFlagPrecommit;
    rec.ended = flags & kFlagEnded;
    if (flags & kFlagDecided) {
      uint8_t outcome, basis;
      if (!GetByte(&in, &outcome) || !GetByte(&in, &basis) ||
          (outcome != static_cast<uint8_t>(Outcome::kCommit) &&
           outcome != static_cast<uint8_t>(Outcome::kAbort)) ||
          basis > static_cast<uint8_t>(DecideBasis::kHeuristic)) {
        return bad("bad decision");
      }
      rec.decision = static_cast<Outcome>(outcome);
      rec.basis = static_cast<DecideBasis>(basis);
    }
    const bool heuristic = flags & kFlagHeuristic;
    if (heuristic != (rec.decision && rec.basis == DecideBasis::kHeuristic) ||
        (rec.ended && !rec.decision)) {
      return bad("inconsistent record flags");
    }
    if (!GetVarint64(&in, &rec.precommit_index) || !GetVarint64(&in, &rec.decision_index) ||
        !GetBranches(&in, &rec.participants)) {
      return bad("bad record");
    }
    if (heuristic) {
      HeuristicInfo h;
      uint64_t when;
      if (!GetString(&in, &h.who) || !GetVarint64(&in, &when) || !GetString(&in, &h.why)) {
        return bad("bad heuristic record");
      }
      h.when_unix_ms = static_cast<int64_t>(when);
      rec.heuristic = std::move(h);
    }
    if (!records.emplace(std::move(gtid), std::move(rec)).second) return bad("duplicate gtid");
  }
  std::map<std::string, ParticipantInfo, std::less<>> participants;
  if (!GetVarint64(&in, &n) || n > in.size()) return bad("bad participant count");
  for (uint64_t i = 0; i < n; ++i) {
    std::string name;
    ParticipantInfo p;
    if (!GetString(&in, &name) || name.empty() || !GetString(&in, &p.address) ||
        !GetString(&in, &p.backend) || !GetVarint64(&in, &p.index)) {
      return bad("bad participant");
    }
    if (!participants.emplace(std::move(name), std::move(p)).second) {
      return bad("duplicate participant");
    }
  }
  uint8_t has_horizon;
  std::optional<Gtid> horizon;
  if (!GetByte(&in, &has_horizon) || has_horizon > 1) return bad("bad horizon");
  if (has_horizon) {
    Gtid h;
    if (!GetVarint64(&in, &h.term) || !GetVarint64(&in, &h.node) || !GetVarint64(&in, &h.seq)) {
      return bad("bad horizon");
    }
    horizon = h;
  }
  std::map<GroupKey, Ranges> ended;
  size_t range_count = 0;
  if (!GetVarint64(&in, &n) || n > in.size()) return bad("bad tombstone count");
  for (uint64_t i = 0; i < n; ++i) {
    GroupKey key;
    uint64_t m;
    if (!GetVarint64(&in, &key.first) || !GetVarint64(&in, &key.second) || !GetVarint64(&in, &m) ||
        m == 0 || m > in.size()) {
      return bad("bad tombstone group");
    }
    if (!ended.empty() && !(ended.rbegin()->first < key)) return bad("unordered tombstones");
    Ranges& ranges = ended[key];
    uint64_t prev_hi = 0;
    for (uint64_t j = 0; j < m; ++j) {
      uint64_t lo, hi;
      if (!GetVarint64(&in, &lo) || !GetVarint64(&in, &hi) || lo == 0 || lo > hi ||
          (j > 0 && lo <= prev_hi + 1)) {
        return bad("bad tombstone range");
      }
      ranges.emplace(lo, hi);
      prev_hi = hi;
      ++range_count;
    }
  }
  if (!in.empty()) return bad("trailing bytes");
  applied_index_ = applied;
  records_ = std::move(records);
  participants_ = std::move(participants);
  ended_commits_ = std::move(ended);
  tombstone_ranges_ = range_count;
  horizon_ = horizon;
  counters_ = counters;
  return Status::OK();
}

}  // namespace verdict::coordinator::txn
