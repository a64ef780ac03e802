// CoordinatorHandler's transaction calls: Begin, RegisterBranch, Commit, Abort, GetTxn,
// ListTxns, Resolve, ListHazards.
#include <spdlog/spdlog.h>

#include <chrono>

#include "coordinator/server/coordinator_handler.h"
#include "coordinator/server/handler_util.h"

namespace verdict::coordinator::server {

namespace {

using server::ToThrift;  // handler_util.h's overloads, beside this file's

constexpr size_t kMaxReasonBytes = 4096;
constexpr int32_t kMaxListLimit = 100000;

const char* BasisName(txn::DecideBasis b) {
  switch (b) {
    case txn::DecideBasis::kLegacy:
      return "decide-rpc";
    case txn::DecideBasis::kVotes:
      return "votes";
    case txn::DecideBasis::kPrecommitAck:
      return "precommit-ack";
    case txn::DecideBasis::kPresumedAbort:
      return "presumed-abort";
    case txn::DecideBasis::kFenced:
      return "fenced";
    case txn::DecideBasis::kHeuristic:
      return "heuristic";
  }
  return "?";
}

const char* VoteText(txn::Vote v) {
  switch (v) {
    case txn::Vote::kNone:
      return "";
    case txn::Vote::kYes:
      return "YES";
    case txn::Vote::kNo:
      return "NO";
    case txn::Vote::kReadOnly:
      return "READ_ONLY";
  }
  return "?";
}

rpc::Protocol::type ToThrift(txn::Protocol p) {
  return p == txn::Protocol::k3PC ? rpc::Protocol::THREE_PC : rpc::Protocol::TWO_PC;
}

// The phase of a transaction known only from the table.
std::string TablePhase(const TxnReport& r) {
  switch (r.state) {
    case txn::GtidState::kIntent:
      return "intent";
    case txn::GtidState::kDecided:
      return r.record && r.record->ended ? "ended" : "decided";
    case txn::GtidState::kEndedCommit:
      return "ended";
    case txn::GtidState::kBeyondMemory:
      return "beyond-memory";
    case txn::GtidState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string AddressOf(const TxnReport& r, const std::string& participant) {
  auto it = r.addresses.find(participant);
  return it == r.addresses.end() ? "" : it->second;
}

rpc::TxnInfo ToThrift(const TxnReport& r) {
  rpc::TxnInfo info;
  info.gtid = r.gtid;
  info.protocol = rpc::Protocol::TWO_PC;
  if (r.record) {
    if (r.record->decision) {
      info.__set_decision(ToThrift(*r.record->decision));
      info.basis = BasisName(r.record->basis);
      info.decision_index = static_cast<int64_t>(r.record->decision_index);
    }
    info.precommit_applied = r.record->precommit;
    if (r.record->precommit) info.protocol = rpc::Protocol::THREE_PC;
    if (r.record->heuristic) {
      rpc::HeuristicDecision h;
      h.who = r.record->heuristic->who;
      h.when_unix_ms = r.record->heuristic->when_unix_ms;
      h.why = r.record->heuristic->why;
      info.__set_heuristic(std::move(h));
    }
  } else if (r.state == txn::GtidState::kEndedCommit) {
    info.__set_decision(rpc::Outcome::COMMIT);
  }
  if (r.view) {
    const txn::TxnView& v = *r.view;
    info.protocol = ToThrift(v.protocol);
    info.phase = v.phase;
    info.driven = true;
    info.age_ms = v.age_ms;
    info.deadline_in_ms = v.deadline_in_ms;
    info.reason = v.reason;
    for (const txn::TxnView::Branch& b : v.branches) {
      rpc::BranchDetail d;
      d.participant = b.ref.participant;
      d.branch = b.ref.branch;
      d.address = AddressOf(r, b.ref.participant);
      d.vote = VoteText(b.vote);
      d.precommit_acked = b.precommit_acked;
      d.fenced = b.fenced;
      d.acknowledged = b.done;
      d.attempts = static_cast<int32_t>(b.attempts);
      // A branch that voted YES (or is being driven to the decision) and has not
      // acknowledged it may hold a prepared transaction without knowing the outcome.
      if ((b.vote == txn::Vote::kYes || b.target) && !b.done) info.in_doubt = true;
      info.branches.push_back(std::move(d));
    }
  } else {
    info.phase = TablePhase(r);
    // Decided without END, or an intent: phase two has not been confirmed.
    if (r.record && !r.record->ended) info.in_doubt = true;
    if (r.record) {
      for (const txn::BranchRef& b : r.record->participants) {
        rpc::BranchDetail d;
        d.participant = b.participant;
        d.branch = b.branch;
        d.address = AddressOf(r, b.participant);
        info.branches.push_back(std::move(d));
      }
    }
  }
  return info;
}

rpc::TxnOutcome::type ToThrift(txn::ClientOutcome o) {
  switch (o) {
    case txn::ClientOutcome::kCommitted:
      return rpc::TxnOutcome::COMMITTED;
    case txn::ClientOutcome::kAborted:
      return rpc::TxnOutcome::ABORTED;
    default:
      return rpc::TxnOutcome::UNKNOWN;
  }
}

}  // namespace

template <typename Response>
void CoordinatorHandler::Invalid(Response* out, std::string message) {
  metrics_.invalid_requests.fetch_add(1, std::memory_order_relaxed);
  out->code = rpc::ResultCode::INVALID_ARGUMENT;
  out->message = std::move(message);
}

void CoordinatorHandler::Begin(rpc::BeginResponse& out, const rpc::BeginRequest& request) {
  if (request.protocol != rpc::Protocol::TWO_PC && request.protocol != rpc::Protocol::THREE_PC) {
    return Invalid(&out, "protocol " + std::to_string(static_cast<int>(request.protocol)) +
                             " is neither TWO_PC (2) nor THREE_PC (3)");
  }
  txn::Protocol protocol =
      request.protocol == rpc::Protocol::THREE_PC ? txn::Protocol::k3PC : txn::Protocol::k2PC;
  int64_t deadline = 0;
  CallResult r = node_.Begin(protocol, request.deadline_ms, &out.gtid, &deadline);
  FillStatus(r, &out);
  out.deadline_ms = deadline;
}

void CoordinatorHandler::RegisterBranch(rpc::RegisterBranchResponse& out,
                                        const rpc::RegisterBranchRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (error.empty()) error = CheckName(request.participant, "participant");
  if (error.empty()) error = CheckName(request.branch, "branch");
  if (!error.empty()) return Invalid(&out, std::move(error));
  FillStatus(
      node_.RegisterBranch(request.gtid, request.participant, request.branch, request.read_only),
      &out);
}

void CoordinatorHandler::Finish(bool commit, rpc::TxnOutcomeResponse& out,
                                const rpc::TxnRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (!error.empty()) return Invalid(&out, std::move(error));
  txn::ClientReply reply;
  CallResult r = node_.Finish(commit, request.gtid, &reply);
  FillStatus(r, &out);
  if (r.code == CallResult::Code::kOk) {
    out.outcome = ToThrift(reply.outcome);
    out.reason = reply.reason;
  } else {
    out.outcome = rpc::TxnOutcome::UNKNOWN;
  }
}

void CoordinatorHandler::Commit(rpc::TxnOutcomeResponse& out, const rpc::TxnRequest& request) {
  Finish(true, out, request);
}

void CoordinatorHandler::Abort(rpc::TxnOutcomeResponse& out, const rpc::TxnRequest& request) {
  Finish(false, out, request);
}

void CoordinatorHandler::GetTxn(rpc::TxnInfoResponse& out, const rpc::TxnRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (!error.empty()) return Invalid(&out, std::move(error));
  TxnReport report;
  CallResult r = node_.GetTxn(request.gtid, &report);
  FillStatus(r, &out);
  if (r.code == CallResult::Code::kOk) out.info = ToThrift(report);
}

void CoordinatorHandler::ListTxns(rpc::ListTxnsResponse& out, const rpc::ListTxnsRequest& request) {
  if (request.limit < 1 || request.limit > kMaxListLimit) {
    return Invalid(&out, "limit must be in 1.." + std::to_string(kMaxListLimit));
  }
  // In-doubt filtering needs every transaction: list them all, keep the matching ones.
  size_t limit = request.in_doubt_only ? static_cast<size_t>(kMaxListLimit)
                                       : static_cast<size_t>(request.limit);
  std::vector<TxnReport> reports;
  bool truncated = false;
  CallResult r = node_.ListTxns(limit, &reports, &truncated);
  FillStatus(r, &out);
  if (r.code != CallResult::Code::kOk) return;
  for (const TxnReport& report : reports) {
    rpc::TxnInfo info = ToThrift(report);
    if (request.in_doubt_only && !info.in_doubt) continue;
    if (out.txns.size() >= static_cast<size_t>(request.limit)) {
      truncated = true;
      break;
    }
    out.txns.push_back(std::move(info));
  }
  out.truncated = truncated;
}

void CoordinatorHandler::Resolve(rpc::ResolveResponse& out, const rpc::ResolveRequest& request) {
  std::string error = CheckGtid(request.gtid);
  if (error.empty() && request.outcome != rpc::Outcome::COMMIT &&
      request.outcome != rpc::Outcome::ABORT) {
    error = "outcome must be COMMIT (1) or ABORT (2)";
  }
  if (error.empty() && (request.who.empty() || request.who.size() > kMaxParticipantBytes)) {
    error = "who is empty or longer than " + std::to_string(kMaxParticipantBytes) + " bytes";
  }
  if (error.empty() && request.why.size() > kMaxReasonBytes) {
    error = "why is longer than " + std::to_string(kMaxReasonBytes) + " bytes";
  }
  if (!error.empty()) return Invalid(&out, std::move(error));
  txn::HeuristicInfo info;
  info.who = request.who;
  info.why = request.why;
  info.when_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  txn::Outcome outcome =
      request.outcome == rpc::Outcome::COMMIT ? txn::Outcome::kCommit : txn::Outcome::kAbort;
  std::optional<txn::Outcome> decision;
  CallResult r = node_.Resolve(request.gtid, outcome, info, &decision);
  FillStatus(r, &out);
  if (decision) out.__set_decision(ToThrift(*decision));
  if (r.code == CallResult::Code::kOk) {
    spdlog::warn("HEURISTIC decision {} for {} by {}: {}", txn::OutcomeName(outcome), request.gtid,
                 request.who, request.why);
  }
}

void CoordinatorHandler::ListHazards(rpc::ListHazardsResponse& out) {
  uint64_t total = 0;
  std::vector<HazardReport> hazards = node_.Hazards(&total);
  NodeStatus st = node_.GetStatus();
  out.code = rpc::ResultCode::OK;
  out.total = static_cast<int64_t>(total);
  for (const HazardReport& h : hazards) {
    rpc::Hazard t;
    t.kind = txn::HazardKindName(h.event.kind);
    t.gtid = h.event.gtid;
    t.participant = h.event.branch.participant;
    t.branch = h.event.branch.branch;
    t.message = h.event.message;
    t.when_unix_ms = h.when_unix_ms;
    t.node = static_cast<int64_t>(st.id);
    out.hazards.push_back(std::move(t));
  }
}

}  // namespace verdict::coordinator::server
