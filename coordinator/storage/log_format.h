// On-disk constants of the decision log (WAL segments and snapshot files); the byte layout
// is specified in docs/storage-format.md. Constants only; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace verdict::coordinator::storage::format {

// ---- WAL records ----
// Every record: a 16-byte header, then `length` payload bytes.
//   [0,4)   masked crc32c of header bytes [4,16)
//   [4,8)   masked crc32c of the payload
//   [8,12)  payload length (little-endian)
//   [12]    record type
//   [13,16) reserved, zero
constexpr size_t kRecordHeaderSize = 16;
constexpr uint32_t kMaxRecordPayload = 256u << 20;  // a larger length is corruption

enum class RecordType : uint8_t {
  kSegmentHeader = 1,  // magic[8] version:u32 seq:u64 — first record of every segment
  kHardState = 2,      // term:varint vote:varint commit:varint
  kEntry = 3,          // term:varint index:varint entry_type:u8 data:rest
  kLogReset = 4,       // index:varint term:varint — every entry dropped; next is index+1
};

constexpr std::string_view kSegmentMagic = "VRDCTWAL";  // 8 bytes
constexpr uint32_t kSegmentVersion = 1;

// ---- file names (in the log directory) ----
// wal-<seq, 16 lower-case hex digits>.log; seq starts at 1 and has no gaps.
constexpr std::string_view kSegmentPrefix = "wal-";
constexpr std::string_view kSegmentSuffix = ".log";
// snap-<index, 16 hex>-<term, 16 hex>.snap; written as <name>.tmp, then renamed.
constexpr std::string_view kSnapshotPrefix = "snap-";
constexpr std::string_view kSnapshotSuffix = ".snap";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr std::string_view kLockFileName = "LOCK";

// ---- snapshot files ----
//   magic[8] version:u32 index:u64 term:u64 membership_len:u32 membership[membership_len]
//   data_len:u64 data_crc:u32 header_crc:u32 data[data_len]
// header_crc = masked crc32c of every header byte before it; data_crc of the data.
constexpr std::string_view kSnapshotMagic = "VRDCTSNP";  // 8 bytes
constexpr uint32_t kSnapshotVersion = 1;
constexpr size_t kSnapshotFixedHeaderSize = 8 + 4 + 8 + 8 + 4 + 8 + 4 + 4;

}  // namespace verdict::coordinator::storage::format
