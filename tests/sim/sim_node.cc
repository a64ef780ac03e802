#include "tests/sim/sim_node.h"

#include <algorithm>
#include <limits>

namespace verdict::sim {

namespace {
using raft::Entry;
using raft::Index;
using raft::NodeId;
using raft::Term;

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }
}  // namespace

SimNode::SimNode(NodeId id, const NodeOptions& options, const NodeContext& ctx)
    : id_(id),
      options_(options),
      ctx_(ctx),
      dir_("/verdict/n" + std::to_string(id)),
      env_(std::make_unique<MemEnv>()),
      table_(std::make_unique<txn::TxnTable>()) {
  crash_env_ = std::make_unique<CrashEnv>(
      env_.get(),
      [this](const char*) {
        return storage_crashes_ && options_.crash_in_storage_call > 0 &&
               ctx_.rng->Chance(options_.crash_in_storage_call);
      },
      [this](const std::string&, uint64_t unsynced) { return TornBytes(unsynced); });
}

SimNode::~SimNode() = default;

uint64_t SimNode::TornBytes(uint64_t unsynced) {
  if (!ctx_.rng->Chance(options_.torn_write)) return 0;
  ++stats_.torn_files;
  return ctx_.rng->Range(0, unsynced);
}

bool SimNode::StorageOk(const Status& s, const char* what) {
  if (s.ok()) return true;
  if (crash_env_->crashed()) {
    // The power went in the middle of the call: not an error of the storage.
    ++stats_.crashes_in_call;
    ctx_.trace->Log("n%llu power cut during %s (%s)", U(id_), what,
                    crash_env_->crash_site().c_str());
    Die();
    if (ctx_.crashed) ctx_.crashed(id_);
    return false;
  }
  ctx_.checker->Fail("storage: n%llu %s failed: %s", U(id_), what, s.ToString().c_str());
  return false;
}

// ---- boot and power cut ----

void SimNode::Start() {
  if (up()) return;
  ++boots_;
  crash_env_->Revive();
  storage::RecoveredState rec;
  Status s = storage::LogStorage::Open(crash_env_.get(), dir_, options_.storage, &storage_, &rec);
  if (!s.ok() && crash_env_->crashed()) {
    storage_.reset();
    ++stats_.crashes_in_call;
    ctx_.trace->Log("n%llu power cut during recovery (%s)", U(id_),
                    crash_env_->crash_site().c_str());
    if (ctx_.crashed) ctx_.crashed(id_);
    return;
  }
  if (!s.ok()) {
    ctx_.checker->Fail("recovery: n%llu LogStorage::Open failed after a power cut: %s", U(id_),
                       s.ToString().c_str());
    storage_.reset();
    return;
  }
  if (!CheckRecovered(rec)) {
    storage_.reset();
    return;
  }
  // From here on the recovered state is the disk's content.
  durable_ = DurableModel();
  if (rec.snapshot) {
    durable_.snap_index = rec.snapshot->meta.index;
    durable_.snap_term = rec.snapshot->meta.term;
  }
  durable_.hard_state = rec.hard_state;
  for (const Entry& e : rec.entries) durable_.entries[e.index] = e.term;
  unsynced_.clear();
  has_unsynced_ = false;
  saving_snapshot_.reset();

  engine_.reset();
  table_ = std::make_unique<txn::TxnTable>();
  applied_ = 0;
  if (rec.snapshot) {
    applied_ = rec.snapshot->meta.index;
    if (!table_->Restore(*rec.snapshot->data).ok()) {
      ctx_.checker->Fail("recovery: n%llu snapshot %llu does not restore", U(id_), U(applied_));
      storage_.reset();
      return;
    }
    ctx_.checker->CheckTable(id_, applied_, *table_, "after recovery,");
  }
  txn::EngineConfig engine_config = options_.engine;
  engine_config.node_id = id_;
  engine_ = std::make_unique<txn::ProtocolEngine>(engine_config, *table_);
  engine_leader_ = false;
  engine_term_ = 0;
  refused_term_ = 0;

  raft::Config config = options_.raft;
  config.id = id_;
  config.seed = ctx_.seed * 1000003 + id_ * 7919 + boots_;
  ctx_.trace->Log(
      "n%llu boots (#%llu): term %llu vote n%llu commit %llu, snapshot %llu, "
      "entries %zu",
      U(id_), U(boots_), U(rec.hard_state.term), U(rec.hard_state.vote), U(rec.hard_state.commit),
      U(applied_), rec.entries.size());
  raft_ = std::make_unique<raft::Raft>(
      config, raft::RestoredState{rec.hard_state, rec.snapshot, std::move(rec.entries)});
  last_role_ = raft_->role();
  last_term_ = raft_->term();
  ++log_version_;
  ++stats_.boots;
  AfterEvent();
}

void SimNode::Crash() {
  if (!up()) return;
  ctx_.trace->Log("n%llu power cut (applied %llu, %zu Readys unsynced)", U(id_), U(applied_),
                  pending_.size());
  env_->PowerCut([this](const std::string&, uint64_t unsynced) { return TornBytes(unsynced); });
  Die();
}

void SimNode::Die() {
  engine_.reset();  // volatile: waiting clients and inquirers never hear back
  raft_.reset();
  storage_.reset();
  stats_.lost_readys += pending_.size();
  pending_.clear();
  sync_scheduled_ = false;
  // unsynced_ and saving_snapshot_ stay: recovery may or may not find those writes.
}

bool SimNode::CheckRecovered(const storage::RecoveredState& rec) {
  Checker& c = *ctx_.checker;
  Index snap = rec.snapshot ? rec.snapshot->meta.index : 0;
  if (snap < durable_.snap_index) {
    c.Fail("durability: n%llu recovered snapshot %llu, but snapshot %llu was saved", U(id_),
           U(snap), U(durable_.snap_index));
    return false;
  }
  if (rec.snapshot && snap > 0) {
    if (snap > c.committed_index()) {
      c.Fail("recovery: n%llu recovered snapshot %llu beyond every applied index (%llu)", U(id_),
             U(snap), U(c.committed_index()));
      return false;
    }
    if (c.committed(snap).term != rec.snapshot->meta.term) {
      c.Fail(
          "recovery: n%llu recovered snapshot %llu with term %llu; the entry committed "
          "there has term %llu",
          U(id_), U(snap), U(rec.snapshot->meta.term), U(c.committed(snap).term));
      return false;
    }
  }
  const raft::HardState& hs = rec.hard_state;
  const raft::HardState& want = durable_.hard_state;
  if (hs.term < want.term) {
    c.Fail("durability: n%llu recovered term %llu, but term %llu was synced", U(id_), U(hs.term),
           U(want.term));
    return false;
  }
  if (hs.term == want.term && want.vote != raft::kNoNode && hs.vote != want.vote) {
    c.Fail(
        "durability: n%llu recovered vote n%llu in term %llu, but its vote for n%llu "
        "was synced",
        U(id_), U(hs.vote), U(hs.term), U(want.vote));
    return false;
  }
  for (size_t k = 0; k < rec.entries.size(); ++k) {
    const Entry& e = rec.entries[k];
    if (e.index != snap + 1 + k) {
      c.Fail(
          "recovery: n%llu recovered entries not contiguous after snapshot %llu: "
          "position %zu holds index %llu",
          U(id_), U(snap), k, U(e.index));
      return false;
    }
    const Entry* w = c.Written(e.index, e.term);
    if (w == nullptr || !(*w == e)) {
      c.Fail("recovery: n%llu recovered %s, which no node ever wrote there (garbage)", U(id_),
             Describe(e).c_str());
      return false;
    }
  }
  Index last = rec.entries.empty() ? snap : rec.entries.back().index;
  if (hs.commit > last) {
    c.Fail("recovery: n%llu recovered commit index %llu beyond its last entry %llu", U(id_),
           U(hs.commit), U(last));
    return false;
  }
  // What the recovered commit index declares committed must be what was committed.
  for (const Entry& e : rec.entries) {
    if (e.index > hs.commit || e.index > c.committed_index()) break;
    if (!(c.committed(e.index) == e)) {
      c.Fail(
          "recovery: n%llu recovered commit index %llu, but its entry %s is not the "
          "committed %s",
          U(id_), U(hs.commit), Describe(e).c_str(), Describe(c.committed(e.index)).c_str());
      return false;
    }
  }
  // Every synced entry survives, unless a later (unsynced) write may have replaced it, or
  // the power went while a snapshot from the leader replaced the whole log.
  Index first_unsynced = std::numeric_limits<Index>::max();
  if (saving_snapshot_ && saving_snapshot_->second && snap == saving_snapshot_->first.index) {
    first_unsynced = 0;
  }
  for (const UnsyncedWrite& w : unsynced_) {
    if (!w.entries.empty()) first_unsynced = std::min(first_unsynced, w.entries.front().first);
  }
  for (const auto& [index, term] : durable_.entries) {
    if (index <= snap) continue;
    if (index >= first_unsynced) break;
    if (index > last || rec.entries[index - snap - 1].term != term) {
      c.Fail("durability: n%llu synced entry (i%llu t%llu) but recovered %s", U(id_), U(index),
             U(term),
             index > last ? "a log ending before it"
                          : Describe(rec.entries[index - snap - 1]).c_str());
      return false;
    }
  }
  return true;
}

// ---- events ----

int64_t SimNode::LocalMs() const {
  return static_cast<int64_t>(static_cast<double>(ctx_.queue->now()) * options_.clock_rate) /
         kMillis;
}

void SimNode::Tick() {
  if (!up()) return;
  raft_->Tick();
  // A leader whose transfer ended without a new term may lead again.
  if (refused_term_ != 0 && raft_->transfer_target() == raft::kNoNode) refused_term_ = 0;
  engine_->Tick(LocalMs());
  AfterEvent();
}

bool SimNode::WithEngine(const std::function<void(txn::ProtocolEngine&)>& call) {
  if (!up()) return false;
  call(*engine_);
  AfterEvent();
  return true;
}

void SimNode::Deliver(const raft::Message& m) {
  if (!up()) return;
  if (ctx_.trace->enabled()) TraceMessage("<-", m);
  raft_->Step(m);
  AfterEvent();
}

Status SimNode::Propose(const std::string& data, Index* index, Term* term) {
  if (!up()) return Status::NotLeader("node down");
  Status s = raft_->Propose(data, index, term);
  AfterEvent();
  return s;
}

Status SimNode::ProposeConfChange(const raft::ConfChange& change, Index* index) {
  if (!up()) return Status::NotLeader("node down");
  Status s = raft_->ProposeConfChange(change, index);
  AfterEvent();
  return s;
}

Status SimNode::TransferLeadership(NodeId target) {
  if (!up()) return Status::NotLeader("node down");
  Status s = raft_->TransferLeadership(target);
  ctx_.trace->Log("n%llu transfer leadership to n%llu: %s", U(id_), U(target),
                  s.ToString().c_str());
  AfterEvent();
  return s;
}

void SimNode::DriveEngine() {
  while (up() && !ctx_.checker->failed()) {
    bool leader = raft_->role() == raft::Role::kLeader && raft_->term() != refused_term_;
    if (leader != engine_leader_ || raft_->term() != engine_term_) {
      engine_leader_ = leader;
      engine_term_ = raft_->term();
      ctx_.trace->Log("n%llu engine %s in term %llu", U(id_), leader ? "leads" : "follows",
                      U(engine_term_));
      engine_->OnLeadershipChanged(leader, engine_term_);
    }
    if (!engine_->HasOutput()) return;
    txn::EngineOutput out = engine_->TakeOutput();
    for (std::string& p : out.proposals) {
      Status s = raft_->Propose(std::move(p));
      if (!s.ok()) {
        // Not the leader after all (or transferring): the engine steps down.
        refused_term_ = raft_->term();
        engine_leader_ = false;
        engine_->OnLeadershipChanged(false, raft_->term());
        break;
      }
    }
    if (ctx_.on_engine_output) ctx_.on_engine_output(id_, out);
    Process();
  }
}

void SimNode::AfterEvent() {
  Process();
  if (!up()) return;
  DriveEngine();
  if (!up()) return;
  if (raft_->role() != last_role_ || raft_->term() != last_term_) {
    last_role_ = raft_->role();
    last_term_ = raft_->term();
    ctx_.trace->Log("n%llu is %s in term %llu (last index %llu, commit %llu)", U(id_),
                    raft::RoleName(last_role_), U(last_term_), U(raft_->last_index()),
                    U(raft_->commit_index()));
  }
  ctx_.checker->ObserveNode(*raft_);
  if (ctx_.after_event) ctx_.after_event(id_);
}

void SimNode::TraceMessage(const char* dir, const raft::Message& m) {
  ctx_.trace->Log("n%llu %s n%llu %s t%llu i%llu lt%llu n=%zu c%llu%s%s%s", U(m.to), dir, U(m.from),
                  raft::MessageTypeName(m.type), U(m.term), U(m.index), U(m.log_term),
                  m.entries.size(), U(m.commit), m.reject ? " reject" : "",
                  m.snapshot ? " +snapshot" : "",
                  m.context.empty() ? "" : (" ctx=" + m.context).c_str());
}

// ---- the Ready contract ----

void SimNode::Process() {
  if (in_process_) return;  // an outer Process() loop picks the new Ready up
  in_process_ = true;
  while (up() && !ctx_.checker->failed() && raft_->HasReady()) HandleReady(raft_->GetReady());
  in_process_ = false;
}

void SimNode::HandleReady(raft::Ready rd) {
  // 1. messages that may leave before the write.
  for (const Entry& e : rd.entries) ctx_.checker->OnEntryWritten(id_, e);
  if (!rd.entries.empty() || rd.snapshot) ++log_version_;
  for (const raft::Message& m : rd.messages) ctx_.network->Send(m);

  // 2. the write. A snapshot from the leader is installed synchronously, after every
  // earlier Ready's write completed (writes complete in Ready order).
  bool has_snapshot = rd.snapshot.has_value();
  if (has_snapshot) {
    SyncAndRelease();
    if (!up() || ctx_.checker->failed()) return;
    ctx_.trace->Log("n%llu installs snapshot i%llu t%llu", U(id_), U(rd.snapshot->meta.index),
                    U(rd.snapshot->meta.term));
    saving_snapshot_.emplace(rd.snapshot->meta, true);
    if (!StorageOk(storage_->SaveSnapshot(*rd.snapshot, /*discard_log=*/true),
                   "SaveSnapshot(install)")) {
      return;
    }
    saving_snapshot_.reset();
    NoteSnapshotSaved(rd.snapshot->meta, true);
    ++stats_.snapshots_installed;
  }
  bool needs_sync = rd.hard_state.has_value() || !rd.entries.empty();
  if (needs_sync) {
    const raft::HardState* hs = rd.hard_state ? &*rd.hard_state : nullptr;
    if (!StorageOk(storage_->Append(hs, rd.entries), "Append")) return;
    NoteAppend(hs, rd.entries);
  }
  pending_.push_back(PendingReady{std::move(rd)});

  // 3./4. after the sync, in Ready order.
  if (has_snapshot || (needs_sync && ctx_.rng->Chance(options_.sync_now))) {
    SyncAndRelease();
  } else if (needs_sync) {
    ScheduleSync();
  } else if (!sync_scheduled_) {
    SyncAndRelease();  // nothing of its own to write and nothing earlier waiting
  }
}

void SimNode::ScheduleSync() {
  if (sync_scheduled_) return;
  sync_scheduled_ = true;
  uint64_t boot = boots_;
  Time delay = ctx_.rng->RangeSigned(1, std::max<Time>(1, options_.max_sync_delay));
  ctx_.queue->After(delay, [this, boot]() {
    if (boot != boots_ || !up()) return;
    sync_scheduled_ = false;
    SyncAndRelease();
    if (up()) AfterEvent();
  });
  if (ctx_.sync_scheduled) ctx_.sync_scheduled(id_, delay);
}

void SimNode::SyncAndRelease() {
  if (has_unsynced_) {
    if (injection_ == Injection::kSkipSync) {
      injection_fired_ = true;  // claims durability it does not have
    } else if (!StorageOk(storage_->Sync(), "Sync")) {
      return;
    }
    ++stats_.syncs;
    NoteSynced();
  }
  while (!pending_.empty() && up() && !ctx_.checker->failed()) {
    raft::Ready rd = std::move(pending_.front().ready);
    pending_.pop_front();
    Release(rd);
  }
}

void SimNode::Release(raft::Ready& rd) {
  if (rd.snapshot) raft_->OnSnapshotPersisted(rd.snapshot->meta.index);
  if (!rd.entries.empty()) raft_->OnPersisted(rd.entries.back().index, rd.entries.back().term);
  for (const raft::Message& m : rd.messages_after_persist) ctx_.network->Send(m);

  if (rd.snapshot) {
    const raft::SnapshotMeta& meta = rd.snapshot->meta;
    Checker& c = *ctx_.checker;
    if (meta.index <= applied_) {
      c.Fail("applied index: n%llu was handed snapshot %llu after applying %llu", U(id_),
             U(meta.index), U(applied_));
      return;
    }
    if (meta.index > c.committed_index() || c.committed(meta.index).term != meta.term) {
      c.Fail(
          "state-machine safety: n%llu installs snapshot (i%llu t%llu) that matches no "
          "applied entry",
          U(id_), U(meta.index), U(meta.term));
      return;
    }
    // In place: the engine keeps a reference to the table.
    if (!table_->Restore(*rd.snapshot->data).ok()) {
      c.Fail("state-machine safety: n%llu snapshot %llu data does not restore", U(id_),
             U(meta.index));
      return;
    }
    applied_ = meta.index;
    c.CheckTable(id_, applied_, *table_, "after installing a snapshot,");
  }
  for (const Entry& e : rd.committed_entries) {
    ApplyEntry(e);
    if (ctx_.checker->failed()) return;
  }
  MaybeCompact();
}

void SimNode::ApplyEntry(const Entry& e) {
  Checker& c = *ctx_.checker;
  if (e.index != applied_ + 1) {
    c.Fail("applied index: n%llu applies index %llu right after %llu", U(id_), U(e.index),
           U(applied_));
    return;
  }
  Entry applied = e;
  txn::TxnCommand cmd;
  bool is_command = e.type == raft::EntryType::kNormal && !e.data.empty();
  if (is_command && !txn::DecodeCommand(e.data, &cmd).ok()) {
    c.Fail("state-machine safety: n%llu applies %s, not a command", U(id_), Describe(e).c_str());
    return;
  }
  txn::ApplyResult result;
  auto* decide = std::get_if<txn::DecideCmd>(&cmd);
  bool flip = is_command && decide != nullptr && !injection_fired_ &&
              (injection_ == Injection::kCorruptEntry || injection_ == Injection::kFlipRegister) &&
              table_->Find(decide->gtid).state == txn::GtidState::kUnknown;
  if (flip) {
    injection_fired_ = true;
    txn::DecideCmd flipped = *decide;
    flipped.outcome =
        decide->outcome == txn::Outcome::kCommit ? txn::Outcome::kAbort : txn::Outcome::kCommit;
    if (injection_ == Injection::kCorruptEntry) {
      cmd = flipped;  // the entry itself
      applied.data = txn::EncodeCommand(cmd);
    }
    result = table_->ApplyCommand(flipped, e.index, e.term);
  } else if (Status s = table_->Apply(applied, &result); !s.ok()) {
    c.Fail("state-machine safety: n%llu cannot apply %s: %s", U(id_), Describe(e).c_str(),
           s.ToString().c_str());
    return;
  }
  c.OnApply(id_, applied, result);
  applied_ = e.index;
  if (ctx_.trace->enabled()) {
    ctx_.trace->Log("n%llu applies %s -> %s%s%s", U(id_), Describe(applied).c_str(),
                    txn::ApplyCodeName(result.code), result.decision ? " " : "",
                    result.decision ? txn::OutcomeName(*result.decision) : "");
  }
  if (is_command && engine_) engine_->OnApplied(cmd, result);
  if (ctx_.on_apply) ctx_.on_apply(id_, applied, result);
}

void SimNode::MaybeCompact() {
  if (options_.snapshot_every == 0 || !up()) return;
  Index snap = raft_->first_index() - 1;
  if (applied_ < snap + options_.snapshot_every) return;
  auto data = std::make_shared<const std::string>(table_->Serialize());
  Status s = raft_->Compact(applied_, data);
  if (!s.ok()) {
    ctx_.checker->Fail("raft: n%llu Compact(%llu) failed (snapshot %llu): %s", U(id_), U(applied_),
                       U(snap), s.ToString().c_str());
    return;
  }
  if (!raft_->snapshot() || raft_->snapshot()->meta.index != applied_) {
    ctx_.checker->Fail("raft: n%llu Compact(%llu) left no snapshot at that index", U(id_),
                       U(applied_));
    return;
  }
  const raft::Snapshot& snapshot = *raft_->snapshot();
  saving_snapshot_.emplace(snapshot.meta, false);
  if (!StorageOk(storage_->SaveSnapshot(snapshot, /*discard_log=*/false),
                 "SaveSnapshot(compact)")) {
    return;
  }
  saving_snapshot_.reset();
  NoteSnapshotSaved(snapshot.meta, false);
  ++stats_.compactions;
  ++log_version_;
}

// ---- the disk model ----

void SimNode::NoteAppend(const raft::HardState* hs, const std::vector<Entry>& entries) {
  UnsyncedWrite w;
  if (hs) w.hard_state = *hs;
  for (const Entry& e : entries) w.entries.emplace_back(e.index, e.term);
  unsynced_.push_back(std::move(w));
  has_unsynced_ = true;
}

void SimNode::NoteSynced() {
  for (const UnsyncedWrite& w : unsynced_) {
    if (w.hard_state) durable_.hard_state = *w.hard_state;
    if (w.entries.empty()) continue;
    durable_.entries.erase(durable_.entries.lower_bound(w.entries.front().first),
                           durable_.entries.end());
    for (const auto& [index, term] : w.entries) {
      if (index > durable_.snap_index) durable_.entries[index] = term;
    }
  }
  unsynced_.clear();
  has_unsynced_ = false;
}

void SimNode::NoteSnapshotSaved(const raft::SnapshotMeta& meta, bool discard_log) {
  durable_.snap_index = std::max(durable_.snap_index, meta.index);
  durable_.snap_term = meta.term;
  if (discard_log) {
    durable_.entries.clear();
  } else {
    durable_.entries.erase(durable_.entries.begin(), durable_.entries.upper_bound(meta.index));
  }
}

}  // namespace verdict::sim
