// SegmentedLog: the LogStorage implementation — a segmented, checksummed WAL of Raft
// entries, hard state and log resets, plus atomic snapshot files (docs/storage-format.md).
// Not thread-safe: one thread calls it at a time (see LogStorage).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "coordinator/storage/log_storage.h"

namespace verdict::coordinator::storage {

class SegmentedLog final : public LogStorage {
 public:
  // See LogStorage::Open, which forwards here.
  static Status Open(Env* env, const std::string& dir, const LogStorageOptions& options,
                     std::unique_ptr<SegmentedLog>* result, RecoveredState* recovered);

  ~SegmentedLog() override;
  SegmentedLog(const SegmentedLog&) = delete;
  SegmentedLog& operator=(const SegmentedLog&) = delete;

  Status Append(const raft::HardState* hard_state,
                const std::vector<raft::Entry>& entries) override;
  Status Sync() override;
  Status SaveSnapshot(const raft::Snapshot& snapshot, bool discard_log) override;
  raft::Index LastIndex() const override { return last_index_; }
  size_t SegmentCount() const override { return segments_.size(); }

  // The sticky write error, OK if none (for metrics and the daemon's health check).
  const Status& error() const { return error_; }
  // Bytes appended but not yet written by Sync().
  size_t PendingBytes() const { return pending_.size(); }

 private:
  struct Segment {
    uint64_t seq = 0;
    raft::Index max_index = 0;  // highest entry index written to it, 0 if none
  };
  struct SnapshotId {
    raft::Index index = 0;
    raft::Term term = 0;
    auto operator<=>(const SnapshotId&) const = default;
  };
  class Recovery;  // segmented_log_open.cc

  SegmentedLog(Env* env, std::string dir, const LogStorageOptions& options);

  std::string SegmentPath(uint64_t seq) const;
  // Creates segment seq+1, writes its prologue (header, hard state, optional reset) and the
  // pending records in one write, syncs it and the directory, and makes it active.
  Status StartSegment(const SnapshotId* reset);
  Status WritePending();
  // Deletes snapshots beyond snapshots_to_keep and the segments no longer needed.
  Status DeleteObsoleteFiles();
  // Records a failed write: every later call fails with it.
  Status Fail(Status s);
  // Term of the stored entry at `index` (the snapshot's term at its index), 0 if unknown.
  raft::Term TermAt(raft::Index index) const;
  void RecordTerms(const std::vector<raft::Entry>& entries);

  Env* const env_;
  const std::string dir_;
  const LogStorageOptions options_;
  std::unique_ptr<FileLock> lock_;

  std::vector<Segment> segments_;         // ascending, without gaps; back() is active
  std::unique_ptr<WritableFile> active_;  // appends to segments_.back()
  std::string pending_;                   // encoded records waiting for Sync()
  raft::Index pending_max_index_ = 0;     // highest entry index in pending_

  raft::HardState hard_state_;  // the latest appended (durable after the next Sync)
  raft::Index last_index_ = 0;  // counts pending entries
  SnapshotId snapshot_;         // the newest durable snapshot; entries <= its index are gone
  uint64_t reset_seq_ = 0;      // segment holding the newest log reset; older ones are dead
  std::vector<SnapshotId> snapshot_files_;  // on disk, ascending
  // (first index, term) of each run of equal terms in the stored log, ascending: lets
  // Append() check that terms never go down without keeping the entries in memory.
  std::vector<std::pair<raft::Index, raft::Term>> term_runs_;

  Status error_;  // sticky; see LogStorage::Append
};

}  // namespace verdict::coordinator::storage
