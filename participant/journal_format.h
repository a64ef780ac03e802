// The on-disk format of the agent's branch journal (branches.journal). Constants and pure
// encode/decode functions; thread-safe.
//
//   file   := record*
//   record := masked_crc32c:fixed32  length:fixed32  body[length]
//   body   := version:u8(=1) state:u8 protocol:u8 gtid:lp branch:lp voted_unix_ms:fixed64
//             n_participants:varint (name:lp address:lp branch:lp)* rm_payload:lp
//   lp     := length:varint bytes
// The CRC covers `length` and `body`. Recovery truncates a torn final record and refuses a
// corrupt record followed by more data.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "participant/branch_journal.h"

namespace verdict::participant::journal_format {

inline constexpr size_t kHeaderSize = 8;
inline constexpr uint8_t kVersion = 1;
inline constexpr uint32_t kMaxRecordBytes = 256u << 20;

// Appends the framed record to *dst.
void EncodeRecord(const JournalRecord& record, std::string* dst);

// Decodes one body (without the header). Corruption if malformed.
Status DecodeBody(std::string_view body, JournalRecord* record);

}  // namespace verdict::participant::journal_format
