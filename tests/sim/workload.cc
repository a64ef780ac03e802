#include "tests/sim/workload.h"

#include <algorithm>

namespace verdict::sim {

namespace {
unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

txn::Outcome Opposite(txn::Outcome o) {
  return o == txn::Outcome::kCommit ? txn::Outcome::kAbort : txn::Outcome::kCommit;
}
}  // namespace

Workload::Workload(const WorkloadOptions& options, EventQueue* queue, Random* rng, Trace* trace,
                   Checker* checker, std::vector<raft::NodeId> node_ids, NodeLookup nodes)
    : options_(options),
      queue_(queue),
      rng_(rng),
      trace_(trace),
      checker_(checker),
      node_ids_(std::move(node_ids)),
      nodes_(std::move(nodes)) {}

void Workload::Start() {
  arriving_ = true;
  queue_->After(rng_->RangeSigned(options_.min_arrival, options_.max_arrival),
                [this]() { Arrive(); });
}

void Workload::Arrive() {
  if (!arriving_) return;
  std::string gtid = "g" + std::to_string(++gtids_);
  txn::DecideCommand cmd;
  cmd.gtid = gtid;
  cmd.outcome = rng_->Chance(0.6) ? txn::Outcome::kCommit : txn::Outcome::kAbort;
  for (uint64_t p = 0, n = rng_->Range(1, 3); p < n; ++p) {
    cmd.participants.push_back("p" + std::to_string(rng_->Range(1, 8)));
  }
  int clients = rng_->Chance(options_.conflict) ? 2 : 1;
  for (int c = 0; c < clients; ++c) {
    Request req;
    req.gtid = gtid;
    req.cmd = cmd;
    if (c == 1) req.cmd.outcome = Opposite(cmd.outcome);
    req.data = txn::EncodeDecide(req.cmd);
    requests_.push_back(std::move(req));
    size_t r = requests_.size() - 1;
    // The second client comes a little later, often through another node.
    queue_->After(c == 0 ? 0 : rng_->RangeSigned(0, 50 * kMillis), [this, r]() { Attempt(r); });
  }
  queue_->After(rng_->RangeSigned(options_.min_arrival, options_.max_arrival),
                [this]() { Arrive(); });
}

void Workload::RetrySoon(size_t r) {
  Request& req = requests_[r];
  uint64_t attempt = req.attempt;
  // Back off while no node accepts: 2 ms, doubling to 500 ms (reset once one accepts).
  req.retry_delay =
      req.retry_delay == 0 ? 2 * kMillis : std::min(2 * req.retry_delay, 500 * kMillis);
  queue_->After(rng_->RangeSigned(req.retry_delay / 2, req.retry_delay), [this, r, attempt]() {
    if (requests_[r].attempt == attempt) Attempt(r);
  });
}

void Workload::Attempt(size_t r) {
  Request& req = requests_[r];
  if (req.acked) return;
  ++req.attempt;
  ++attempts_;
  raft::NodeId target = req.hint;
  if (target == raft::kNoNode || rng_->Chance(0.2)) target = rng_->Pick(node_ids_);
  SimNode* node = nodes_(target);
  raft::Index index = 0;
  raft::Term term = 0;
  Status s = node->Propose(req.data, &index, &term);
  if (!s.ok()) {
    req.hint = node->up() ? node->raft()->leader() : raft::kNoNode;
    if (req.hint == target) req.hint = raft::kNoNode;
    RetrySoon(r);
    return;
  }
  trace_->Log("client %s=%s accepted by n%llu at i%llu t%llu (attempt %llu)", req.gtid.c_str(),
              txn::OutcomeName(req.cmd.outcome), U(target), U(index), U(term), U(req.attempt));
  req.hint = target;
  req.retry_delay = 0;
  pending_[{target, index}] = {r, term};
  if (rng_->Chance(options_.duplicate)) {
    raft::Index dup_index = 0;
    raft::Term dup_term = 0;
    if (node->up() && node->Propose(req.data, &dup_index, &dup_term).ok()) {
      pending_[{target, dup_index}] = {r, dup_term};
    }
  }
  uint64_t attempt = req.attempt;
  req.timeout =
      req.timeout == 0 ? options_.request_timeout : std::min(2 * req.timeout, options_.max_timeout);
  queue_->After(req.timeout + rng_->RangeSigned(0, req.timeout / 4), [this, r, attempt]() {
    if (requests_[r].attempt == attempt && !requests_[r].acked) Attempt(r);
  });
}

void Workload::OnApply(raft::NodeId node, const raft::Entry& e, const txn::ApplyResult& result) {
  auto it = pending_.find({node, e.index});
  if (it == pending_.end()) return;
  auto [r, term] = it->second;
  pending_.erase(it);
  Request& req = requests_[r];
  if (req.acked) return;
  if (e.term != term || !result.decision) {
    // Another entry won that index: this attempt failed; retry soon (not from here:
    // the node is in the middle of its driver loop).
    RetrySoon(r);
    return;
  }
  req.acked = true;
  req.result = *result.decision;
  req.acked_by = node;
  ++acked_;
  trace_->Log("client %s=%s acknowledged by n%llu: %s", req.gtid.c_str(),
              txn::OutcomeName(req.cmd.outcome), U(node), txn::OutcomeName(req.result));
}

std::string Workload::FirstUnacknowledged() const {
  for (const Request& req : requests_) {
    if (!req.acked) {
      return req.gtid + "=" + txn::OutcomeName(req.cmd.outcome) + " (" +
             std::to_string(req.attempt) + " attempts)";
    }
  }
  return "";
}

void Workload::Check() {
  for (Request& req : requests_) {
    if (!req.acked) continue;
    if (lose_ack_) {
      lose_ack_ = false;
      req.result = Opposite(req.result);
    }
    const FirstDecision* want = checker_->Decided(req.gtid);
    if (want == nullptr || want->outcome != req.result) {
      checker_->Fail(
          "acknowledged decision lost: n%llu acknowledged %s=%s, but the log "
          "decided %s",
          U(req.acked_by), req.gtid.c_str(), txn::OutcomeName(req.result),
          want ? txn::OutcomeName(want->outcome) : "nothing");
      return;
    }
  }
}

}  // namespace verdict::sim
