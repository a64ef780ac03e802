#include "tests/unit/raft/raft_cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace verdict::coordinator::raft {

void PrintTo(const Entry& e, std::ostream* os) {
  *os << "{index=" << e.index << " term=" << e.term << " type=" << static_cast<int>(e.type)
      << " data='" << e.data << "'}";
}

void PrintTo(const Membership& m, std::ostream* os) {
  *os << "{";
  for (const auto& [id, address] : m.voters) *os << " " << id;
  *os << " }";
}

void PrintTo(Role r, std::ostream* os) { *os << RoleName(r); }

}  // namespace verdict::coordinator::raft

namespace verdict::coordinator::raft::testing {

namespace {

// Enough deliveries in one DeliverAll() to mean a livelock, not a busy cluster.
constexpr int kMaxDeliveries = 2'000'000;
// Enough Readys in a row from one node to mean the core never runs dry.
constexpr int kMaxReadysPerProcess = 10'000;

std::string Describe(const Message& m) {
  return std::string(MessageTypeName(m.type)) + " " + std::to_string(m.from) + "->" +
         std::to_string(m.to) + " term=" + std::to_string(m.term) +
         " index=" + std::to_string(m.index) + " reject=" + std::to_string(m.reject);
}

std::string Describe(const Entry& e) {
  return "(index=" + std::to_string(e.index) + " term=" + std::to_string(e.term) +
         " type=" + std::to_string(static_cast<int>(e.type)) + " data='" + e.data + "')";
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU64(const std::string& in, size_t* pos, uint64_t* v) {
  if (in.size() - *pos < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) {
    *v |= static_cast<uint64_t>(static_cast<unsigned char>(in[*pos + i])) << (8 * i);
  }
  *pos += 8;
  return true;
}

}  // namespace

std::string EncodeAppliedLog(const std::vector<Entry>& entries, Index index) {
  std::string out;
  PutU64(&out, index);
  for (Index i = 1; i <= index; ++i) {
    const Entry& e = entries[i - 1];
    PutU64(&out, e.term);
    PutU64(&out, e.index);
    PutU64(&out, static_cast<uint64_t>(e.type));
    PutU64(&out, e.data.size());
    out += e.data;
  }
  return out;
}

bool DecodeAppliedLog(const std::string& data, std::vector<Entry>* entries) {
  size_t pos = 0;
  uint64_t n;
  if (!GetU64(data, &pos, &n)) return false;
  entries->clear();
  for (uint64_t i = 0; i < n; ++i) {
    Entry e;
    uint64_t type, size;
    if (!GetU64(data, &pos, &e.term) || !GetU64(data, &pos, &e.index) ||
        !GetU64(data, &pos, &type) || !GetU64(data, &pos, &size) || data.size() - pos < size) {
      return false;
    }
    e.type = static_cast<EntryType>(type);
    e.data = data.substr(pos, size);
    pos += size;
    entries->push_back(std::move(e));
  }
  return pos == data.size();
}

// ---- Disk ----

Index Disk::LastIndex() const { return entries.empty() ? SnapshotIndex() : entries.back().index; }

std::optional<Term> Disk::TermAt(Index index) const {
  if (snapshot && index == snapshot->meta.index) return snapshot->meta.term;
  if (entries.empty() || index < entries.front().index || index > entries.back().index) {
    return std::nullopt;
  }
  return entries[index - entries.front().index].term;
}

RestoredState Disk::ToRestoredState() const {
  RestoredState r;
  r.hard_state = hard_state;
  r.snapshot = snapshot;
  r.entries = entries;
  return r;
}

// ---- nodes ----

struct RaftCluster::PendingWrite {
  std::optional<HardState> hard_state;
  std::vector<Entry> entries;
  std::optional<Snapshot> snapshot;
  std::vector<Message> messages_after_persist;
  std::vector<Entry> committed_entries;
  std::vector<ReadState> read_states;
};

struct RaftCluster::Node {
  Config config;
  std::unique_ptr<Raft> raft;  // null while crashed
  Disk disk;
  bool delay_persist = false;
  std::deque<PendingWrite> pending;
  AppliedLog sm;
  int incarnation = 0;
};

RaftCluster::RaftCluster(const ClusterOptions& options)
    : options_(options), rng_(options.seed * 7919 + 17) {
  trace_ = std::getenv("VERDICT_RAFT_TRACE") != nullptr;
  for (int i = 1; i <= options_.nodes; ++i) {
    initial_membership_.voters[i] = "n" + std::to_string(i);
  }
  for (int i = 1; i <= options_.nodes; ++i) {
    auto node = std::make_unique<Node>();
    node->config = MakeConfig(i, initial_membership_);
    node->raft = std::make_unique<Raft>(node->config, RestoredState{});
    nodes_[i] = std::move(node);
  }
  // A founding node may hand out its bootstrap state in its first Ready.
  for (NodeId id : ids()) Process(id);
}

RaftCluster::~RaftCluster() = default;

Config RaftCluster::MakeConfig(NodeId id, Membership initial) const {
  Config c;
  c.id = id;
  c.initial_membership = std::move(initial);
  c.election_ticks = options_.election_ticks;
  c.heartbeat_ticks = options_.heartbeat_ticks;
  c.pre_vote = options_.pre_vote;
  c.check_quorum = options_.check_quorum;
  c.max_entries_per_msg = options_.max_entries_per_msg;
  c.max_inflight_msgs = options_.max_inflight_msgs;
  c.seed = options_.seed * 1000 + id;
  return c;
}

std::vector<NodeId> RaftCluster::ids() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

std::vector<NodeId> RaftCluster::UpIds() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) {
    if (n->raft) out.push_back(id);
  }
  return out;
}

bool RaftCluster::IsUp(NodeId id) const {
  auto it = nodes_.find(id);
  return it != nodes_.end() && it->second->raft != nullptr;
}

RaftCluster::Node& RaftCluster::GetNode(NodeId id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    std::fprintf(stderr, "RaftCluster: unknown node %llu\n", static_cast<unsigned long long>(id));
    std::abort();
  }
  return *it->second;
}

const RaftCluster::Node& RaftCluster::GetNode(NodeId id) const {
  return const_cast<RaftCluster*>(this)->GetNode(id);
}

Raft& RaftCluster::node(NodeId id) {
  Node& n = GetNode(id);
  if (!n.raft) {
    std::fprintf(stderr, "RaftCluster: node %llu is crashed\n",
                 static_cast<unsigned long long>(id));
    std::abort();
  }
  return *n.raft;
}

const Disk& RaftCluster::disk(NodeId id) const { return GetNode(id).disk; }

const AppliedLog& RaftCluster::applied(NodeId id) const { return GetNode(id).sm; }

void RaftCluster::AddNode(NodeId id) {
  if (nodes_.count(id)) {
    ADD_FAILURE() << "node " << id << " already exists";
    return;
  }
  auto node = std::make_unique<Node>();
  node->config = MakeConfig(id, Membership{});
  node->raft = std::make_unique<Raft>(node->config, RestoredState{});
  nodes_[id] = std::move(node);
  Process(id);
}

void RaftCluster::Crash(NodeId id) {
  Node& n = GetNode(id);
  n.raft.reset();
  n.pending.clear();
  n.sm = AppliedLog{};
}

void RaftCluster::Restart(NodeId id, const std::function<void(Config*)>& adjust) {
  Node& n = GetNode(id);
  if (n.raft) Crash(id);
  if (adjust) adjust(&n.config);
  ++n.incarnation;
  n.config.seed = options_.seed * 1000 + id + 100000 * n.incarnation;
  n.raft = std::make_unique<Raft>(n.config, n.disk.ToRestoredState());
  // The state machine comes back from the durable snapshot.
  n.sm = AppliedLog{};
  if (n.disk.snapshot) {
    const Snapshot& s = *n.disk.snapshot;
    if (!s.data || !DecodeAppliedLog(*s.data, &n.sm.entries) ||
        n.sm.entries.size() != s.meta.index) {
      ADD_FAILURE() << "node " << id << ": undecodable snapshot on disk";
    }
    n.sm.applied_index = s.meta.index;
  }
  if (n.raft->applied_index() < n.sm.applied_index) {
    ADD_FAILURE() << "node " << id << " restarted with applied_index() " << n.raft->applied_index()
                  << " below its durable snapshot " << n.sm.applied_index;
  }
  Process(id);
}

void RaftCluster::CrashAll() {
  for (NodeId id : ids()) Crash(id);
}

void RaftCluster::RestartAll() {
  for (NodeId id : ids()) Restart(id);
}

// ---- Ready processing ----

void RaftCluster::ObserveRole(NodeId id) {
  Raft& r = *GetNode(id).raft;
  if (r.role() != Role::kLeader) return;
  auto [it, inserted] = leaders_by_term_.emplace(r.term(), id);
  if (!inserted && it->second != id && split_terms_.insert(r.term()).second) {
    ADD_FAILURE() << "election safety: nodes " << it->second << " and " << id << " both lead term "
                  << r.term();
  }
  if (inserted) CheckLeaderCompleteness(id);
}

void RaftCluster::CheckLeaderCompleteness(NodeId id) {
  Raft& r = *GetNode(id).raft;
  for (auto it = committed_.lower_bound(r.first_index()); it != committed_.end(); ++it) {
    std::optional<Term> t = r.TermAt(it->first);
    if (!t || *t != it->second.term) {
      ADD_FAILURE() << "leader completeness: node " << id << " leads term " << r.term()
                    << " without committed entry " << Describe(it->second);
      return;
    }
  }
}

void RaftCluster::CheckEarlyMessage(NodeId id, const Message& m) {
  const Node& n = GetNode(id);
  if (m.type == MessageType::kAppendResp && !m.reject) {
    bool durable =
        m.index <= n.disk.LastIndex() &&
        (m.index <= n.disk.SnapshotIndex() || n.disk.TermAt(m.index) == n.raft->TermAt(m.index));
    if (!durable) {
      ADD_FAILURE() << "durability: node " << id << " acknowledged index " << m.index
                    << " in Ready::messages before it was durable (" << Describe(m) << ")";
    }
  }
  if (m.type == MessageType::kVoteResp && !m.reject) {
    if (n.disk.hard_state.term != m.term || n.disk.hard_state.vote != m.to) {
      ADD_FAILURE() << "durability: node " << id << " granted a vote in Ready::messages "
                    << "before the vote was durable (" << Describe(m) << ")";
    }
  }
}

void RaftCluster::Process(NodeId id) {
  Node& n = GetNode(id);
  for (int guard = 0; n.raft; ++guard) {
    if (guard > kMaxReadysPerProcess) {
      ADD_FAILURE() << "node " << id << " never stops producing Readys";
      return;
    }
    ObserveRole(id);
    Ready rd = n.raft->GetReady();
    if (rd.Empty()) {
      if (n.raft->HasReady()) {
        ADD_FAILURE() << "node " << id << ": HasReady() after an empty GetReady()";
      }
      return;
    }
    for (size_t i = 1; i < rd.entries.size(); ++i) {
      if (rd.entries[i].index != rd.entries[i - 1].index + 1) {
        ADD_FAILURE() << "node " << id << ": Ready entries not contiguous";
      }
    }
    for (const Message& m : rd.messages) {
      if (m.from != id) ADD_FAILURE() << "node " << id << " sent " << Describe(m);
      CheckEarlyMessage(id, m);
      if ((m.type == MessageType::kAppendResp || m.type == MessageType::kVoteResp) && !m.reject) {
        if (early_answers_++ == 0) first_early_answer_ = Describe(m);
      }
      Send(m, /*after_persist=*/false);
    }
    PendingWrite w{std::move(rd.hard_state),        std::move(rd.entries),
                   std::move(rd.snapshot),          std::move(rd.messages_after_persist),
                   std::move(rd.committed_entries), std::move(rd.read_states)};
    if (n.delay_persist) {
      n.pending.push_back(std::move(w));
    } else {
      CompleteWrite(id, std::move(w));
    }
  }
}

void RaftCluster::CompleteWrite(NodeId id, PendingWrite w) {
  Node& n = GetNode(id);
  Disk& d = n.disk;
  // 2. Durable writes, one "sync".
  if (w.snapshot) {
    const SnapshotMeta& meta = w.snapshot->meta;
    if (meta.index <= d.SnapshotIndex()) {
      ADD_FAILURE() << "node " << id << ": Ready snapshot at " << meta.index
                    << " does not advance the durable snapshot at " << d.SnapshotIndex();
    }
    std::vector<Entry> tail;
    if (d.TermAt(meta.index) == meta.term) {
      for (const Entry& e : d.entries) {
        if (e.index > meta.index) tail.push_back(e);
      }
    }
    d.snapshot = *w.snapshot;
    d.entries = std::move(tail);
  }
  if (w.hard_state) {
    const HardState& hs = *w.hard_state;
    if (hs.term < d.hard_state.term) {
      ADD_FAILURE() << "node " << id << ": durable term goes back from " << d.hard_state.term
                    << " to " << hs.term;
    }
    if (hs.term == d.hard_state.term && d.hard_state.vote != kNoNode &&
        hs.vote != d.hard_state.vote) {
      ADD_FAILURE() << "node " << id << ": changed its vote in term " << hs.term << " from "
                    << d.hard_state.vote << " to " << hs.vote;
    }
    d.hard_state = hs;
  }
  if (!w.entries.empty()) {
    Index first = w.entries.front().index;
    if (first <= d.SnapshotIndex() || first > d.LastIndex() + 1) {
      ADD_FAILURE() << "node " << id << ": Ready entries from " << first
                    << " do not fit the disk (snapshot " << d.SnapshotIndex() << ", last "
                    << d.LastIndex() << ")";
    }
    while (!d.entries.empty() && d.entries.back().index >= first) d.entries.pop_back();
    d.entries.insert(d.entries.end(), w.entries.begin(), w.entries.end());
  }
  if (d.hard_state.commit > d.LastIndex()) {
    ADD_FAILURE() << "node " << id << ": durable commit " << d.hard_state.commit
                  << " beyond the durable log " << d.LastIndex();
  }
  // 3. Answers that promise durable state, and the core learns what is durable.
  for (const Message& m : w.messages_after_persist) {
    if (m.from != id) ADD_FAILURE() << "node " << id << " sent " << Describe(m);
    Send(m, /*after_persist=*/true);
  }
  if (!w.entries.empty()) {
    n.raft->OnPersisted(w.entries.back().index, w.entries.back().term);
  }
  if (w.snapshot) n.raft->OnSnapshotPersisted(w.snapshot->meta.index);
  // 4. Apply.
  if (w.snapshot) ApplySnapshot(id, *w.snapshot);
  for (const Entry& e : w.committed_entries) {
    if (e.index != n.sm.applied_index + 1) {
      ADD_FAILURE() << "node " << id << " handed committed entry " << Describe(e)
                    << " to a state machine that applied " << n.sm.applied_index
                    << (e.index <= n.sm.applied_index ? " (applied index goes backwards)"
                                                      : " (gap)");
      continue;
    }
    RecordApplied(id, e);
    n.sm.entries.push_back(e);
    n.sm.applied_index = e.index;
  }
  for (const ReadState& rs : w.read_states) {
    n.sm.reads.push_back({rs, n.sm.applied_index});
  }
}

void RaftCluster::ApplySnapshot(NodeId id, const Snapshot& s) {
  Node& n = GetNode(id);
  if (s.meta.index <= n.sm.applied_index) {
    ADD_FAILURE() << "node " << id << ": snapshot at " << s.meta.index
                  << " would move the applied index back from " << n.sm.applied_index;
    return;
  }
  std::vector<Entry> entries;
  if (!s.data || !DecodeAppliedLog(*s.data, &entries) || entries.size() != s.meta.index) {
    ADD_FAILURE() << "node " << id << ": snapshot data is not the state machine's";
    return;
  }
  for (const Entry& e : entries) RecordApplied(id, e);
  n.sm.entries = std::move(entries);
  n.sm.applied_index = s.meta.index;
  ++n.sm.snapshots_applied;
}

void RaftCluster::RecordApplied(NodeId id, const Entry& e) {
  auto [it, inserted] = committed_.emplace(e.index, e);
  if (!inserted && !(it->second == e)) {
    ADD_FAILURE() << "state-machine safety: node " << id << " applied " << Describe(e) << " but "
                  << Describe(it->second) << " was applied elsewhere";
  }
}

// ---- network ----

bool RaftCluster::Connected(NodeId a, NodeId b) const {
  return a == b || !cut_.count({std::min(a, b), std::max(a, b)});
}

bool RaftCluster::Reachable(NodeId from, NodeId to) const {
  return IsUp(to) && Connected(from, to);
}

void RaftCluster::Send(const Message& original, bool after_persist) {
  Message m = original;
  for (const auto& rewrite : rewrites_) rewrite(&m);
  SentMessage rec{m.type,        m.from,           m.to, m.term, m.index, m.reject,
                  after_persist, m.entries.size(), false};
  if (on_send_) on_send_(m, after_persist);
  bool drop = !nodes_.count(m.to) || !Connected(m.from, m.to);
  for (const auto& f : filters_) drop = drop || f(m);
  std::uniform_real_distribution<double> coin(0, 1);
  if (!drop && faults_.drop > 0 && coin(rng_) < faults_.drop) drop = true;
  rec.dropped = drop;
  sent_.push_back(rec);
  if (drop) return;
  queue_.push_back(m);
  if (faults_.duplicate > 0 && coin(rng_) < faults_.duplicate) queue_.push_back(m);
}

void RaftCluster::Deliver(const Message& m) {
  if (!Reachable(m.from, m.to)) return;
  if (trace_) {
    std::fprintf(stderr, "  deliver %s entries=%zu log_term=%llu commit=%llu hint=%llu/%llu\n",
                 Describe(m).c_str(), m.entries.size(), static_cast<unsigned long long>(m.log_term),
                 static_cast<unsigned long long>(m.commit),
                 static_cast<unsigned long long>(m.reject_hint),
                 static_cast<unsigned long long>(m.hint_term));
  }
  Node& n = GetNode(m.to);
  n.raft->Step(m);
  Process(m.to);
}

int RaftCluster::DeliverAll() {
  for (NodeId id : UpIds()) Process(id);
  int delivered = 0;
  std::uniform_real_distribution<double> coin(0, 1);
  while (!queue_.empty()) {
    if (++delivered > kMaxDeliveries) {
      ADD_FAILURE() << "the cluster never goes quiet (livelock?)";
      queue_.clear();
      break;
    }
    size_t i = 0;
    if (faults_.reorder) i = std::uniform_int_distribution<size_t>(0, queue_.size() - 1)(rng_);
    Message m = std::move(queue_[i]);
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
    if (faults_.delay > 0 && coin(rng_) < faults_.delay) {
      held_.push_back(std::move(m));
      continue;
    }
    Deliver(m);
  }
  for (Message& m : held_) queue_.push_back(std::move(m));
  held_.clear();
  return delivered;
}

int RaftCluster::DeliverIf(const std::function<bool(const Message&)>& pred) {
  std::vector<Message> chosen = TakeIf(pred);
  for (const Message& m : chosen) Deliver(m);
  return static_cast<int>(chosen.size());
}

int RaftCluster::DropIf(const std::function<bool(const Message&)>& pred) {
  return static_cast<int>(TakeIf(pred).size());
}

std::vector<Message> RaftCluster::TakeIf(const std::function<bool(const Message&)>& pred) {
  std::vector<Message> taken;
  std::deque<Message> rest;
  for (Message& m : queue_) {
    if (pred(m)) {
      taken.push_back(std::move(m));
    } else {
      rest.push_back(std::move(m));
    }
  }
  queue_ = std::move(rest);
  return taken;
}

void RaftCluster::DuplicateQueued() {
  std::deque<Message> doubled;
  for (const Message& m : queue_) {
    doubled.push_back(m);
    doubled.push_back(m);
  }
  queue_ = std::move(doubled);
}

void RaftCluster::ReverseQueued() { std::reverse(queue_.begin(), queue_.end()); }

void RaftCluster::Inject(const Message& m) {
  if (!IsUp(m.to)) return;
  GetNode(m.to).raft->Step(m);
  Process(m.to);
}

void RaftCluster::AddFilter(std::function<bool(const Message&)> drop) {
  filters_.push_back(std::move(drop));
}

void RaftCluster::AddRewrite(std::function<void(Message*)> rewrite) {
  rewrites_.push_back(std::move(rewrite));
}

void RaftCluster::ClearFilters() {
  filters_.clear();
  rewrites_.clear();
}

void RaftCluster::Isolate(NodeId id) {
  for (const auto& [other, n] : nodes_) {
    if (other != id) cut_.insert({std::min(id, other), std::max(id, other)});
  }
}

void RaftCluster::Reconnect(NodeId id) {
  for (auto it = cut_.begin(); it != cut_.end();) {
    it = (it->first == id || it->second == id) ? cut_.erase(it) : std::next(it);
  }
}

void RaftCluster::Partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  for (NodeId x : a) {
    for (NodeId y : b) {
      if (x != y) cut_.insert({std::min(x, y), std::max(x, y)});
    }
  }
}

void RaftCluster::Heal() { cut_.clear(); }

// ---- clock ----

void RaftCluster::Tick(NodeId id, int n) {
  for (int i = 0; i < n && IsUp(id); ++i) {
    GetNode(id).raft->Tick();
    Process(id);
  }
}

void RaftCluster::TickAll(int rounds) { TickNodes(ids(), rounds); }

void RaftCluster::TickNodes(const std::vector<NodeId>& ids, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    for (NodeId id : ids) Tick(id);
    DeliverAll();
  }
}

// ---- disk ----

void RaftCluster::SetDelayPersist(NodeId id, bool delay) {
  GetNode(id).delay_persist = delay;
  if (!delay) CompletePersist(id);
}

size_t RaftCluster::PendingWrites(NodeId id) const { return GetNode(id).pending.size(); }

void RaftCluster::CompletePersist(NodeId id, size_t n) {
  Node& node = GetNode(id);
  for (size_t i = 0; i < n && !node.pending.empty() && node.raft; ++i) {
    PendingWrite w = std::move(node.pending.front());
    node.pending.pop_front();
    CompleteWrite(id, std::move(w));
  }
  Process(id);
}

// ---- clients ----

Status RaftCluster::Propose(NodeId id, std::string data, Index* index, Term* term) {
  Status s = node(id).Propose(std::move(data), index, term);
  Process(id);
  return s;
}

Status RaftCluster::ProposeBatch(NodeId id, const std::vector<std::string>& data) {
  Status result;
  for (const std::string& d : data) {
    Status s = node(id).Propose(d);
    if (!s.ok()) result = s;
  }
  Process(id);
  return result;
}

Status RaftCluster::ProposeConfChange(NodeId id, const ConfChange& change, Index* index) {
  Status s = node(id).ProposeConfChange(change, index);
  Process(id);
  return s;
}

Status RaftCluster::TransferLeadership(NodeId id, NodeId target) {
  Status s = node(id).TransferLeadership(target);
  Process(id);
  return s;
}

void RaftCluster::ReadIndex(NodeId id, std::string context) {
  node(id).ReadIndex(std::move(context));
  Process(id);
}

Status RaftCluster::Compact(NodeId id) {
  Node& n = GetNode(id);
  Index index = n.sm.applied_index;
  auto data = std::make_shared<const std::string>(EncodeAppliedLog(n.sm.entries, index));
  Status s = node(id).Compact(index, data);
  if (!s.ok()) return s;
  const std::optional<Snapshot>& snap = n.raft->snapshot();
  if (!snap || snap->meta.index != index) {
    ADD_FAILURE() << "node " << id << ": Compact(" << index << ") left snapshot() at "
                  << (snap ? snap->meta.index : 0);
    return s;
  }
  std::vector<Entry> tail;
  if (n.disk.TermAt(index) == snap->meta.term) {
    for (const Entry& e : n.disk.entries) {
      if (e.index > index) tail.push_back(e);
    }
  }
  n.disk.snapshot = *snap;
  n.disk.entries = std::move(tail);
  Process(id);
  return s;
}

int RaftCluster::AppliedCount(Index index, const std::string& data) const {
  int count = 0;
  for (const auto& [id, n] : nodes_) {
    if (n->raft && n->sm.applied_index >= index && n->sm.entries[index - 1].data == data) {
      ++count;
    }
  }
  return count;
}

Index RaftCluster::ProposeAndWait(const std::string& data, int expected, int max_rounds) {
  int rounds = 0;
  while (rounds < max_rounds) {
    NodeId leader = Leader();
    Index index = 0;
    if (leader == kNoNode || !Propose(leader, data, &index).ok()) {
      TickAll(1);
      ++rounds;
      continue;
    }
    for (int waited = 0; rounds < max_rounds && waited < 4 * options_.election_ticks; ++waited) {
      DeliverAll();
      if (AppliedCount(index, data) >= expected) return index;
      auto it = committed_.find(index);
      if (it != committed_.end() && it->second.data != data) break;  // lost: retry
      TickAll(1);
      ++rounds;
    }
  }
  return 0;
}

// ---- leadership ----

NodeId RaftCluster::Leader() const { return LeaderOf(ids()); }

NodeId RaftCluster::LeaderOf(const std::vector<NodeId>& group) const {
  auto in_group = [&group](NodeId id) {
    return std::find(group.begin(), group.end(), id) != group.end();
  };
  for (NodeId id : group) {
    if (!IsUp(id) || GetNode(id).raft->role() != Role::kLeader) continue;
    const Raft& l = *GetNode(id).raft;
    size_t acks = 0;
    const Membership& m = l.membership();
    for (const auto& [voter, address] : m.voters) {
      if (voter == id) {
        ++acks;
        continue;
      }
      if (!in_group(voter) || !IsUp(voter) || !Connected(id, voter)) continue;
      const Raft& f = *GetNode(voter).raft;
      if (f.term() == l.term() && f.leader() == id) ++acks;
    }
    if (acks > m.voters.size() / 2) return id;
  }
  return kNoNode;
}

std::vector<NodeId> RaftCluster::Leaders() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) {
    if (n->raft && n->raft->role() == Role::kLeader) out.push_back(id);
  }
  return out;
}

NodeId RaftCluster::WaitLeader(int max_rounds) {
  if (max_rounds == 0) max_rounds = 10 * options_.election_ticks;
  for (int r = 0; r < max_rounds; ++r) {
    NodeId l = Leader();
    if (l != kNoNode) return l;
    TickAll(1);
  }
  return Leader();
}

NodeId RaftCluster::StabilizeElection() {
  NodeId leader = WaitLeader();
  if (leader != kNoNode) TickAll(1);
  return Leader();
}

bool RaftCluster::ElectLeader(NodeId id) {
  auto campaigns = [this, id] {
    return Count([id](const SentMessage& m) {
      return m.from == id && (m.type == MessageType::kPreVote || m.type == MessageType::kVote);
    });
  };
  for (int attempt = 0; attempt < 5 && IsUp(id); ++attempt) {
    int before = campaigns();
    for (int i = 0; i < 4 * options_.election_ticks && campaigns() == before &&
                    node(id).role() != Role::kLeader;
         ++i) {
      Tick(id);
    }
    DeliverAll();
    if (node(id).role() == Role::kLeader) return true;
  }
  return false;
}

// ---- messages ----

int RaftCluster::Count(MessageType type) const {
  return Count([type](const SentMessage& m) { return m.type == type; });
}

int RaftCluster::Count(const std::function<bool(const SentMessage&)>& pred) const {
  return static_cast<int>(std::count_if(sent_.begin(), sent_.end(), pred));
}

// ---- invariants ----

void RaftCluster::CheckInvariants() {
  std::vector<NodeId> up = UpIds();
  for (NodeId id : up) {
    Raft& r = *GetNode(id).raft;
    const AppliedLog& sm = GetNode(id).sm;
    if (r.commit_index() > r.last_index()) {
      ADD_FAILURE() << "node " << id << ": commit " << r.commit_index() << " beyond last index "
                    << r.last_index();
    }
    if (sm.applied_index > r.commit_index()) {
      ADD_FAILURE() << "node " << id << ": applied " << sm.applied_index << " beyond commit "
                    << r.commit_index();
    }
    Index hi = std::min(r.commit_index(), r.last_index());
    for (auto it = committed_.lower_bound(r.first_index());
         it != committed_.end() && it->first <= hi; ++it) {
      if (r.TermAt(it->first) != it->second.term) {
        ADD_FAILURE() << "node " << id << ": committed index " << it->first
                      << " holds a different entry than the one applied elsewhere "
                      << Describe(it->second);
        break;
      }
    }
  }
  // Log matching: same index and term => identical logs up to there.
  for (size_t a = 0; a < up.size(); ++a) {
    for (size_t b = a + 1; b < up.size(); ++b) {
      Raft& x = *GetNode(up[a]).raft;
      Raft& y = *GetNode(up[b]).raft;
      Index lo = std::max(x.first_index(), y.first_index());
      Index hi = std::min(x.last_index(), y.last_index());
      Index match = 0;
      for (Index i = hi; i >= lo && i > 0; --i) {
        if (x.TermAt(i) == y.TermAt(i)) {
          match = i;
          break;
        }
      }
      if (match < lo) continue;
      if (x.Entries(lo, match + 1) != y.Entries(lo, match + 1)) {
        ADD_FAILURE() << "log matching: nodes " << up[a] << " and " << up[b]
                      << " agree on the term at " << match << " but differ before it";
      }
    }
  }
}

}  // namespace verdict::coordinator::raft::testing
