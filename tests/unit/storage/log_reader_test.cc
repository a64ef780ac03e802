// SegmentReader: torn tail vs corruption, on hand-built segment bytes.
#include "coordinator/storage/log_reader.h"

#include <gtest/gtest.h>

#include <string>

#include "coordinator/storage/log_record.h"

namespace verdict::coordinator::storage {
namespace {

using Result = SegmentReader::Result;

class SegmentReaderTest : public ::testing::Test {
 protected:
  // Appends an entry record and returns its offset.
  size_t Add(raft::Index index, const std::string& data = "payload") {
    size_t offset = bytes_.size();
    AppendEntryRecord(&bytes_, raft::Entry{1, index, raft::EntryType::kNormal, data});
    return offset;
  }
  void CorruptByte(size_t offset) { bytes_[offset] = static_cast<char>(bytes_[offset] ^ 0x40); }
  // Reads every record; returns the final result and counts the records.
  Result ReadAll(bool is_last, int* records = nullptr, uint64_t* damage = nullptr) {
    SegmentReader reader(bytes_, is_last);
    RecordView r;
    Result result;
    int n = 0;
    while ((result = reader.Next(&r)) == Result::kRecord) ++n;
    if (records) *records = n;
    if (damage) *damage = reader.damage_offset();
    return result;
  }

  std::string bytes_;
};

TEST_F(SegmentReaderTest, Next_ReadsEveryRecordThenEnd) {
  Add(1);
  Add(2, "");
  Add(3, std::string(10000, 'x'));
  int n;
  EXPECT_EQ(ReadAll(true, &n), Result::kEnd);
  EXPECT_EQ(n, 3);
}

TEST_F(SegmentReaderTest, Next_EmptySegmentIsEnd) { EXPECT_EQ(ReadAll(true), Result::kEnd); }

TEST_F(SegmentReaderTest, Next_TruncatedFinalRecordIsTornOnlyInLastSegment) {
  Add(1);
  size_t last = Add(2);
  const std::string full = bytes_;
  for (size_t cut = last + 1; cut < full.size(); ++cut) {
    bytes_ = full.substr(0, cut);
    int n;
    uint64_t damage;
    EXPECT_EQ(ReadAll(true, &n, &damage), Result::kTornTail) << cut;
    EXPECT_EQ(n, 1);
    EXPECT_EQ(damage, last);
    EXPECT_EQ(ReadAll(false), Result::kCorruption) << cut;
  }
}

TEST_F(SegmentReaderTest, Next_ZeroFilledTailIsTorn) {
  Add(1);
  size_t last = Add(2);
  bytes_.resize(last);
  bytes_.append(4096, '\0');
  uint64_t damage;
  EXPECT_EQ(ReadAll(true, nullptr, &damage), Result::kTornTail);
  EXPECT_EQ(damage, last);
}

TEST_F(SegmentReaderTest, Next_BadPayloadChecksumOfFinalRecordIsTorn) {
  Add(1);
  size_t last = Add(2);
  CorruptByte(last + format::kRecordHeaderSize + 2);
  EXPECT_EQ(ReadAll(true), Result::kTornTail);
  bytes_.append(100, '\0');  // zero fill after it: still torn
  EXPECT_EQ(ReadAll(true), Result::kTornTail);
}

TEST_F(SegmentReaderTest, Next_BadPayloadChecksumWithDataAfterIsCorruption) {
  size_t first = Add(1);
  Add(2);
  CorruptByte(first + format::kRecordHeaderSize + 2);
  uint64_t damage;
  EXPECT_EQ(ReadAll(true, nullptr, &damage), Result::kCorruption);
  EXPECT_EQ(damage, first);
}

TEST_F(SegmentReaderTest, Next_BadHeaderWithIntactRecordAfterIsCorruption) {
  Add(1);
  size_t mid = Add(2);
  Add(3);
  CorruptByte(mid + 8);  // the length field
  uint64_t damage;
  EXPECT_EQ(ReadAll(true, nullptr, &damage), Result::kCorruption);
  EXPECT_EQ(damage, mid);
}

TEST_F(SegmentReaderTest, Next_BadHeaderOfFinalRecordIsTorn) {
  Add(1);
  size_t last = Add(2);
  for (size_t i = 0; i < format::kRecordHeaderSize; ++i) {
    std::string saved = bytes_;
    CorruptByte(last + i);
    EXPECT_EQ(ReadAll(true), Result::kTornTail) << "header byte " << i;
    bytes_ = saved;
  }
}

TEST_F(SegmentReaderTest, Next_ZerosThenIntactRecordIsCorruption) {
  Add(1);
  size_t hole = bytes_.size();
  bytes_.append(64, '\0');
  Add(2);
  uint64_t damage;
  EXPECT_EQ(ReadAll(true, nullptr, &damage), Result::kCorruption);
  EXPECT_EQ(damage, hole);
}

}  // namespace
}  // namespace verdict::coordinator::storage
