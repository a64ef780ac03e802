#include "coordinator/txn/decision_register.h"

#include "common/coding.h"

namespace verdict::coordinator::txn {

namespace {
constexpr uint8_t kTagDecide = 1;
constexpr uint32_t kSnapshotVersion = 1;

bool ValidOutcome(uint8_t b) {
  return b == static_cast<uint8_t>(Outcome::kCommit) || b == static_cast<uint8_t>(Outcome::kAbort);
}

bool GetStringList(std::string_view* in, std::vector<std::string>* out) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;  // each item takes >= 1 byte
  out->clear();
  out->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view s;
    if (!GetLengthPrefixed(in, &s)) return false;
    out->emplace_back(s);
  }
  return true;
}

void PutStringList(std::string* dst, const std::vector<std::string>& list) {
  PutVarint64(dst, list.size());
  for (const auto& s : list) PutLengthPrefixed(dst, s);
}
}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kCommit:
      return "COMMIT";
    case Outcome::kAbort:
      return "ABORT";
  }
  return "?";
}

std::string EncodeDecide(const DecideCommand& cmd) {
  std::string out;
  out.push_back(static_cast<char>(kTagDecide));
  PutLengthPrefixed(&out, cmd.gtid);
  out.push_back(static_cast<char>(cmd.outcome));
  PutStringList(&out, cmd.participants);
  return out;
}

Status DecodeDecide(std::string_view in, DecideCommand* cmd) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != kTagDecide) {
    return Status::InvalidArgument("not a Decide command");
  }
  in.remove_prefix(1);
  std::string_view gtid;
  if (!GetLengthPrefixed(&in, &gtid) || gtid.empty() || in.empty() ||
      !ValidOutcome(static_cast<uint8_t>(in[0]))) {
    return Status::InvalidArgument("malformed Decide command");
  }
  cmd->gtid = std::string(gtid);
  cmd->outcome = static_cast<Outcome>(in[0]);
  in.remove_prefix(1);
  if (!GetStringList(&in, &cmd->participants) || !in.empty()) {
    return Status::InvalidArgument("malformed Decide command");
  }
  return Status::OK();
}

const DecisionRecord& DecisionRegister::Apply(const DecideCommand& cmd, uint64_t index) {
  auto it = decisions_.find(cmd.gtid);
  if (it != decisions_.end()) {
    if (it->second.outcome != cmd.outcome) ++overridden_;
    return it->second;
  }
  (cmd.outcome == Outcome::kCommit ? commits_ : aborts_)++;
  DecisionRecord rec{cmd.outcome, cmd.participants, index};
  return decisions_.emplace(cmd.gtid, std::move(rec)).first->second;
}

const DecisionRecord* DecisionRegister::Find(std::string_view gtid) const {
  auto it = decisions_.find(gtid);
  return it == decisions_.end() ? nullptr : &it->second;
}

std::string DecisionRegister::Serialize() const {
  std::string out;
  PutFixed32(&out, kSnapshotVersion);
  PutVarint64(&out, commits_);
  PutVarint64(&out, aborts_);
  PutVarint64(&out, overridden_);
  PutVarint64(&out, decisions_.size());
  for (const auto& [gtid, rec] : decisions_) {
    PutLengthPrefixed(&out, gtid);
    out.push_back(static_cast<char>(rec.outcome));
    PutVarint64(&out, rec.index);
    PutStringList(&out, rec.participants);
  }
  return out;
}

Status DecisionRegister::Restore(std::string_view in) {
  uint32_t version;
  uint64_t commits, aborts, overridden, n;
  if (!GetFixed32(&in, &version) || version != kSnapshotVersion) {
    return Status::Corruption("decision register snapshot: unknown version");
  }
  if (!GetVarint64(&in, &commits) || !GetVarint64(&in, &aborts) || !GetVarint64(&in, &overridden) ||
      !GetVarint64(&in, &n)) {
    return Status::Corruption("decision register snapshot: truncated header");
  }
  std::map<std::string, DecisionRecord, std::less<>> decisions;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view gtid;
    DecisionRecord rec;
    if (!GetLengthPrefixed(&in, &gtid) || in.empty() ||
        !ValidOutcome(static_cast<uint8_t>(in[0]))) {
      return Status::Corruption("decision register snapshot: bad record");
    }
    rec.outcome = static_cast<Outcome>(in[0]);
    in.remove_prefix(1);
    if (!GetVarint64(&in, &rec.index) || !GetStringList(&in, &rec.participants)) {
      return Status::Corruption("decision register snapshot: bad record");
    }
    decisions.emplace(std::string(gtid), std::move(rec));
  }
  if (!in.empty()) return Status::Corruption("decision register snapshot: trailing bytes");
  decisions_ = std::move(decisions);
  commits_ = commits;
  aborts_ = aborts;
  overridden_ = overridden;
  return Status::OK();
}

}  // namespace verdict::coordinator::txn
