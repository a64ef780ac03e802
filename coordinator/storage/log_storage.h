// LogStorage: the durable decision log of one coordinator node — a segmented, checksummed,
// append-only write-ahead log of Raft entries and hard state, plus atomically written
// state-machine snapshots. The on-disk format is specified in docs/storage-format.md.
//
// Not thread-safe: one thread (the node's storage thread) calls it at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "coordinator/raft/types.h"

namespace verdict::coordinator::storage {

namespace raft = ::verdict::coordinator::raft;

struct RecoveredState {
  raft::HardState hard_state;
  std::optional<raft::Snapshot> snapshot;  // the newest valid snapshot, if any
  std::vector<raft::Entry> entries;        // contiguous, right after the snapshot (or from 1)
};

struct LogStorageOptions {
  uint64_t segment_bytes = 64ull << 20;  // roll to a new segment past this size
  // false = UNSAFE benchmark mode: Sync() does not call fdatasync. Never the default.
  bool sync = true;
  int snapshots_to_keep = 2;
};

class LogStorage {
 public:
  // Opens (creating if absent) the log in `dir` and recovers it:
  //  - a torn final record (incomplete, or failing its checksum with nothing after it) is
  //    truncated away and recovery continues;
  //  - any other damage (bad checksum or malformed record before the tail, a missing or
  //    out-of-order segment, entries that are not contiguous) returns Corruption naming
  //    the file and byte offset; nothing is applied from a log that fails to open.
  // Takes an exclusive lock on the directory: a second process gets IOError.
  static Status Open(Env* env, const std::string& dir, const LogStorageOptions& options,
                     std::unique_ptr<LogStorage>* result, RecoveredState* recovered);

  virtual ~LogStorage() = default;

  // Buffers a hard-state change (if `hard_state` is non-null) and `entries` for the next
  // Sync(). `entries` must be contiguous; entries.front().index may be <= the last stored
  // index, in which case the stored suffix from that index on is replaced. Nothing is
  // durable until Sync() returns OK. An error (e.g. disk full) is sticky: every later call
  // fails too, and the caller must stop the node.
  virtual Status Append(const raft::HardState* hard_state,
                        const std::vector<raft::Entry>& entries) = 0;

  // Makes everything appended so far durable with one fdatasync (group commit).
  virtual Status Sync() = 0;

  // Durably stores `snapshot` (temp file, fsync, rename, fsync dir) before returning.
  // discard_log=false (local compaction): entries after the snapshot stay; entries up to
  // its index are dropped, and whole segments below it are deleted.
  // discard_log=true (a snapshot installed from the leader): every stored entry is
  // dropped; the log continues at snapshot.meta.index + 1. Older snapshots beyond
  // snapshots_to_keep are deleted.
  virtual Status SaveSnapshot(const raft::Snapshot& snapshot, bool discard_log) = 0;

  // The last stored index (0 if none), counting appended-but-unsynced entries.
  virtual raft::Index LastIndex() const = 0;
  // Number of segment files currently on disk (for tests and metrics).
  virtual size_t SegmentCount() const = 0;
};

}  // namespace verdict::coordinator::storage
