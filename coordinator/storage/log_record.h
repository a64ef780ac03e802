// Framing and payload codecs of WAL records (layout in log_format.h and
// docs/storage-format.md). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "coordinator/raft/types.h"
#include "coordinator/storage/log_format.h"

namespace verdict::coordinator::storage {

namespace raft = ::verdict::coordinator::raft;

// Each Append*Record appends one complete framed record (header + payload) to *dst,
// encoding the payload in place (no temporary copies).
void AppendSegmentHeaderRecord(std::string* dst, uint64_t seq);
void AppendHardStateRecord(std::string* dst, const raft::HardState& hard_state);
void AppendEntryRecord(std::string* dst, const raft::Entry& entry);
void AppendLogResetRecord(std::string* dst, raft::Index index, raft::Term term);

// Payload decoders: false if the payload is malformed (wrong size, bad magic or version,
// trailing bytes, an unknown entry type, an entry or reset at index 0).
bool DecodeSegmentHeader(std::string_view payload, uint64_t* seq);
bool DecodeHardState(std::string_view payload, raft::HardState* hard_state);
bool DecodeEntry(std::string_view payload, raft::Entry* entry);
bool DecodeLogReset(std::string_view payload, raft::Index* index, raft::Term* term);

// Header fields of a record starting at `header` (kRecordHeaderSize bytes available).
struct RecordHeader {
  uint32_t header_crc;   // unmasked
  uint32_t payload_crc;  // unmasked
  uint32_t length;
  uint8_t type;
  bool reserved_zero;
};
RecordHeader ParseRecordHeader(const char* header);
// crc32c of header bytes [4,16), which header_crc must equal.
uint32_t ComputeHeaderCrc(const char* header);

}  // namespace verdict::coordinator::storage
