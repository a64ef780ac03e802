// SegmentedLog::Open: recovery of a log directory. Everything is read and validated
// before anything on disk is changed, so a log that fails to open is left as it was.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>

#include "coordinator/storage/file_names.h"
#include "coordinator/storage/log_format.h"
#include "coordinator/storage/log_reader.h"
#include "coordinator/storage/log_record.h"
#include "coordinator/storage/segmented_log.h"
#include "coordinator/storage/snapshot_file.h"

namespace verdict::coordinator::storage {

Status LogStorage::Open(Env* env, const std::string& dir, const LogStorageOptions& options,
                        std::unique_ptr<LogStorage>* result, RecoveredState* recovered) {
  std::unique_ptr<SegmentedLog> log;
  VERDICT_RETURN_IF_ERROR(SegmentedLog::Open(env, dir, options, &log, recovered));
  *result = std::move(log);
  return Status::OK();
}

// Replays the segments' records in order into the log's in-memory picture.
class SegmentedLog::Recovery {
 public:
  Recovery(SegmentedLog* log, RecoveredState* out) : log_(*log), out_(*out) {}

  Status Run() {
    VERDICT_RETURN_IF_ERROR(ListDirectory());
    VERDICT_RETURN_IF_ERROR(ReplaySegments());
    VERDICT_RETURN_IF_ERROR(ChooseSnapshot());
    VERDICT_RETURN_IF_ERROR(Reconcile());
    return Repair();
  }

 private:
  // "<dir>/<file>: offset <n>: <what>"
  static Status CorruptAt(const std::string& path, uint64_t offset, const std::string& what) {
    return Status::Corruption(path + ": offset " + std::to_string(offset) + ": " + what);
  }

  Status ListDirectory() {
    std::vector<std::string> names;
    VERDICT_RETURN_IF_ERROR(log_.env_->GetChildren(log_.dir_, &names));
    for (const std::string& name : names) {
      uint64_t a, b;
      if (ParseSegmentFileName(name, &a)) {
        segment_seqs_.push_back(a);
      } else if (ParseSnapshotFileName(name, &a, &b)) {
        log_.snapshot_files_.push_back(SnapshotId{a, b});
      } else if (name.size() > format::kTempSuffix.size() && name.ends_with(format::kTempSuffix) &&
                 name.starts_with(format::kSnapshotPrefix)) {
        temp_files_.push_back(name);
      }
    }
    std::sort(segment_seqs_.begin(), segment_seqs_.end());
    std::sort(log_.snapshot_files_.begin(), log_.snapshot_files_.end());
    for (size_t i = 1; i < segment_seqs_.size(); ++i) {
      if (segment_seqs_[i] != segment_seqs_[i - 1] + 1) {
        return Status::Corruption(log_.SegmentPath(segment_seqs_[i - 1] + 1) +
                                  ": segment missing (found " +
                                  SegmentFileName(segment_seqs_[i - 1]) + " and " +
                                  SegmentFileName(segment_seqs_[i]) + ")");
      }
    }
    if (segment_seqs_.empty() && !log_.snapshot_files_.empty()) {
      return Status::Corruption(log_.dir_ +
                                ": snapshot files but no log segment; the hard state "
                                "(term, vote) is lost");
    }
    return Status::OK();
  }

  Status ReplaySegments() {
    for (size_t i = 0; i < segment_seqs_.size(); ++i) {
      const uint64_t seq = segment_seqs_[i];
      const bool is_last = i + 1 == segment_seqs_.size();
      path_ = log_.SegmentPath(seq);
      std::string contents;
      VERDICT_RETURN_IF_ERROR(log_.env_->ReadFile(path_, &contents));
      log_.segments_.push_back(Segment{seq, 0});
      SegmentReader reader(contents, is_last);
      RecordView record;
      SegmentReader::Result r;
      bool first = true;
      while ((r = reader.Next(&record)) == SegmentReader::Result::kRecord) {
        VERDICT_RETURN_IF_ERROR(first ? CheckSegmentHeader(record, seq) : Apply(record));
        first = false;
      }
      if (r == SegmentReader::Result::kCorruption) {
        return CorruptAt(path_, reader.damage_offset(), reader.damage_reason());
      }
      if (r == SegmentReader::Result::kTornTail) {
        torn_offset_ = reader.damage_offset();
        torn_size_ = contents.size();
        torn_reason_ = reader.damage_reason();
      }
      if (first && !is_last) return CorruptAt(path_, 0, "segment has no header");
      last_segment_empty_ = first;  // only meaningful for the last one
    }
    return Status::OK();
  }

  Status CheckSegmentHeader(const RecordView& record, uint64_t seq) {
    uint64_t header_seq;
    if (record.type != static_cast<uint8_t>(format::RecordType::kSegmentHeader) ||
        !DecodeSegmentHeader(record.payload, &header_seq)) {
      return CorruptAt(path_, record.offset, "segment does not start with a valid header");
    }
    if (header_seq != seq) {
      return CorruptAt(path_, record.offset,
                       "segment header says seq " + std::to_string(header_seq));
    }
    return Status::OK();
  }

  Status Apply(const RecordView& record) {
    switch (static_cast<format::RecordType>(record.type)) {
      case format::RecordType::kHardState:
        if (!DecodeHardState(record.payload, &out_.hard_state)) {
          return CorruptAt(path_, record.offset, "malformed hard-state record");
        }
        return Status::OK();
      case format::RecordType::kEntry:
        return ApplyEntry(record);
      case format::RecordType::kLogReset: {
        raft::Index index;
        raft::Term term;
        if (!DecodeLogReset(record.payload, &index, &term)) {
          return CorruptAt(path_, record.offset, "malformed log-reset record");
        }
        entries_.clear();
        base_ = index;
        base_term_ = term;
        base_is_floor_ = true;
        log_.reset_seq_ = log_.segments_.back().seq;
        return Status::OK();
      }
      case format::RecordType::kSegmentHeader:
        return CorruptAt(path_, record.offset, "segment header in the middle of a segment");
    }
    return CorruptAt(path_, record.offset,
                     "unknown record type " + std::to_string(int{record.type}));
  }

  Status ApplyEntry(const RecordView& record) {
    raft::Entry e;
    if (!DecodeEntry(record.payload, &e)) {
      return CorruptAt(path_, record.offset, "malformed entry record");
    }
    const raft::Index index = e.index;
    const std::string where = "entry " + std::to_string(index);
    if (!base_.has_value()) base_ = index - 1;  // the first entry seen: older ones are gone
    raft::Index first = *base_ + 1;
    raft::Index last = *base_ + entries_.size();
    if (index > last + 1) {
      return CorruptAt(path_, record.offset,
                       where + " leaves a gap after index " + std::to_string(last));
    }
    if (index < first) {
      if (base_is_floor_) {
        return CorruptAt(path_, record.offset,
                         where + " is at or below the log reset at " + std::to_string(*base_));
      }
      // Overwrites below everything seen so far (older segments were compacted away).
      entries_.clear();
      base_ = index - 1;
    } else {
      entries_.resize(index - first);  // suffix overwrite: drop entries >= index
    }
    const raft::Term prev_term =
        entries_.empty() ? (base_is_floor_ ? base_term_ : 0) : entries_.back().term;
    if (e.term < prev_term) {
      return CorruptAt(path_, record.offset,
                       where + " has term " + std::to_string(e.term) +
                           ", below the term before it (" + std::to_string(prev_term) + ")");
    }
    if (entries_.empty()) first_entry_path_ = path_;
    entries_.push_back(std::move(e));
    Segment& seg = log_.segments_.back();
    seg.max_index = std::max(seg.max_index, index);
    return Status::OK();
  }

  // The newest snapshot that verifies. A newer one that does not is skipped with a warning;
  // Reconcile() then refuses to open if the log does not bridge the gap it leaves.
  Status ChooseSnapshot() {
    const auto& files = log_.snapshot_files_;
    for (auto it = files.rbegin(); it != files.rend(); ++it) {
      const std::string path = JoinPath(log_.dir_, SnapshotFileName(it->index, it->term));
      raft::Snapshot snapshot;
      Status s = ReadSnapshotFile(log_.env_, path, &snapshot);
      if (s.IsCorruption()) {
        spdlog::warn("storage: skipping snapshot that fails verification: {}", s.ToString());
        skipped_snapshot_ = path;
        continue;
      }
      VERDICT_RETURN_IF_ERROR(s);
      log_.snapshot_ = *it;
      out_.snapshot = std::move(snapshot);
      return Status::OK();
    }
    return Status::OK();
  }

  Status Reconcile() {
    const raft::Index s = log_.snapshot_.index;
    std::string snap_desc = out_.snapshot
                                ? "the newest valid snapshot ends at index " + std::to_string(s)
                                : std::string("there is no valid snapshot");
    if (!skipped_snapshot_.empty()) {
      snap_desc += " (" + skipped_snapshot_ + " failed verification)";
    }
    if (!entries_.empty()) {
      const raft::Index first = entries_.front().index;
      const raft::Index last = entries_.back().index;
      if (s >= first && s <= last && entries_[s - first].term != log_.snapshot_.term) {
        // The log's history diverges from the snapshot's (an installed snapshot whose log
        // reset was lost in a crash): nothing in it after the snapshot can be committed.
        spdlog::warn(
            "storage: {}: log entry {} has term {}, snapshot term {}; dropping the "
            "log after the snapshot",
            log_.dir_, s, entries_[s - first].term, log_.snapshot_.term);
        entries_.clear();
      } else if (s >= last) {
        entries_.clear();
      } else if (s >= first) {
        entries_.erase(entries_.begin(),
                       entries_.begin() + static_cast<std::ptrdiff_t>(s - first + 1));
      } else if (first > s + 1) {
        return Status::Corruption(first_entry_path_ + ": log starts at index " +
                                  std::to_string(first) + " but " + snap_desc);
      }
    } else if (base_is_floor_ && *base_ > s) {
      return Status::Corruption(log_.SegmentPath(log_.reset_seq_) + ": log was reset to index " +
                                std::to_string(*base_) + " but " + snap_desc);
    }
    if (!skipped_snapshot_.empty()) {
      spdlog::warn("storage: {}: recovering from an older snapshot: {}", log_.dir_, snap_desc);
    }
    log_.last_index_ = entries_.empty() ? s : entries_.back().index;
    raft::HardState& hs = out_.hard_state;
    hs.commit = std::max(std::min(hs.commit, log_.last_index_), s);
    log_.hard_state_ = hs;
    out_.entries = std::move(entries_);
    return Status::OK();
  }

  // Validation passed: truncate the torn tail, drop temp files, ready the active segment.
  Status Repair() {
    Env* env = log_.env_;
    bool dir_changed = false;
    if (torn_offset_.has_value()) {
      spdlog::warn("storage: {}: truncating torn tail at offset {} ({} bytes dropped): {}", path_,
                   *torn_offset_, torn_size_ - *torn_offset_, torn_reason_);
      VERDICT_RETURN_IF_ERROR(env->TruncateFile(path_, *torn_offset_));
    }
    for (const std::string& name : temp_files_) {
      spdlog::info("storage: removing unfinished snapshot {}/{}", log_.dir_, name);
      VERDICT_RETURN_IF_ERROR(env->RemoveFile(JoinPath(log_.dir_, name)));
      dir_changed = true;
    }
    log_.RecordTerms(out_.entries);
    if (log_.segments_.empty()) return log_.StartSegment(nullptr);

    // Reuse the last segment. Give it a header if it lost it, and restate the hard state
    // so the older segments stay deletable even if this one's copy was torn away.
    const std::string path = log_.SegmentPath(log_.segments_.back().seq);
    if (last_segment_empty_) {
      VERDICT_RETURN_IF_ERROR(env->NewWritableFile(path, &log_.active_));
      AppendSegmentHeaderRecord(&log_.pending_, log_.segments_.back().seq);
      dir_changed = true;
    } else {
      VERDICT_RETURN_IF_ERROR(env->NewAppendableFile(path, &log_.active_));
    }
    // If nothing is left after the snapshot, the files may still hold entries the
    // snapshot made obsolete (or a history it replaced): say so on disk, so the next
    // append (at snapshot + 1) continues the log for the next recovery too.
    if (out_.entries.empty() && log_.snapshot_.index > 0) {
      AppendLogResetRecord(&log_.pending_, log_.snapshot_.index, log_.snapshot_.term);
      log_.reset_seq_ = log_.segments_.back().seq;
    }
    AppendHardStateRecord(&log_.pending_, log_.hard_state_);
    VERDICT_RETURN_IF_ERROR(log_.active_->Append(log_.pending_));
    VERDICT_RETURN_IF_ERROR(log_.active_->Sync());
    log_.pending_.clear();
    if (dir_changed) VERDICT_RETURN_IF_ERROR(env->SyncDir(log_.dir_));
    return Status::OK();
  }

  SegmentedLog& log_;
  RecoveredState& out_;

  std::vector<uint64_t> segment_seqs_;
  std::vector<std::string> temp_files_;
  std::string path_;  // the segment being replayed (after replay: the last one)

  // The replayed log: entries_[i].index == *base_ + 1 + i.
  std::vector<raft::Entry> entries_;
  std::optional<raft::Index> base_;  // unknown until the first entry or reset
  raft::Term base_term_ = 0;         // term of the reset point
  bool base_is_floor_ = false;       // base_ comes from a reset: nothing may go below it
  std::string first_entry_path_;

  bool last_segment_empty_ = false;
  std::optional<uint64_t> torn_offset_;
  uint64_t torn_size_ = 0;
  std::string torn_reason_;
  std::string skipped_snapshot_;
};

Status SegmentedLog::Open(Env* env, const std::string& dir, const LogStorageOptions& options,
                          std::unique_ptr<SegmentedLog>* result, RecoveredState* recovered) {
  VERDICT_RETURN_IF_ERROR(env->CreateDirIfMissing(dir));
  std::unique_ptr<FileLock> lock;
  VERDICT_RETURN_IF_ERROR(env->LockFile(JoinPath(dir, format::kLockFileName), &lock));
  std::unique_ptr<SegmentedLog> log(new SegmentedLog(env, dir, options));
  log->lock_ = std::move(lock);
  RecoveredState state;
  VERDICT_RETURN_IF_ERROR(Recovery(log.get(), &state).Run());
  *result = std::move(log);
  *recovered = std::move(state);
  return Status::OK();
}

}  // namespace verdict::coordinator::storage
