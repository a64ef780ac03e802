#include "coordinator/storage/log_record.h"

#include "common/coding.h"
#include "common/crc32c.h"

namespace verdict::coordinator::storage {
namespace {

using format::kRecordHeaderSize;
using format::RecordType;

void EncodeFixed32To(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Reserves the header; the payload is then appended directly after it.
size_t BeginRecord(std::string* dst) {
  size_t start = dst->size();
  dst->append(kRecordHeaderSize, '\0');
  return start;
}

// Fills the header of the record that starts at `start` and runs to the end of *dst.
void FinishRecord(std::string* dst, size_t start, RecordType type) {
  char* h = dst->data() + start;
  const size_t length = dst->size() - start - kRecordHeaderSize;
  EncodeFixed32To(h + 4, crc32c::Mask(crc32c::Value(h + kRecordHeaderSize, length)));
  EncodeFixed32To(h + 8, static_cast<uint32_t>(length));
  h[12] = static_cast<char>(type);
  h[13] = h[14] = h[15] = 0;
  EncodeFixed32To(h, crc32c::Mask(ComputeHeaderCrc(h)));
}

}  // namespace

uint32_t ComputeHeaderCrc(const char* header) { return crc32c::Value(header + 4, 12); }

RecordHeader ParseRecordHeader(const char* h) {
  RecordHeader r;
  r.header_crc = crc32c::Unmask(DecodeFixed32(h));
  r.payload_crc = crc32c::Unmask(DecodeFixed32(h + 4));
  r.length = DecodeFixed32(h + 8);
  r.type = static_cast<uint8_t>(h[12]);
  r.reserved_zero = h[13] == 0 && h[14] == 0 && h[15] == 0;
  return r;
}

void AppendSegmentHeaderRecord(std::string* dst, uint64_t seq) {
  size_t start = BeginRecord(dst);
  dst->append(format::kSegmentMagic);
  PutFixed32(dst, format::kSegmentVersion);
  PutFixed64(dst, seq);
  FinishRecord(dst, start, RecordType::kSegmentHeader);
}

void AppendHardStateRecord(std::string* dst, const raft::HardState& hs) {
  size_t start = BeginRecord(dst);
  PutVarint64(dst, hs.term);
  PutVarint64(dst, hs.vote);
  PutVarint64(dst, hs.commit);
  FinishRecord(dst, start, RecordType::kHardState);
}

void AppendEntryRecord(std::string* dst, const raft::Entry& e) {
  size_t start = BeginRecord(dst);
  PutVarint64(dst, e.term);
  PutVarint64(dst, e.index);
  dst->push_back(static_cast<char>(e.type));
  dst->append(e.data);
  FinishRecord(dst, start, RecordType::kEntry);
}

void AppendLogResetRecord(std::string* dst, raft::Index index, raft::Term term) {
  size_t start = BeginRecord(dst);
  PutVarint64(dst, index);
  PutVarint64(dst, term);
  FinishRecord(dst, start, RecordType::kLogReset);
}

bool DecodeSegmentHeader(std::string_view in, uint64_t* seq) {
  uint32_t version;
  if (in.substr(0, format::kSegmentMagic.size()) != format::kSegmentMagic) return false;
  in.remove_prefix(format::kSegmentMagic.size());
  return GetFixed32(&in, &version) && version == format::kSegmentVersion && GetFixed64(&in, seq) &&
         in.empty();
}

bool DecodeHardState(std::string_view in, raft::HardState* hs) {
  return GetVarint64(&in, &hs->term) && GetVarint64(&in, &hs->vote) &&
         GetVarint64(&in, &hs->commit) && in.empty();
}

bool DecodeEntry(std::string_view in, raft::Entry* e) {
  if (!GetVarint64(&in, &e->term) || !GetVarint64(&in, &e->index) || e->index == 0 || in.empty()) {
    return false;
  }
  auto type = static_cast<uint8_t>(in.front());
  if (type > static_cast<uint8_t>(raft::EntryType::kConfChange)) return false;
  e->type = static_cast<raft::EntryType>(type);
  in.remove_prefix(1);
  e->data.assign(in.data(), in.size());
  return true;
}

bool DecodeLogReset(std::string_view in, raft::Index* index, raft::Term* term) {
  return GetVarint64(&in, index) && *index != 0 && GetVarint64(&in, term) && in.empty();
}

}  // namespace verdict::coordinator::storage
