// SegmentReader: splits one WAL segment's bytes into checksum-verified records and
// classifies damage as a torn tail or as corruption (rules in docs/storage-format.md).
// Holds a view of the caller's buffer, which must outlive it. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "coordinator/storage/log_format.h"

namespace verdict::coordinator::storage {

struct RecordView {
  uint8_t type = 0;          // a format::RecordType value, not yet validated
  uint64_t offset = 0;       // of the record header within the segment
  std::string_view payload;  // points into the segment buffer
};

class SegmentReader {
 public:
  enum class Result {
    kRecord,      // *record is an intact record
    kEnd,         // clean end of the segment
    kTornTail,    // the segment ends in a torn final write starting at damage_offset()
    kCorruption,  // damage at damage_offset() that a torn write cannot explain
  };

  // A torn tail is only possible in the last segment: earlier segments were complete and
  // synced before the next one was created.
  SegmentReader(std::string_view contents, bool is_last_segment);

  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  // Reads the next record. After anything but kRecord, keeps returning the same result.
  Result Next(RecordView* record);

  uint64_t damage_offset() const { return damage_offset_; }
  const std::string& damage_reason() const { return damage_reason_; }

 private:
  // `tail_if_last`: what this damage means if it is in the last segment.
  Result Damage(std::string reason, bool torn_if_last);
  // True if an intact record (both checksums valid, inside the buffer) starts at `pos`.
  bool IntactRecordAt(size_t pos) const;
  bool AnyIntactRecordFrom(size_t pos) const;
  bool AllZeroFrom(size_t pos) const;

  const std::string_view contents_;
  const bool is_last_;
  size_t pos_ = 0;
  bool done_ = false;
  Result final_result_ = Result::kEnd;
  uint64_t damage_offset_ = 0;
  std::string damage_reason_;
};

}  // namespace verdict::coordinator::storage
