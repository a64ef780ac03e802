#include "tests/sim/txn_workload.h"

#include <algorithm>
#include <memory>

namespace verdict::sim {

namespace {
using BS = BranchState;
using raft::NodeId;

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }
constexpr NodeId kAgentEpBase = 100;
}  // namespace

TxnWorkload::TxnWorkload(const TxnOptions& options, EventQueue* queue, Random* rng, Trace* trace,
                         Checker* checker, Network* network, std::vector<NodeId> node_ids,
                         NodeLookup nodes)
    : options_(options),
      queue_(queue),
      rng_(rng),
      trace_(trace),
      checker_(checker),
      network_(network),
      node_ids_(std::move(node_ids)),
      nodes_(std::move(nodes)) {
  for (int i = 0; i < options_.agents; ++i) {
    Agent a;
    a.name = "p" + std::to_string(i + 1);
    a.ep = kAgentEpBase + static_cast<NodeId>(i + 1);
    size_t index = agents_.size();
    a.core = std::make_unique<ParticipantCore>(a.name,
                                               [this, index](const std::string& g, BS from, BS to) {
                                                 OnBranchChange(index, g, from, to);
                                               });
    a.core->set_mutation(options_.mutation);
    agents_.push_back(std::move(a));
  }
}

void TxnWorkload::Start() {
  arriving_ = true;
  Register();
  for (size_t a = 0; a < agents_.size(); ++a) {
    queue_->After(rng_->RangeSigned(1, options_.agent_tick), [this, a]() { AgentTick(a); });
  }
  queue_->After(rng_->RangeSigned(options_.min_arrival, options_.max_arrival),
                [this]() { Arrive(); });
}

NodeId TxnWorkload::PickNode(NodeId hint) {
  if (hint != raft::kNoNode && rng_->Chance(0.8)) return hint;
  return rng_->Pick(node_ids_);
}

// ---- registry ----

void TxnWorkload::Register() {
  if (registered_.size() == agents_.size()) return;
  NodeId target = PickNode(raft::kNoNode);
  for (const Agent& a : agents_) {
    if (registered_.count(a.name)) continue;
    txn::RegisterParticipantCmd cmd{a.name, a.name + ":9000", "sim"};
    txn::RequestToken tok = next_token_++;
    network_->Post(kClientEp, target, [this, target, cmd, tok]() {
      nodes_(target)->WithEngine([&](txn::ProtocolEngine& e) { e.RegisterParticipant(tok, cmd); });
    });
  }
  queue_->After(50 * kMillis, [this]() { Register(); });
}

// ---- clients ----

void TxnWorkload::Arrive() {
  if (!arriving_) return;
  Client c;
  c.protocol = rng_->Chance(options_.three_pc) ? txn::Protocol::k3PC : txn::Protocol::k2PC;
  c.deadline_ms = rng_->RangeSigned(options_.min_deadline_ms, options_.max_deadline_ms);
  c.node = PickNode(raft::kNoNode);
  clients_.push_back(c);
  ++stats_.transactions;
  ClientSend(clients_.size() - 1);
  queue_->After(rng_->RangeSigned(options_.min_arrival, options_.max_arrival),
                [this]() { Arrive(); });
}

void TxnWorkload::ClientSend(size_t ci) {
  Client& c = clients_[ci];
  uint64_t attempt = ++c.attempt;
  NodeId node = c.node;
  switch (c.stage) {
    case Client::Stage::kBegin:
      network_->Post(kClientEp, node, [this, ci, attempt, node]() {
        SimNode* n = nodes_(node);
        Status s;
        std::string gtid;
        bool up = n->WithEngine([&](txn::ProtocolEngine& e) {
          s = e.Begin(clients_[ci].protocol, clients_[ci].deadline_ms, &gtid);
        });
        if (!up) return;
        NodeId hint = n->raft()->leader();
        network_->Post(node, kClientEp, [this, ci, attempt, s, gtid, hint]() {
          OnBeginReply(ci, attempt, s, gtid, hint);
        });
      });
      break;
    case Client::Stage::kRegister:
      network_->Post(kClientEp, node, [this, ci, attempt, node]() {
        Status s;
        bool up = nodes_(node)->WithEngine([&](txn::ProtocolEngine& e) {
          for (const std::string& p : clients_[ci].parts) {
            Status r = e.RegisterBranch(clients_[ci].gtid, p, "b-" + p, false);
            if (!r.ok() && s.ok()) s = r;
          }
        });
        if (!up) return;
        network_->Post(node, kClientEp,
                       [this, ci, attempt, s]() { OnRegisterReply(ci, attempt, s); });
      });
      break;
    case Client::Stage::kDecide: {
      txn::RequestToken tok = next_token_++;
      client_tokens_[tok] = {ci, attempt};
      network_->Post(kClientEp, node, [this, ci, node, tok]() {
        nodes_(node)->WithEngine([&](txn::ProtocolEngine& e) {
          if (clients_[ci].commit) {
            e.Commit(tok, clients_[ci].gtid);
          } else {
            e.Abort(tok, clients_[ci].gtid);
          }
        });
      });
      break;
    }
    case Client::Stage::kDone:
    case Client::Stage::kVanished:
      return;
  }
  // No answer in time: try again, elsewhere.
  Time timeout = c.stage == Client::Stage::kDecide ? 1 * kSeconds : 200 * kMillis;
  queue_->After(Jitter(timeout), [this, ci, attempt]() {
    Client& c = clients_[ci];
    if (c.attempt != attempt || c.stage == Client::Stage::kDone) return;
    if (c.stage == Client::Stage::kRegister) {
      // Unsure whether the branches were registered: give the transaction up.
      c.commit = false;
      c.stage = Client::Stage::kDecide;
    }
    ClientRetry(ci, raft::kNoNode, false);
  });
}

void TxnWorkload::ClientRetry(size_t ci, NodeId hint, bool backoff) {
  Client& c = clients_[ci];
  ++stats_.client_retries;
  uint64_t attempt = ++c.attempt;  // invalidates the pending timeout
  c.node = PickNode(hint);
  Time delay = 0;
  if (backoff) {
    c.backoff = c.backoff == 0 ? 5 * kMillis : std::min<Time>(2 * c.backoff, 500 * kMillis);
    delay = rng_->RangeSigned(c.backoff / 2, c.backoff);
  }
  queue_->After(delay, [this, ci, attempt]() {
    if (clients_[ci].attempt == attempt) ClientSend(ci);
  });
}

void TxnWorkload::OnBeginReply(size_t ci, uint64_t attempt, Status s, const std::string& gtid,
                               NodeId hint) {
  Client& c = clients_[ci];
  if (c.attempt != attempt || c.stage != Client::Stage::kBegin) return;
  if (!s.ok()) {
    if (!arriving_) {  // healing: nobody needs this transaction any more
      c.stage = Client::Stage::kVanished;
      return;
    }
    return ClientRetry(ci, hint, true);
  }
  c.gtid = gtid;
  client_of_[gtid] = ci;
  // Branch work on 1..max_branches agents (those that are up; the others fail the SQL).
  std::vector<size_t> order(agents_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng_->Range(0, i - 1)]);
  size_t n = rng_->Range(options_.one_phase ? 1 : 2,
                         static_cast<uint64_t>(std::max(2, options_.max_branches)));
  for (size_t i = 0; i < n && i < order.size(); ++i) {
    Agent& a = agents_[order[i]];
    if (!a.up) continue;
    if (!a.core->Open(gtid, c.protocol, "b-" + a.name)) continue;
    a.timers[gtid].opened = queue_->now();
    a.timers[gtid].last_coord = queue_->now();
    c.parts.push_back(a.name);
  }
  if (c.parts.size() < 2 && !options_.one_phase) {
    // One-phase and empty commits are switched off (TxnOptions::one_phase): abort.
    c.commit = false;
    c.stage = Client::Stage::kDecide;
    ++c.attempt;
    ClientSend(ci);
    return;
  }
  trace_->Log("client %s %s begun at n%llu on %zu branches", gtid.c_str(),
              txn::ProtocolName(c.protocol), U(c.node), c.parts.size());
  c.stage = Client::Stage::kRegister;
  ++c.attempt;
  ClientSend(ci);
}

void TxnWorkload::OnRegisterReply(size_t ci, uint64_t attempt, Status s) {
  Client& c = clients_[ci];
  if (c.attempt != attempt || c.stage != Client::Stage::kRegister) return;
  c.stage = Client::Stage::kDecide;
  if (!s.ok()) {
    c.commit = false;
  } else if (rng_->Chance(options_.client_vanish)) {
    c.stage = Client::Stage::kVanished;
    trace_->Log("client %s vanishes", c.gtid.c_str());
    return;
  } else {
    c.commit = !rng_->Chance(options_.client_abort);
  }
  ++c.attempt;
  ClientSend(ci);
}

void TxnWorkload::OnClientReply(size_t ci, uint64_t attempt, const txn::ClientReply& r,
                                NodeId hint) {
  Client& c = clients_[ci];
  if (c.stage != Client::Stage::kDecide && c.stage != Client::Stage::kDone) return;
  if (r.outcome == txn::ClientOutcome::kCommitted || r.outcome == txn::ClientOutcome::kAborted) {
    if (c.answer && *c.answer != r.outcome) {
      checker_->Fail("atomicity: client of %s told %s, then %s", c.gtid.c_str(),
                     txn::ClientOutcomeName(*c.answer), txn::ClientOutcomeName(r.outcome));
      return;
    }
    if (!c.answer) {
      trace_->Log("client %s told %s (%s)", c.gtid.c_str(), txn::ClientOutcomeName(r.outcome),
                  r.reason.c_str());
      (r.outcome == txn::ClientOutcome::kCommitted ? stats_.committed : stats_.aborted)++;
    }
    c.answer = r.outcome;
    c.stage = Client::Stage::kDone;
    ++c.attempt;
    CheckGtid(c.gtid);
    return;
  }
  if (c.attempt != attempt || c.stage == Client::Stage::kDone) return;
  if (healing_ && r.outcome == txn::ClientOutcome::kUnknown && ++c.unknowns >= 20) {
    c.gave_up = true;
    c.stage = Client::Stage::kDone;
    ++stats_.unknown_given_up;
    trace_->Log("client %s gives up: %s", c.gtid.c_str(), r.reason.c_str());
    return;
  }
  ClientRetry(ci, hint, true);
}

// ---- the coordinator side ----

void TxnWorkload::OnEngineOutput(NodeId node, const txn::EngineOutput& out) {
  for (const txn::ParticipantMessage& m : out.messages) {
    for (size_t a = 0; a < agents_.size(); ++a) {
      if (agents_[a].name != m.to.participant) continue;
      network_->Post(node, agents_[a].ep, [this, a, node, m]() { AgentReceive(a, node, m); });
    }
  }
  NodeId hint = nodes_(node)->raft() ? nodes_(node)->raft()->leader() : raft::kNoNode;
  for (const txn::ClientReply& r : out.client_replies) {
    auto it = client_tokens_.find(r.token);
    if (it == client_tokens_.end()) continue;
    auto [ci, attempt] = it->second;
    client_tokens_.erase(it);
    network_->Post(node, kClientEp, [this, ci = ci, attempt = attempt, r, hint]() {
      OnClientReply(ci, attempt, r, hint);
    });
  }
  for (const txn::InquiryReply& r : out.inquiry_replies) {
    auto it = inquiry_tokens_.find(r.token);
    if (it == inquiry_tokens_.end()) continue;
    InquiryToken t = it->second;
    inquiry_tokens_.erase(it);
    network_->Post(node, agents_[t.agent].ep, [this, t, r, hint]() {
      OnInquiryReply(t.agent, t.boot, t.gtid, r.status, hint);
    });
  }
  for (const txn::AdminReply& r : out.admin_replies) {
    if (!r.status.ok()) continue;
  }
  if (!out.hazards.empty()) {
    const txn::HazardEvent& h = out.hazards.front();
    checker_->Fail("atomicity: n%llu raised hazard %s for %s (%s/%s): %s", U(node),
                   txn::HazardKindName(h.kind), h.gtid.c_str(), h.branch.participant.c_str(),
                   h.branch.branch.c_str(), h.message.c_str());
  }
}

void TxnWorkload::OnApply(NodeId, const raft::Entry& e, const txn::ApplyResult& result) {
  if (result.code == txn::ApplyResult::Code::kRegistered) {
    txn::TxnCommand cmd;
    if (txn::DecodeCommand(e.data, &cmd).ok()) {
      registered_.insert(std::get<txn::RegisterParticipantCmd>(cmd).name);
    }
    return;
  }
  if (result.code != txn::ApplyResult::Code::kDecided) return;
  txn::TxnCommand cmd;
  if (!txn::DecodeCommand(e.data, &cmd).ok()) return;
  if (const auto* d = std::get_if<txn::DecideCmd>(&cmd)) CheckGtid(d->gtid);
}

// ---- participant agents ----

TxnWorkload::Agent& TxnWorkload::AgentByName(const std::string& name) {
  for (Agent& a : agents_) {
    if (a.name == name) return a;
  }
  return agents_.front();
}

void TxnWorkload::AgentReceive(size_t ai, NodeId node, const txn::ParticipantMessage& m) {
  Agent& a = agents_[ai];
  if (!a.up) return;
  auto t = a.timers.find(m.gtid);
  if (t != a.timers.end()) t->second.last_coord = queue_->now();
  LocalChoice choice;
  double v = rng_->Real();
  choice.vote = v < options_.vote_no                             ? txn::Vote::kNo
                : v < options_.vote_no + options_.vote_read_only ? txn::Vote::kReadOnly
                                                                 : txn::Vote::kYes;
  choice.one_phase_ok = !rng_->Chance(options_.one_phase_fail);
  txn::ParticipantReply r = a.core->Handle(m, choice);
  if (a.timers.count(m.gtid) == 0 && ParticipantCore::InDoubt(r.state)) {
    a.timers[m.gtid].last_coord = queue_->now();
  }
  network_->Post(a.ep, node, [this, node, r]() {
    nodes_(node)->WithEngine([&](txn::ProtocolEngine& e) { e.OnReply(r); });
  });
}

void TxnWorkload::AgentTick(size_t ai) {
  Agent& a = agents_[ai];
  queue_->After(Jitter(options_.agent_tick), [this, ai]() { AgentTick(ai); });
  if (!a.up) return;
  Time now = queue_->now();
  std::vector<std::string> gtids;
  for (const auto& [g, t] : a.timers) gtids.push_back(g);
  for (const std::string& g : gtids) {
    auto it = a.timers.find(g);
    if (it == a.timers.end()) continue;
    Timers& t = it->second;
    SimBranch* b = a.core->Find(g);
    if (b == nullptr || ParticipantCore::Final(b->state)) {
      a.timers.erase(it);
      continue;
    }
    Time silent = now - t.last_coord;
    if (b->state == BS::kActive) {
      // Before the vote an agent may abort on its own (idle timeout): it then votes NO.
      if (now - t.opened > options_.active_timeout) a.core->Set(g, BS::kAborted);
      continue;
    }
    if (options_.mutation == ParticipantMutation::kAbortPreparedOnTimeout &&
        b->state == BS::kPrepared && silent > options_.inquire_after) {
      a.core->Set(g, BS::kAborted);  // FORBIDDEN (DESIGN §3-§4): the self-test's mutation
      continue;
    }
    if (b->state == BS::kPrecommitted && silent > options_.self_commit_after) {
      ++stats_.self_commits;
      trace_->Log("%s %s: PRECOMMITTED and the coordinator silent: commits by itself",
                  a.name.c_str(), g.c_str());
      a.core->Set(g, BS::kCommitted);  // DESIGN §4
      continue;
    }
    if (silent > options_.inquire_after && now - t.last_inquiry > options_.inquire_every) {
      t.last_inquiry = now;
      Inquire(ai, g);
    }
    if (t.round.phase != Round::Phase::kNone && now - t.round.started > options_.round_timeout) {
      t.round.phase = Round::Phase::kNone;  // a peer did not answer: stay, retry later
    }
    if (silent > options_.terminate_after && b->state != BS::kPrecommitted &&
        t.round.phase == Round::Phase::kNone && now - t.last_round > options_.round_timeout) {
      StartRound(ai, g);
    }
  }
}

void TxnWorkload::Inquire(size_t ai, const std::string& g) {
  Agent& a = agents_[ai];
  NodeId node = PickNode(a.hint);
  ++stats_.inquiries;
  txn::RequestToken tok = next_token_++;
  inquiry_tokens_[tok] = InquiryToken{ai, a.boot, g};
  txn::BranchRef asker{a.name, "b-" + a.name};
  network_->Post(a.ep, node, [this, ai, node, tok, g, asker, boot = a.boot]() {
    SimNode* n = nodes_(node);
    if (!n->up()) return;
    if (!n->engine()->is_leader()) {  // followers answer NOT_LEADER themselves
      inquiry_tokens_.erase(tok);
      NodeId hint = n->raft()->leader();
      network_->Post(node, agents_[ai].ep, [this, ai, boot, g, hint]() {
        OnInquiryReply(ai, boot, g, txn::InquiryStatus::kNotLeader, hint);
      });
      return;
    }
    n->WithEngine([&](txn::ProtocolEngine& e) { e.Inquire(tok, g, asker); });
  });
}

void TxnWorkload::OnInquiryReply(size_t ai, uint64_t boot, const std::string& g,
                                 txn::InquiryStatus s, NodeId hint) {
  Agent& a = agents_[ai];
  if (!a.up || a.boot != boot) return;
  if (s == txn::InquiryStatus::kNotLeader) {
    a.hint = hint;
    return;
  }
  auto t = a.timers.find(g);
  if (t != a.timers.end()) t->second.last_coord = queue_->now();
  if (s == txn::InquiryStatus::kCommitted) a.core->Decide(g, txn::Outcome::kCommit);
  if (s == txn::InquiryStatus::kAborted) a.core->Decide(g, txn::Outcome::kAbort);
}

std::vector<std::string> TxnWorkload::PeersOf(size_t ai, const std::string& g) {
  std::vector<std::string> peers;
  SimBranch* b = agents_[ai].core->Find(g);
  if (b == nullptr) return peers;
  for (const txn::PeerBranch& p : b->peers) {
    if (p.participant != agents_[ai].name) peers.push_back(p.participant);
  }
  return peers;
}

// Cooperative termination (DESIGN §3) and the 3PC termination (DESIGN §4), by messages.
void TxnWorkload::StartRound(size_t ai, const std::string& g) {
  Agent& a = agents_[ai];
  Timers& t = a.timers[g];
  std::vector<std::string> peers = PeersOf(ai, g);
  t.last_round = queue_->now();
  if (peers.empty()) return;
  t.round.phase = Round::Phase::kQuery;
  t.round.id = ++round_seq_;
  t.round.started = queue_->now();
  t.round.waiting = std::set<std::string>(peers.begin(), peers.end());
  uint64_t round = t.round.id, boot = a.boot;
  for (const std::string& peer : peers) {
    Agent& q = AgentByName(peer);
    network_->Post(a.ep, q.ep, [this, ai, boot, g, round, peer]() {
      Agent& q = AgentByName(peer);
      if (!q.up) return;
      bool read_only = false;
      BS s = q.core->AbortIfUnvoted(g, &read_only);
      network_->Post(q.ep, agents_[ai].ep, [this, ai, boot, g, round, peer, s, read_only]() {
        OnStatusReply(ai, boot, g, round, peer, s, read_only);
      });
    });
  }
}

void TxnWorkload::TerminateWith(size_t ai, const std::string& g, txn::Outcome o, const char* why) {
  Agent& a = agents_[ai];
  SimBranch* b = a.core->Find(g);
  if (b == nullptr || !ParticipantCore::InDoubt(b->state)) return;
  trace_->Log("%s %s: termination %s (%s)", a.name.c_str(), g.c_str(), txn::OutcomeName(o), why);
  (o == txn::Outcome::kCommit ? stats_.terminations_commit : stats_.terminations_abort)++;
  a.core->Decide(g, o);
}

void TxnWorkload::OnStatusReply(size_t ai, uint64_t boot, const std::string& g, uint64_t round,
                                const std::string& peer, BS s, bool read_only) {
  Agent& a = agents_[ai];
  if (!a.up || a.boot != boot) return;
  auto it = a.timers.find(g);
  if (it == a.timers.end()) return;
  Round& r = it->second.round;
  if (r.id != round || r.phase != Round::Phase::kQuery) return;
  SimBranch* b = a.core->Find(g);
  if (b == nullptr || !ParticipantCore::InDoubt(b->state)) return;
  const bool three = b->protocol == txn::Protocol::k3PC;
  r.waiting.erase(peer);
  // A read-only peer finished with nothing to commit: no evidence either way.
  if (!read_only) {
    if (s == BS::kCommitted || (three && s == BS::kPrecommitted)) {
      r.phase = Round::Phase::kNone;
      return TerminateWith(ai, g, txn::Outcome::kCommit, "a peer committed or precommitted");
    }
    if (s == BS::kAborted) {
      r.phase = Round::Phase::kNone;
      return TerminateWith(ai, g, txn::Outcome::kAbort, "a peer aborted (or had not voted)");
    }
  }
  if (!r.waiting.empty()) return;
  r.phase = Round::Phase::kNone;
  // 2PC: every peer prepared and uncertain: stay prepared and keep asking.
  if (three) StartFencing(ai, g);
}

void TxnWorkload::StartFencing(size_t ai, const std::string& g) {
  Agent& a = agents_[ai];
  SimBranch* b = a.core->Find(g);
  if (b->state == BS::kPrepared) a.core->Fence(g);
  if (b->state != BS::kFenced) return;
  Timers& t = a.timers[g];
  t.round.phase = Round::Phase::kFence;
  t.round.id = ++round_seq_;
  t.round.started = queue_->now();
  std::vector<std::string> peers = PeersOf(ai, g);
  t.round.waiting = std::set<std::string>(peers.begin(), peers.end());
  uint64_t round = t.round.id, boot = a.boot;
  for (const std::string& peer : peers) {
    Agent& q = AgentByName(peer);
    network_->Post(a.ep, q.ep, [this, ai, boot, g, round, peer]() {
      Agent& q = AgentByName(peer);
      if (!q.up) return;
      BS before = q.core->Find(g) ? q.core->Find(g)->state : BS::kNone;
      BS s = q.core->Fence(g);
      if (before == BS::kPrepared && s == BS::kFenced) ++stats_.fenced_by_peers;
      bool read_only = q.core->Find(g) && q.core->Find(g)->read_only;
      network_->Post(q.ep, agents_[ai].ep, [this, ai, boot, g, round, peer, s, read_only]() {
        OnFenceReply(ai, boot, g, round, peer, s, read_only);
      });
    });
  }
}

void TxnWorkload::OnFenceReply(size_t ai, uint64_t boot, const std::string& g, uint64_t round,
                               const std::string& peer, BS s, bool read_only) {
  Agent& a = agents_[ai];
  if (!a.up || a.boot != boot) return;
  auto it = a.timers.find(g);
  if (it == a.timers.end()) return;
  Round& r = it->second.round;
  if (r.id != round || r.phase != Round::Phase::kFence) return;
  if (!read_only) {
    if (s == BS::kCommitted || s == BS::kPrecommitted) {
      r.phase = Round::Phase::kNone;
      return TerminateWith(ai, g, txn::Outcome::kCommit, "a peer refused the fence");
    }
    if (s == BS::kAborted) {
      r.phase = Round::Phase::kNone;
      return TerminateWith(ai, g, txn::Outcome::kAbort, "a peer aborted");
    }
    if (s != BS::kFenced) return;  // no record: stay (the round times out)
  }
  r.waiting.erase(peer);
  if (!r.waiting.empty()) return;
  r.phase = Round::Phase::kNone;
  SimBranch* b = a.core->Find(g);
  if (b == nullptr || b->state != BS::kFenced) return;
  // Every branch is FENCED: none can become PRECOMMITTED, so no COMMIT can be decided.
  TerminateWith(ai, g, txn::Outcome::kAbort, "every branch fenced");
  for (const std::string& peer_name : PeersOf(ai, g)) {
    Agent& q = AgentByName(peer_name);
    network_->Post(a.ep, q.ep, [this, g, peer_name]() {
      Agent& q = AgentByName(peer_name);
      if (q.up) q.core->Decide(g, txn::Outcome::kAbort);
    });
  }
}

void TxnWorkload::OnBranchChange(size_t ai, const std::string& g, BS from, BS to) {
  Agent& a = agents_[ai];
  if (ParticipantCore::Final(from)) {
    checker_->Fail("atomicity: %s moved %s from %s to %s", a.name.c_str(), g.c_str(),
                   BranchStateName(from), BranchStateName(to));
    return;
  }
  trace_->Log("%s %s: %s -> %s", a.name.c_str(), g.c_str(), BranchStateName(from),
              BranchStateName(to));
  const SimBranch* b = a.core->Find(g);
  if (ParticipantCore::Final(to)) {
    a.timers.erase(g);
    if (b != nullptr && !b->read_only) {
      Counts& c = counts_[g];
      if (to == BS::kCommitted) {
        ++c.committed;
        c.committed_on = a.name;
        ++stats_.branches_committed;
      } else {
        ++c.aborted;
        c.aborted_on = a.name;
        ++stats_.branches_aborted;
      }
    }
    CheckGtid(g);
  } else if (ParticipantCore::InDoubt(to) && a.timers.count(g) == 0) {
    a.timers[g].last_coord = queue_->now();
  }
}

// ---- checks ----

void TxnWorkload::CheckGtid(const std::string& g) {
  if (checker_->failed() || g.empty()) return;
  auto it = counts_.find(g);
  Counts none;
  const Counts& c = it == counts_.end() ? none : it->second;
  if (c.committed > 0 && c.aborted > 0) {
    checker_->Fail("atomicity: %s COMMITTED on %s and ABORTED on %s", g.c_str(),
                   c.committed_on.c_str(), c.aborted_on.c_str());
    return;
  }
  const FirstDecision* d = checker_->Decided(g);
  if (d != nullptr && d->outcome == txn::Outcome::kCommit && c.aborted > 0) {
    checker_->Fail("atomicity: the log decided COMMIT for %s (i%llu) but %s ABORTED it", g.c_str(),
                   U(d->index), c.aborted_on.c_str());
    return;
  }
  if (d != nullptr && d->outcome == txn::Outcome::kAbort && c.committed > 0) {
    checker_->Fail("atomicity: the log decided ABORT for %s (i%llu) but %s COMMITTED it", g.c_str(),
                   U(d->index), c.committed_on.c_str());
    return;
  }
  auto ci = client_of_.find(g);
  if (ci == client_of_.end()) return;
  const Client& cl = clients_[ci->second];
  if (cl.answer == txn::ClientOutcome::kCommitted &&
      (c.aborted > 0 || (d && d->outcome == txn::Outcome::kAbort))) {
    checker_->Fail(
        "atomicity: the client was told COMMITTED for %s but %s", g.c_str(),
        c.aborted > 0 ? ("it is ABORTED on " + c.aborted_on).c_str() : "the log decided ABORT");
    return;
  }
  if (cl.answer == txn::ClientOutcome::kAborted &&
      (c.committed > 0 || (d && d->outcome == txn::Outcome::kCommit))) {
    checker_->Fail("atomicity: the client was told ABORTED for %s but %s", g.c_str(),
                   c.committed > 0 ? ("it is COMMITTED on " + c.committed_on).c_str()
                                   : "the log decided COMMIT");
  }
}

void TxnWorkload::Check() {
  for (const Client& c : clients_) CheckGtid(c.gtid);
}

// ---- faults ----

void TxnWorkload::Fault() {
  if (healing_) return;
  if (rng_->Chance(options_.agent_crash)) {
    size_t a = rng_->Range(0, agents_.size() - 1);
    if (agents_[a].up) CrashAgent(a);
  }
  if (rng_->Chance(options_.agent_partition)) PartitionAgent();
  if (rng_->Chance(options_.isolate_group)) IsolateGroup();
}

void TxnWorkload::CrashAgent(size_t ai) {
  Agent& a = agents_[ai];
  ++stats_.agent_crashes;
  trace_->Log("%s crashes (ACTIVE branches lost)", a.name.c_str());
  a.up = false;
  ++a.boot;
  a.timers.clear();
  a.core->Crash();
  queue_->After(rng_->RangeSigned(1 * kMillis, options_.max_agent_downtime),
                [this, ai]() { RestartAgent(ai); });
}

void TxnWorkload::RestartAgent(size_t ai) {
  Agent& a = agents_[ai];
  if (a.up) return;
  a.up = true;
  trace_->Log("%s restarts", a.name.c_str());
  // Every branch on disk that is in doubt is re-established, then resolved.
  for (const auto& [g, b] : a.core->branches()) {
    if (ParticipantCore::InDoubt(b.state)) a.timers[g].last_coord = queue_->now();
  }
}

void TxnWorkload::PartitionAgent() {
  if (network_->txn_partitioned()) return;
  ++stats_.agent_partitions;
  Agent& a = agents_[rng_->Range(0, agents_.size() - 1)];
  int mode = static_cast<int>(rng_->Range(0, 2));  // 0 coordinators, 1 peers, 2 both
  if (mode != 1) {
    for (NodeId n : node_ids_) {
      network_->CutTxn(a.ep, n);
      network_->CutTxn(n, a.ep);
    }
  }
  if (mode != 0) {
    for (const Agent& q : agents_) {
      if (q.ep == a.ep) continue;
      network_->CutTxn(a.ep, q.ep);
      network_->CutTxn(q.ep, a.ep);
    }
  }
  trace_->Log("partition: %s cut from %s", a.name.c_str(),
              mode == 0   ? "the coordinators"
              : mode == 1 ? "its peers"
                          : "everyone");
  uint64_t gen = ++partition_gen_;
  queue_->After(rng_->RangeSigned(10 * kMillis, options_.max_agent_partition), [this, gen]() {
    if (gen != partition_gen_ || healing_) return;
    network_->HealTxn();
    trace_->Log("participant partition healed");
  });
}

void TxnWorkload::IsolateGroup() {
  network_->HealTxn();
  ++stats_.group_isolations;
  for (const Agent& a : agents_) {
    for (NodeId n : node_ids_) {
      network_->CutTxn(a.ep, n);
      network_->CutTxn(n, a.ep);
    }
  }
  trace_->Log("outage: the coordinator group is cut from every participant");
  uint64_t gen = ++partition_gen_;
  queue_->After(rng_->RangeSigned(300 * kMillis, 4 * kSeconds), [this, gen]() {
    if (gen != partition_gen_ || healing_) return;
    network_->HealTxn();
    trace_->Log("outage over: the coordinator group reaches the participants again");
  });
}

void TxnWorkload::Heal() {
  healing_ = true;
  arriving_ = false;
  ++partition_gen_;
  network_->HealTxn();
  for (size_t a = 0; a < agents_.size(); ++a) RestartAgent(a);
}

bool TxnWorkload::Settled(const SimNode* leader) const { return DescribeUnsettled(leader).empty(); }

std::string TxnWorkload::DescribeUnsettled(const SimNode* leader) const {
  if (registered_.size() != agents_.size()) return "participants not registered";
  for (const Agent& a : agents_) {
    if (!a.up) return a.name + " down";
    for (const auto& [g, b] : a.core->branches()) {
      if (!ParticipantCore::Final(b.state)) {
        return a.name + " holds " + g + " " + BranchStateName(b.state);
      }
    }
  }
  for (const Client& c : clients_) {
    if (c.stage != Client::Stage::kDone && c.stage != Client::Stage::kVanished) {
      return "client of " + (c.gtid.empty() ? std::string("(begin)") : c.gtid) + " not answered";
    }
  }
  if (leader == nullptr || leader->engine() == nullptr) return "no leader";
  if (!leader->engine()->is_leader()) return "the leader's engine does not lead";
  std::vector<txn::TxnView> held = leader->engine()->List();
  if (!held.empty()) {
    return "the leader's engine holds " + std::to_string(held.size()) + " transactions, e.g. " +
           held.front().gtid + " " + held.front().phase;
  }
  for (const auto& [g, rec] : leader->table().records()) {
    if (!rec.decision) return "the table holds an undecided intent for " + g;
  }
  return "";
}

}  // namespace verdict::sim
