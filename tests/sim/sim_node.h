// SimNode: one simulated coordinator node — the real raft::Raft, the real LogStorage on
// its own MemEnv, a txn::TxnTable as the state machine and a txn::ProtocolEngine — plus
// the small driver that follows raft.h's Ready contract with virtual-time disk syncs and
// engine.h's driver contract (leadership, ticks on the node's own clock, OnApplied after
// every applied entry, proposals, messages and answers drained after every event). Crash() is a
// power cut (unsynced writes lost, sometimes a torn tail); Start() recovers through
// LogStorage::Open. The node also keeps a model of what its disk must hold (what was synced) and
// checks recovery against it. Not thread-safe (the simulator is single-threaded).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mem_env.h"
#include "coordinator/raft/raft.h"
#include "coordinator/storage/log_storage.h"
#include "coordinator/txn/engine.h"
#include "coordinator/txn/txn_table.h"
#include "tests/sim/checker.h"
#include "tests/sim/crash_env.h"
#include "tests/sim/event_queue.h"
#include "tests/sim/network.h"
#include "tests/sim/random.h"
#include "tests/sim/trace.h"

namespace verdict::sim {

namespace storage = ::verdict::coordinator::storage;

struct NodeOptions {
  raft::Config raft;  // id, initial membership, timings; the seed is re-derived per boot
  storage::LogStorageOptions storage;
  raft::Index snapshot_every = 0;  // compact once this many entries are applied (0 = never)
  double sync_now = 1.0;           // probability a Ready's sync completes at once
  Time max_sync_delay = 0;         // otherwise it completes within this virtual time
  double torn_write = 0;           // per file, probability a power cut keeps a torn tail
  // Probability that the power goes in the middle of a storage Sync/SyncDir/RenameFile.
  double crash_in_storage_call = 0;
  double clock_rate = 1.0;   // the node's clock (the engine's ms) runs this much faster
  txn::EngineConfig engine;  // node_id is set per node
};

struct NodeStats {
  uint64_t boots = 0;
  uint64_t snapshots_installed = 0;  // InstallSnapshot from a leader
  uint64_t compactions = 0;          // local Compact + SaveSnapshot
  uint64_t syncs = 0;
  uint64_t torn_files = 0;       // files that kept part of their unsynced tail
  uint64_t lost_readys = 0;      // written but unsynced when the power went
  uint64_t crashes_in_call = 0;  // power cuts in the middle of a storage call
};

// Deliberate faults in the simulator's own view, for --self-test.
enum class Injection {
  kNone,
  kCorruptEntry,  // apply one Decide with its outcome flipped in the entry itself
  kFlipRegister,  // record one decision in the register with the opposite outcome
  kSkipSync,      // claim writes durable without syncing them (then power cuts lose them)
};

// What the node's callers need: the world it lives in.
struct NodeContext {
  EventQueue* queue;
  Network* network;
  Checker* checker;
  Random* rng;
  Trace* trace;
  uint64_t seed;
  // Called after every entry the node applies, with what its table made of it. Must not
  // call back into the node.
  std::function<void(raft::NodeId, const raft::Entry&, const txn::ApplyResult&)> on_apply;
  // The engine's messages, answers and hazards (its proposals went to Raft already). Must
  // not call back into the node (deliver through the network).
  std::function<void(raft::NodeId, const txn::EngineOutput&)> on_engine_output;
  // Called after every event the node handled while up (cross-node checks).
  std::function<void(raft::NodeId)> after_event;
  // Called when the node lost power on its own (in the middle of a storage call).
  std::function<void(raft::NodeId)> crashed;
  // Called when a sync is scheduled to complete after `delay` (a chance to cut the power
  // between the write and its sync).
  std::function<void(raft::NodeId, Time delay)> sync_scheduled;
};

class SimNode {
 public:
  SimNode(raft::NodeId id, const NodeOptions& options, const NodeContext& ctx);
  SimNode(const SimNode&) = delete;
  SimNode& operator=(const SimNode&) = delete;
  ~SimNode();

  raft::NodeId id() const { return id_; }
  bool up() const { return raft_ != nullptr; }
  uint64_t boots() const { return boots_; }
  // nullptr while the node is down.
  raft::Raft* raft() { return raft_.get(); }
  const raft::Raft* raft() const { return raft_.get(); }
  const txn::TxnTable& table() const { return *table_; }
  // nullptr while the node is down.
  const txn::ProtocolEngine* engine() const { return engine_.get(); }
  raft::Index applied() const { return applied_; }
  // Changes whenever the in-memory log may have changed (cross-node checks skip otherwise).
  uint64_t log_version() const { return log_version_; }
  const NodeStats& stats() const { return stats_; }

  // Boots the node (first start or restart after Crash) from its storage. On a recovery
  // failure it records a violation and stays down.
  void Start();
  // Power cut: unsynced writes are lost (some files keep a torn tail); the process is gone.
  void Crash();
  // Enables power cuts in the middle of storage calls (off in the healed phase).
  void EnableStorageCrashes(bool on) { storage_crashes_ = on; }

  // ---- events (no-ops while down) ----
  void Tick();
  void Deliver(const raft::Message& m);
  // raft.Propose, then the driver runs. Returns NotLeader while down.
  Status Propose(const std::string& data, raft::Index* index, raft::Term* term);
  Status TransferLeadership(raft::NodeId target);
  Status ProposeConfChange(const raft::ConfChange& change, raft::Index* index);
  // Runs `call` on the engine, then the driver. False (nothing ran) while down.
  bool WithEngine(const std::function<void(txn::ProtocolEngine&)>& call);

  void Inject(Injection injection) { injection_ = injection; }
  bool injection_fired() const { return injection_fired_; }

 private:
  // One Ready whose writes wait for a sync before its step-3/4 actions.
  struct PendingReady {
    raft::Ready ready;
  };
  // The disk as the driver knows it: what was synced (must survive any power cut).
  struct DurableModel {
    raft::Index snap_index = 0;
    raft::Term snap_term = 0;
    raft::HardState hard_state;
    std::map<raft::Index, raft::Term> entries;  // after snap_index
  };
  struct UnsyncedWrite {
    std::optional<raft::HardState> hard_state;
    std::vector<std::pair<raft::Index, raft::Term>> entries;
  };

  // Drains raft's Readys until there are none (the driver loop).
  void Process();
  void HandleReady(raft::Ready rd);
  // Syncs storage and releases every pending Ready in order.
  void SyncAndRelease();
  void ScheduleSync();
  void Release(raft::Ready& rd);
  void ApplyEntry(const raft::Entry& e);
  void MaybeCompact();
  void AfterEvent();
  // engine.h's driver loop: leadership changes, proposals, output.
  void DriveEngine();
  int64_t LocalMs() const;
  void TraceMessage(const char* dir, const raft::Message& m);

  void NoteAppend(const raft::HardState* hs, const std::vector<raft::Entry>& entries);
  void NoteSynced();
  void NoteSnapshotSaved(const raft::SnapshotMeta& meta, bool discard_log);
  // Recovery check against the model; returns false (and records a violation) if the
  // recovered state may not be handed to raft.
  bool CheckRecovered(const storage::RecoveredState& rec);
  bool StorageOk(const Status& s, const char* what);
  uint64_t TornBytes(uint64_t unsynced);
  // Tears the process down after the power went (the disk keeps what it keeps).
  void Die();

  const raft::NodeId id_;
  const NodeOptions options_;
  NodeContext ctx_;
  const std::string dir_;
  std::unique_ptr<MemEnv> env_;
  std::unique_ptr<CrashEnv> crash_env_;  // over env_: what the storage uses
  bool storage_crashes_ = true;
  // A snapshot whose SaveSnapshot call has not returned: a power cut may keep it or not.
  std::optional<std::pair<raft::SnapshotMeta, bool>> saving_snapshot_;
  std::unique_ptr<storage::LogStorage> storage_;
  std::unique_ptr<raft::Raft> raft_;
  std::unique_ptr<txn::TxnTable> table_;
  std::unique_ptr<txn::ProtocolEngine> engine_;  // volatile: rebuilt at every boot
  bool engine_leader_ = false;                   // what the engine was last told
  raft::Term engine_term_ = 0;
  raft::Term refused_term_ = 0;  // Propose said NotLeader in this term (leader transferring)
  raft::Index applied_ = 0;
  uint64_t boots_ = 0;  // incarnation: events scheduled by an earlier boot are ignored

  std::deque<PendingReady> pending_;
  bool sync_scheduled_ = false;
  bool in_process_ = false;

  DurableModel durable_;
  std::vector<UnsyncedWrite> unsynced_;

  raft::Role last_role_ = raft::Role::kFollower;
  raft::Term last_term_ = 0;
  bool has_unsynced_ = false;
  uint64_t log_version_ = 0;
  NodeStats stats_;

  Injection injection_ = Injection::kNone;
  bool injection_fired_ = false;
};

}  // namespace verdict::sim
