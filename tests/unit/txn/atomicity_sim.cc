#include "atomicity_sim.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <optional>

#include "tests/sim/participant_core.h"

namespace verdict::coordinator::txn::sim {
namespace {

using BS = BranchStatus;
using PC = ParticipantCode;

// The participants' rules live in tests/sim/participant_core.h (shared with verdict-sim).
using ::verdict::sim::LocalChoice;
using ::verdict::sim::ParticipantCore;
using ::verdict::sim::SimBranch;

struct Envelope {
  enum class Kind { kToParticipant, kReply, kInquiryAnswer } kind = Kind::kToParticipant;
  int node = 0;  // kToParticipant: sender; kReply: receiver
  ParticipantMessage msg;
  ParticipantReply reply;
  std::string participant, gtid;  // kInquiryAnswer
  InquiryStatus status = InquiryStatus::kUnknown;
};

struct Node {
  std::unique_ptr<TxnTable> table;
  std::unique_ptr<ProtocolEngine> engine;
  size_t applied = 0;  // entries of the committed log applied here
};

struct ClientTxn {
  std::vector<std::string> parts;
  std::optional<ClientOutcome> answer;
};

class World {
 public:
  explicit World(const SimOptions& o) : o_(o), rng_(o.seed), loss_(o.loss), dup_(o.duplicate) {
    for (int i = 0; i < o.nodes; ++i) {
      Node n;
      n.table = std::make_unique<TxnTable>();
      EngineConfig c;
      c.node_id = static_cast<uint64_t>(i + 1);
      c.vote_timeout_ms = 200;
      c.retry_initial_ms = 10;
      c.retry_max_ms = 100;
      c.proposal_retry_ms = 300;
      c.adopted_precommit_fence_ms = 500;
      c.end_batch_max = 4;
      c.end_batch_delay_ms = 10;
      n.engine = std::make_unique<ProtocolEngine>(c, *n.table);
      nodes_.push_back(std::move(n));
    }
    for (int p = 0; p < o.participants; ++p) {
      std::string name = "p" + std::to_string(p);
      names_.push_back(name);
      cores_.emplace(name,
                     ParticipantCore(name, [this, name](const std::string& g, BS from, BS to) {
                       OnBranchChange(name, g, from, to);
                     }));
      committed_.push_back(EncodeCommand(RegisterParticipantCmd{name, name + ":1", "sim"}));
      oracle_.ApplyCommand(RegisterParticipantCmd{name, name + ":1", "sim"}, committed_.size(), 1);
    }
    term_ = 1;
    leader_ = 0;
    nodes_[0].engine->OnLeadershipChanged(true, term_);
    Drain(0);
  }

  SimResult Run() {
    for (int step = 0; step < o_.steps && result_.ok; ++step) {
      RandomStep();
      Check();
    }
    if (result_.ok) Heal();
    return result_;
  }

 private:
  // ---- the world's moves ----

  void RandomStep() {
    int r = Rand(100);
    if (r < 45 && !net_.empty()) return DeliverOne();
    if (r < 55) return AdvanceTime(1 + Rand(40));
    if (r < 63) return CommitEntries();
    if (r < 75) return ApplyOne(Rand(o_.nodes));
    if (r < 82) return StartClientTxn();
    if (r < 93) return ParticipantTimeout();
    if (r < 95 && o_.leader_changes) return ChangeLeader();
    if (r < 97) return NotifyStale();
    AdvanceTime(1);
  }

  void DeliverOne() {
    size_t i = Rand(net_.size());
    Envelope e = net_[i];
    double x = Uniform();
    if (x < loss_) {
      net_.erase(net_.begin() + i);
      return;
    }
    if (x >= loss_ + dup_) net_.erase(net_.begin() + i);  // else: duplicated, stays
    ++result_.messages;
    switch (e.kind) {
      case Envelope::Kind::kToParticipant:
        return ToParticipant(e);
      case Envelope::Kind::kReply:
        nodes_[e.node].engine->OnReply(e.reply);
        return Drain(e.node);
      case Envelope::Kind::kInquiryAnswer: {
        SimBranch* b = FindBranch(e.participant, e.gtid);
        if (b == nullptr || !InDoubt(b->state)) return;
        if (e.status == InquiryStatus::kCommitted) Set(e.participant, e.gtid, BS::kCommitted);
        if (e.status == InquiryStatus::kAborted) Set(e.participant, e.gtid, BS::kAborted);
        return;
      }
    }
  }

  void AdvanceTime(int64_t ms) {
    now_ += ms;
    for (int i = 0; i < o_.nodes; ++i) {
      nodes_[i].engine->Tick(now_);
      Drain(i);
    }
  }

  void CommitEntries() {
    size_t n = uncommitted_.empty() ? 0 : 1 + Rand(uncommitted_.size());
    for (size_t i = 0; i < n; ++i) {
      committed_.push_back(uncommitted_.front());
      uncommitted_.erase(uncommitted_.begin());
      TxnCommand cmd;
      if (!DecodeCommand(committed_.back(), &cmd).ok()) return Fail("undecodable entry");
      oracle_.ApplyCommand(cmd, committed_.size(), term_);
    }
  }

  void ApplyOne(int node) {
    Node& n = nodes_[node];
    if (n.applied >= committed_.size()) return;
    raft::Entry e{term_, n.applied + 1, raft::EntryType::kNormal, committed_[n.applied]};
    ApplyResult r;
    if (!n.table->Apply(e, &r).ok()) return Fail("apply failed");
    ++n.applied;
    TxnCommand cmd;
    DecodeCommand(e.data, &cmd);
    n.engine->OnApplied(cmd, r);
    Drain(node);
  }

  void ChangeLeader() {
    int old = leader_;
    ++term_;
    leader_ = Rand(o_.nodes);
    ++result_.leader_changes;
    uncommitted_.resize(Rand(uncommitted_.size() + 1));  // a prefix survives in the new log
    if (old != leader_ && Rand(2) == 0) {
      nodes_[old].engine->OnLeadershipChanged(false, term_);
      Drain(old);
    }
    nodes_[leader_].engine->OnLeadershipChanged(true, term_);
    Drain(leader_);
    Log("leader -> n%d term %llu (kept %zu uncommitted)", leader_ + 1,
        static_cast<unsigned long long>(term_), uncommitted_.size());
  }

  void NotifyStale() {
    for (int i = 0; i < o_.nodes; ++i) {
      if (i != leader_ && nodes_[i].engine->is_leader()) {
        nodes_[i].engine->OnLeadershipChanged(false, term_);
        Drain(i);
      }
    }
  }

  void StartClientTxn() {
    if (static_cast<int>(clients_.size()) >= o_.max_txns) return;
    // Clients talk to whichever node believes it leads (possibly a stale one).
    std::vector<int> leaders;
    for (int i = 0; i < o_.nodes; ++i) {
      if (nodes_[i].engine->is_leader()) leaders.push_back(i);
    }
    if (leaders.empty()) return;
    int node = leaders[Rand(leaders.size())];
    ProtocolEngine& e = *nodes_[node].engine;
    Protocol proto = Rand(2) ? Protocol::k3PC : Protocol::k2PC;
    std::string g;
    if (!e.Begin(proto, 100 + Rand(1500), &g).ok()) return;
    ClientTxn& c = clients_[g];
    std::vector<std::string> parts = names_;
    std::shuffle(parts.begin(), parts.end(), rng_);
    parts.resize(1 + Rand(parts.size()));
    for (const std::string& p : parts) {
      if (!e.RegisterBranch(g, p, "b-" + p, false).ok()) continue;
      cores_.at(p).Open(g, proto, "b-" + p);
      c.parts.push_back(p);
    }
    RequestToken tok = next_token_++;
    client_tokens_[tok] = g;
    int r = Rand(10);
    if (r < 8) {
      e.Commit(tok, g);
    } else if (r < 9) {
      e.Abort(tok, g);
    }  // else: the client vanishes; the deadline cleans up
    Drain(node);
    Log("n%d begins %s %s on %zu branches", node + 1, g.c_str(), ProtocolName(proto),
        c.parts.size());
  }

  // A participant-side timer fires for a random branch.
  void ParticipantTimeout() {
    std::vector<std::pair<std::string, std::string>> live;
    for (auto& [p, core] : cores_) {
      for (auto& [g, b] : core.branches()) {
        if (b.state == BS::kActive || InDoubt(b.state)) live.emplace_back(p, g);
      }
    }
    if (live.empty()) return;
    auto [p, g] = live[Rand(live.size())];
    SimBranch& b = *FindBranch(p, g);
    if (b.state == BS::kActive) {
      if (Rand(4) == 0) Set(p, g, BS::kAborted);  // idle timeout / deadline before the vote
      return;
    }
    if (b.state == BS::kPrecommitted && b.protocol == Protocol::k3PC) {
      Set(p, g, BS::kCommitted);  // a PRECOMMITTED branch commits by itself (DESIGN §4)
      return;
    }
    if (Rand(2) == 0) return Inquire(p, g);
    Terminate(p, g);
  }

  void Inquire(const std::string& p, const std::string& g) {
    int node = Rand(2) ? leader_ : static_cast<int>(Rand(o_.nodes));
    RequestToken tok = next_token_++;
    inquiry_tokens_[tok] = {p, g};
    nodes_[node].engine->Inquire(tok, g, BranchRef{p, "b-" + p});
    Drain(node);
  }

  // Cooperative termination, one peer at a time (DESIGN §3-§4; the Python model's moves).
  void Terminate(const std::string& p, const std::string& g) {
    SimBranch& self = *FindBranch(p, g);
    std::set<std::string>& fenced_by_me = fenced_by_me_[{p, g}];
    std::vector<std::string> peers;
    for (const PeerBranch& pb : self.peers) {
      if (pb.participant == p) continue;
      // A read-only peer finished with nothing to commit: it is no evidence either way.
      // (The real agent reports it COMMITTED; see docs/transactions.md, "read-only".)
      SimBranch* q = FindBranch(pb.participant, g);
      if (q && q->read_only) continue;
      peers.push_back(pb.participant);
    }
    if (peers.empty()) return;
    const bool three = self.protocol == Protocol::k3PC;
    const std::string& q = peers[Rand(peers.size())];
    SimBranch* peer = FindBranch(q, g);
    BS qs = peer ? peer->state : BS::kNone;
    if (qs == BS::kCommitted || (three && qs == BS::kPrecommitted)) {
      Set(p, g, BS::kCommitted);
    } else if (qs == BS::kAborted) {
      Set(p, g, BS::kAborted);
    } else if (qs == BS::kActive || qs == BS::kNone) {
      Set(q, g, BS::kAborted);  // AbortIfUnvoted: a tombstone if it had no record
      Set(p, g, BS::kAborted);
    } else if (three && (qs == BS::kPrepared || qs == BS::kFenced)) {
      Set(q, g, BS::kFenced);
      fenced_by_me.insert(q);
      if (self.state == BS::kPrepared) Set(p, g, BS::kFenced);
      bool all = self.state == BS::kFenced;
      for (const std::string& x : peers) all = all && fenced_by_me.count(x);
      if (all) Set(p, g, BS::kAborted);
    }
    // 2PC with every peer prepared: stay prepared.
  }

  // ---- participants ----

  void ToParticipant(const Envelope& e) {
    const ParticipantMessage& m = e.msg;
    ParticipantCore& core = cores_.at(m.to.participant);
    // The local database's choices for an ACTIVE branch: NO 10%, READ_ONLY 10%; a one-phase
    // commit fails 20% of the time.
    LocalChoice choice;
    int v = Rand(10);
    choice.vote = v == 0 ? Vote::kNo : v == 1 ? Vote::kReadOnly : Vote::kYes;
    choice.one_phase_ok = Rand(5) != 0;
    Envelope back;
    back.kind = Envelope::Kind::kReply;
    back.node = e.node;
    back.reply = core.Handle(m, choice);
    net_.push_back(std::move(back));
  }

  static bool InDoubt(BS s) { return ParticipantCore::InDoubt(s); }

  SimBranch* FindBranch(const std::string& p, const std::string& g) {
    auto it = cores_.find(p);
    return it == cores_.end() ? nullptr : it->second.Find(g);
  }

  void Set(const std::string& p, const std::string& g, BS s) { cores_.at(p).Set(g, s); }

  void OnBranchChange(const std::string& p, const std::string& g, BS from, BS to) {
    // Durable participant states never leave COMMITTED/ABORTED.
    if (ParticipantCore::Final(from)) {
      return Fail("participant " + p + " moved " + g + " out of a final state");
    }
    Log("  %s %s: %s -> %s", p.c_str(), g.c_str(), ::verdict::sim::BranchStateName(from),
        ::verdict::sim::BranchStateName(to));
    Check(g);
  }

  // ---- coordinator output ----

  void Drain(int node) {
    EngineOutput out = nodes_[node].engine->TakeOutput();
    for (ParticipantMessage& m : out.messages) {
      Envelope e;
      e.kind = Envelope::Kind::kToParticipant;
      e.node = node;
      e.msg = std::move(m);
      net_.push_back(std::move(e));
    }
    ProtocolEngine& eng = *nodes_[node].engine;
    for (std::string& p : out.proposals) {
      // Only the real leader's proposals enter the log; a stale leader's are lost.
      if (node == leader_ && eng.is_leader() && eng.term() == term_) {
        uncommitted_.push_back(std::move(p));
      }
    }
    for (const ClientReply& r : out.client_replies) {
      auto it = client_tokens_.find(r.token);
      if (it == client_tokens_.end()) continue;
      ClientTxn& c = clients_[it->second];
      if (r.outcome == ClientOutcome::kCommitted || r.outcome == ClientOutcome::kAborted) {
        if (c.answer && *c.answer != r.outcome) Fail("client told both outcomes: " + r.gtid);
        c.answer = r.outcome;
        (r.outcome == ClientOutcome::kCommitted ? result_.committed : result_.aborted)++;
        Check(r.gtid);
      }
    }
    for (const InquiryReply& r : out.inquiry_replies) {
      auto it = inquiry_tokens_.find(r.token);
      if (it == inquiry_tokens_.end()) continue;
      Envelope e;
      e.kind = Envelope::Kind::kInquiryAnswer;
      e.participant = it->second.first;
      e.gtid = it->second.second;
      e.status = r.status;
      net_.push_back(std::move(e));
    }
    if (!out.hazards.empty()) {
      Fail(std::string("hazard: ") + HazardKindName(out.hazards[0].kind) + " " +
           out.hazards[0].gtid);
    }
  }

  // ---- checks ----

  void Check() {
    for (const auto& [g, c] : clients_) Check(g);
  }

  void Check(const std::string& g) {
    if (!result_.ok) return;
    bool committed = false, aborted = false;
    for (auto& [p, core] : cores_) {
      const SimBranch* b = core.Find(g);
      if (b == nullptr || b->read_only) continue;
      committed |= b->state == BS::kCommitted;
      aborted |= b->state == BS::kAborted;
    }
    if (committed && aborted) return Fail("atomicity: " + g + " committed AND aborted");
    GtidLookup l = oracle_.Find(g);
    std::optional<Outcome> log;
    if (l.state == GtidState::kEndedCommit) log = Outcome::kCommit;
    if (l.state == GtidState::kDecided) log = l.record->decision;
    if (log == Outcome::kCommit && aborted) return Fail("log COMMIT but a branch aborted: " + g);
    if (log == Outcome::kAbort && committed) return Fail("log ABORT but a branch committed: " + g);
    auto c = clients_.find(g);
    if (c != clients_.end() && c->second.answer) {
      if (*c->second.answer == ClientOutcome::kCommitted && aborted) {
        return Fail("client told COMMITTED but a branch aborted: " + g);
      }
      if (*c->second.answer == ClientOutcome::kAborted && committed) {
        return Fail("client told ABORTED but a branch committed: " + g);
      }
    }
  }

  // Faults stop; everyone is told who leads; messages flow; timers fire.
  void Heal() {
    loss_ = dup_ = 0;
    NotifyStale();
    nodes_[leader_].engine->OnLeadershipChanged(true, term_);
    Drain(leader_);
    for (int round = 0; round < 400 && result_.ok; ++round) {
      while (!net_.empty() && result_.ok) DeliverOne();
      CommitEntries();
      while (!uncommitted_.empty()) CommitEntries();
      for (int i = 0; i < o_.nodes; ++i) {
        while (nodes_[i].applied < committed_.size()) ApplyOne(i);
      }
      AdvanceTime(50);
      std::vector<std::pair<std::string, std::string>> all;
      for (auto& [p, core] : cores_) {
        for (auto& [g, b] : core.branches()) all.emplace_back(p, g);
      }
      for (auto& [p, g] : all) {
        {
          const SimBranch& b = *FindBranch(p, g);
          if (b.state == BS::kPrecommitted && b.protocol == Protocol::k3PC && round > 20) {
            Set(p, g, BS::kCommitted);
          } else if (InDoubt(b.state) && round % 5 == 0) {
            Inquire(p, g);
          } else if (b.state == BS::kActive && round > 40) {
            Set(p, g, BS::kAborted);
          }
        }
      }
    }
    size_t in_doubt = 0;
    for (auto& [p, core] : cores_) {
      for (auto& [g, b] : core.branches()) in_doubt += InDoubt(b.state) ? 1 : 0;
    }
    result_.in_doubt_after_heal = in_doubt;
    if (result_.ok && in_doubt > 0) {
      Fail("liveness: " + std::to_string(in_doubt) + " branches in doubt after healing");
    }
  }

  void Fail(const std::string& what) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.failure = "seed " + std::to_string(o_.seed) + ": " + what;
  }

  void Log(const char* fmt, ...) {
    if (!o_.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "[t=%lld] ", static_cast<long long>(now_));
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
  }

  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  SimOptions o_;
  std::mt19937_64 rng_;
  double loss_, dup_;
  SimResult result_;
  std::vector<Node> nodes_;
  std::vector<std::string> names_;
  uint64_t term_ = 1;
  int leader_ = 0;
  int64_t now_ = 1'000;
  std::vector<std::string> committed_;    // the committed log (after the registrations)
  std::vector<std::string> uncommitted_;  // the leader's uncommitted suffix
  TxnTable oracle_;                       // the committed log, applied at once
  std::vector<Envelope> net_;
  std::map<std::string, ParticipantCore> cores_;  // by participant name
  // 3PC termination: the peers (participant, gtid) has fenced.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> fenced_by_me_;
  std::map<std::string, ClientTxn> clients_;
  std::map<RequestToken, std::string> client_tokens_;
  std::map<RequestToken, std::pair<std::string, std::string>> inquiry_tokens_;
  RequestToken next_token_ = 1;
};

}  // namespace

SimResult RunAtomicitySim(const SimOptions& options) {
  World w(options);
  return w.Run();
}

}  // namespace verdict::coordinator::txn::sim
