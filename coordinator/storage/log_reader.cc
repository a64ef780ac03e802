#include "coordinator/storage/log_reader.h"

#include <algorithm>

#include "common/crc32c.h"
#include "coordinator/storage/log_record.h"

namespace verdict::coordinator::storage {

using format::kMaxRecordPayload;
using format::kRecordHeaderSize;

SegmentReader::SegmentReader(std::string_view contents, bool is_last_segment)
    : contents_(contents), is_last_(is_last_segment) {}

SegmentReader::Result SegmentReader::Damage(std::string reason, bool torn_if_last) {
  done_ = true;
  damage_offset_ = pos_;
  damage_reason_ = std::move(reason);
  final_result_ = (is_last_ && torn_if_last) ? Result::kTornTail : Result::kCorruption;
  return final_result_;
}

bool SegmentReader::IntactRecordAt(size_t pos) const {
  if (contents_.size() - pos < kRecordHeaderSize) return false;
  const char* h = contents_.data() + pos;
  RecordHeader hdr = ParseRecordHeader(h);
  if (hdr.header_crc != ComputeHeaderCrc(h) || hdr.length > kMaxRecordPayload) return false;
  if (contents_.size() - pos - kRecordHeaderSize < hdr.length) return false;
  return hdr.payload_crc == crc32c::Value(h + kRecordHeaderSize, hdr.length);
}

bool SegmentReader::AnyIntactRecordFrom(size_t pos) const {
  for (size_t p = pos; p + kRecordHeaderSize <= contents_.size(); ++p) {
    if (IntactRecordAt(p)) return true;
  }
  return false;
}

bool SegmentReader::AllZeroFrom(size_t pos) const {
  return std::all_of(contents_.begin() + static_cast<std::ptrdiff_t>(pos), contents_.end(),
                     [](char c) { return c == 0; });
}

SegmentReader::Result SegmentReader::Next(RecordView* record) {
  if (done_) return final_result_;
  const size_t remaining = contents_.size() - pos_;
  if (remaining == 0) {
    done_ = true;
    final_result_ = Result::kEnd;
    return final_result_;
  }
  if (remaining < kRecordHeaderSize) {
    return Damage("incomplete record header (" + std::to_string(remaining) + " bytes)", true);
  }
  const char* h = contents_.data() + pos_;
  RecordHeader hdr = ParseRecordHeader(h);
  if (hdr.header_crc != ComputeHeaderCrc(h)) {
    // The length field cannot be trusted, so "is anything after this record?" is answered
    // by looking for an intact record at any later offset: one exists => this was not the
    // last write => corruption. Zero fill and leftover fragments of the torn write => torn.
    bool later_record = AnyIntactRecordFrom(pos_ + 1);
    return Damage(later_record ? "record header checksum mismatch, intact records follow"
                               : "record header checksum mismatch",
                  !later_record);
  }
  // From here on the header is intact, so its fields were written by us.
  if (!hdr.reserved_zero || hdr.length > kMaxRecordPayload) {
    return Damage("malformed record header (length " + std::to_string(hdr.length) + ")", false);
  }
  if (remaining - kRecordHeaderSize < hdr.length) {
    return Damage("incomplete record payload (" + std::to_string(remaining - kRecordHeaderSize) +
                      " of " + std::to_string(hdr.length) + " bytes)",
                  true);
  }
  const char* payload = h + kRecordHeaderSize;
  const size_t end = pos_ + kRecordHeaderSize + hdr.length;
  if (hdr.payload_crc != crc32c::Value(payload, hdr.length)) {
    bool nothing_after = AllZeroFrom(end);
    return Damage(nothing_after ? "record payload checksum mismatch"
                                : "record payload checksum mismatch, data follows",
                  nothing_after);
  }
  record->type = hdr.type;
  record->offset = pos_;
  record->payload = std::string_view(payload, hdr.length);
  pos_ = end;
  return Result::kRecord;
}

}  // namespace verdict::coordinator::storage
