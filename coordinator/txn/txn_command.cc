#include "coordinator/txn/txn_command.h"

#include "common/coding.h"

namespace verdict::coordinator::txn {

namespace {

constexpr uint8_t kTagLegacyDecide = 1;
constexpr uint8_t kTagPrecommit = 2;
constexpr uint8_t kTagDecide = 3;
constexpr uint8_t kTagEnd = 4;
constexpr uint8_t kTagRegister = 5;

bool ValidOutcome(uint8_t b) {
  return b == static_cast<uint8_t>(Outcome::kCommit) || b == static_cast<uint8_t>(Outcome::kAbort);
}

// Tag 3 never carries kLegacy: that basis only comes from tag 1.
bool ValidBasis(uint8_t b) {
  return b >= static_cast<uint8_t>(DecideBasis::kVotes) &&
         b <= static_cast<uint8_t>(DecideBasis::kHeuristic);
}

bool GetByte(std::string_view* in, uint8_t* b) {
  if (in->empty()) return false;
  *b = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  return true;
}

bool GetNonEmpty(std::string_view* in, std::string* out) {
  std::string_view s;
  if (!GetLengthPrefixed(in, &s) || s.empty()) return false;
  *out = std::string(s);
  return true;
}

bool GetString(std::string_view* in, std::string* out) {
  std::string_view s;
  if (!GetLengthPrefixed(in, &s)) return false;
  *out = std::string(s);
  return true;
}

void PutBranches(std::string* dst, const std::vector<BranchRef>& list) {
  PutVarint64(dst, list.size());
  for (const BranchRef& b : list) {
    PutLengthPrefixed(dst, b.participant);
    PutLengthPrefixed(dst, b.branch);
  }
}

bool GetBranches(std::string_view* in, std::vector<BranchRef>* out) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size() / 4) return false;  // each item >= 4 bytes
  out->clear();
  out->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    BranchRef b;
    if (!GetNonEmpty(in, &b.participant) || !GetNonEmpty(in, &b.branch)) return false;
    out->push_back(std::move(b));
  }
  return true;
}

Status Malformed(const char* what) {
  return Status::InvalidArgument(std::string("malformed ") + what + " command");
}

Status DecodeLegacy(std::string_view data, TxnCommand* out) {
  DecideCommand legacy;
  VERDICT_RETURN_IF_ERROR(DecodeDecide(data, &legacy));
  DecideCmd d;
  d.gtid = std::move(legacy.gtid);
  d.outcome = legacy.outcome;
  d.basis = DecideBasis::kLegacy;
  for (std::string& p : legacy.participants) d.participants.push_back({std::move(p), ""});
  *out = std::move(d);
  return Status::OK();
}

}  // namespace

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::k2PC:
      return "2PC";
    case Protocol::k3PC:
      return "3PC";
  }
  return "?";
}

const char* DecideBasisName(DecideBasis b) {
  switch (b) {
    case DecideBasis::kLegacy:
      return "legacy";
    case DecideBasis::kVotes:
      return "votes";
    case DecideBasis::kPrecommitAck:
      return "precommit-ack";
    case DecideBasis::kPresumedAbort:
      return "presumed-abort";
    case DecideBasis::kFenced:
      return "fenced";
    case DecideBasis::kHeuristic:
      return "heuristic";
  }
  return "?";
}

std::string EncodeCommand(const TxnCommand& cmd) {
  std::string out;
  if (const auto* p = std::get_if<PrecommitCmd>(&cmd)) {
    out.push_back(static_cast<char>(kTagPrecommit));
    PutLengthPrefixed(&out, p->gtid);
    PutBranches(&out, p->participants);
  } else if (const auto* d = std::get_if<DecideCmd>(&cmd)) {
    if (d->basis == DecideBasis::kLegacy) {
      DecideCommand legacy{d->gtid, d->outcome, {}};
      for (const BranchRef& b : d->participants) legacy.participants.push_back(b.participant);
      return EncodeDecide(legacy);
    }
    out.push_back(static_cast<char>(kTagDecide));
    PutLengthPrefixed(&out, d->gtid);
    out.push_back(static_cast<char>(d->outcome));
    out.push_back(static_cast<char>(d->basis));
    PutBranches(&out, d->participants);
    out.push_back(d->heuristic ? 1 : 0);
    if (d->heuristic) {
      PutLengthPrefixed(&out, d->heuristic->who);
      PutVarint64(&out, static_cast<uint64_t>(d->heuristic->when_unix_ms));
      PutLengthPrefixed(&out, d->heuristic->why);
    }
  } else if (const auto* e = std::get_if<EndCmd>(&cmd)) {
    out.push_back(static_cast<char>(kTagEnd));
    PutVarint64(&out, e->gtids.size());
    for (const std::string& g : e->gtids) PutLengthPrefixed(&out, g);
  } else {
    const auto& r = std::get<RegisterParticipantCmd>(cmd);
    out.push_back(static_cast<char>(kTagRegister));
    PutLengthPrefixed(&out, r.name);
    PutLengthPrefixed(&out, r.address);
    PutLengthPrefixed(&out, r.backend);
  }
  return out;
}

Status DecodeCommand(std::string_view in, TxnCommand* cmd) {
  uint8_t tag;
  if (in.empty()) return Status::InvalidArgument("empty command");
  if (static_cast<uint8_t>(in[0]) == kTagLegacyDecide) return DecodeLegacy(in, cmd);
  GetByte(&in, &tag);
  switch (tag) {
    case kTagPrecommit: {
      PrecommitCmd p;
      if (!GetNonEmpty(&in, &p.gtid) || !GetBranches(&in, &p.participants) || !in.empty()) {
        return Malformed("PRECOMMIT");
      }
      *cmd = std::move(p);
      return Status::OK();
    }
    case kTagDecide: {
      DecideCmd d;
      uint8_t outcome, basis, has_heuristic;
      if (!GetNonEmpty(&in, &d.gtid) || !GetByte(&in, &outcome) || !ValidOutcome(outcome) ||
          !GetByte(&in, &basis) || !ValidBasis(basis) || !GetBranches(&in, &d.participants) ||
          !GetByte(&in, &has_heuristic) || has_heuristic > 1) {
        return Malformed("DECIDE");
      }
      d.outcome = static_cast<Outcome>(outcome);
      d.basis = static_cast<DecideBasis>(basis);
      if ((has_heuristic == 1) != (d.basis == DecideBasis::kHeuristic)) {
        return Malformed("DECIDE");  // a heuristic record iff a heuristic basis
      }
      if (has_heuristic) {
        HeuristicInfo h;
        uint64_t when;
        if (!GetNonEmpty(&in, &h.who) || !GetVarint64(&in, &when) || !GetString(&in, &h.why)) {
          return Malformed("DECIDE");
        }
        h.when_unix_ms = static_cast<int64_t>(when);
        d.heuristic = std::move(h);
      }
      if (!in.empty()) return Malformed("DECIDE");
      *cmd = std::move(d);
      return Status::OK();
    }
    case kTagEnd: {
      EndCmd e;
      uint64_t n;
      if (!GetVarint64(&in, &n) || n == 0 || n > in.size() / 2) return Malformed("END");
      e.gtids.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        if (!GetNonEmpty(&in, &e.gtids[i])) return Malformed("END");
      }
      if (!in.empty()) return Malformed("END");
      *cmd = std::move(e);
      return Status::OK();
    }
    case kTagRegister: {
      RegisterParticipantCmd r;
      if (!GetNonEmpty(&in, &r.name) || !GetNonEmpty(&in, &r.address) ||
          !GetString(&in, &r.backend) || !in.empty()) {
        return Malformed("REGISTER_PARTICIPANT");
      }
      *cmd = std::move(r);
      return Status::OK();
    }
    default:
      return Status::InvalidArgument("unknown command tag " + std::to_string(tag));
  }
}

std::string DescribeCommand(const TxnCommand& cmd) {
  if (const auto* p = std::get_if<PrecommitCmd>(&cmd)) {
    return "PRECOMMIT " + p->gtid + " (" + std::to_string(p->participants.size()) + " branches)";
  }
  if (const auto* d = std::get_if<DecideCmd>(&cmd)) {
    return "DECIDE " + d->gtid + " " + OutcomeName(d->outcome) + " (" + DecideBasisName(d->basis) +
           ")";
  }
  if (const auto* e = std::get_if<EndCmd>(&cmd)) {
    return "END x" + std::to_string(e->gtids.size());
  }
  const auto& r = std::get<RegisterParticipantCmd>(cmd);
  return "REGISTER " + r.name + "@" + r.address;
}

}  // namespace verdict::coordinator::txn
