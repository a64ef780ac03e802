// StorageWriter: the node's storage thread. It writes what each Raft Ready asks to persist,
// in the order the Readys were produced, with ONE sync for everything queued since its last
// sync (group commit across Readys); only then does it send the Readys' after-persist
// messages and report back what became durable. A storage error is fatal (FatalError).
// Thread-safe: Submit() from the event loop; one internal thread owns the LogStorage.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "coordinator/raft/types.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/peer_router.h"
#include "coordinator/storage/log_storage.h"

namespace verdict::coordinator::server {

// The persistence half of one Ready (or a local compaction).
struct PersistJob {
  std::optional<raft::HardState> hard_state;
  std::vector<raft::Entry> entries;
  // Installed from the leader: saved with discard_log=true, before `entries`.
  std::optional<raft::Snapshot> installed_snapshot;
  // Local compaction: saved with discard_log=false, after everything submitted before it.
  std::optional<raft::Snapshot> local_snapshot;
  // Sent only once everything up to and including this job is durable.
  std::vector<raft::Message> messages_after_persist;
  // False when the job only moves the commit hint (safe to persist lazily): it is written
  // but waits for the next sync that someone needs.
  bool needs_sync = true;
};

// What one job made durable, reported back to the event loop in submission order.
struct PersistedEvent {
  raft::Index entries_index = 0;  // last entry written (0: none)
  raft::Term entries_term = 0;
  raft::Index snapshot_index = 0;  // installed snapshot saved (0: none)
};

class StorageWriter {
 public:
  using PersistedCallback = std::function<void(std::vector<PersistedEvent>&&)>;

  StorageWriter(std::unique_ptr<storage::LogStorage> log, PeerRouter& router, Metrics& metrics,
                PersistedCallback on_persisted);
  StorageWriter(const StorageWriter&) = delete;
  StorageWriter& operator=(const StorageWriter&) = delete;
  ~StorageWriter();  // Stop()s

  void Start();
  void Submit(PersistJob job);
  // Writes and syncs everything submitted so far, then joins the thread. Later Submit()s
  // are ignored. Idempotent.
  void Stop();

 private:
  void Run();
  // Writes one batch and syncs it; returns the events to report.
  void WriteBatch(std::vector<PersistJob>& jobs, bool final_sync);
  void SyncOrDie();

  PeerRouter& router_;
  Metrics& metrics_;
  const PersistedCallback on_persisted_;
  std::unique_ptr<storage::LogStorage> log_;  // used only by the storage thread
  bool unsynced_ = false;                     // storage thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PersistJob> queue_;  // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  std::thread thread_;
};

}  // namespace verdict::coordinator::server
