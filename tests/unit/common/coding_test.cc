#include "common/coding.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace verdict {
namespace {

TEST(CodingTest, Fixed32_RoundTripsLittleEndian) {
  std::string s;
  PutFixed32(&s, 0x04030201u);
  ASSERT_EQ(s, std::string("\x01\x02\x03\x04", 4));
  std::string_view in = s;
  uint32_t v;
  ASSERT_TRUE(GetFixed32(&in, &v));
  EXPECT_EQ(v, 0x04030201u);
  EXPECT_TRUE(in.empty());
  EXPECT_FALSE(GetFixed32(&in, &v));
}

TEST(CodingTest, Fixed64_RoundTrips) {
  std::string s;
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x0102030405060708},
                     std::numeric_limits<uint64_t>::max()}) {
    PutFixed64(&s, v);
  }
  std::string_view in = s;
  for (uint64_t want : {uint64_t{0}, uint64_t{1}, uint64_t{0x0102030405060708},
                        std::numeric_limits<uint64_t>::max()}) {
    uint64_t v;
    ASSERT_TRUE(GetFixed64(&in, &v));
    EXPECT_EQ(v, want);
  }
  EXPECT_EQ(DecodeFixed64(s.data() + 16), 0x0102030405060708u);
}

TEST(CodingTest, Varint64_RoundTripsBoundaries) {
  std::vector<uint64_t> values;
  for (int shift = 0; shift < 64; ++shift) {
    uint64_t p = uint64_t{1} << shift;
    values.push_back(p - 1);
    values.push_back(p);
    values.push_back(p + 1);
  }
  values.push_back(std::numeric_limits<uint64_t>::max());
  std::string s;
  for (uint64_t v : values) PutVarint64(&s, v);
  std::string_view in = s;
  for (uint64_t want : values) {
    uint64_t v;
    ASSERT_TRUE(GetVarint64(&in, &v));
    EXPECT_EQ(v, want);
  }
  EXPECT_TRUE(in.empty());
}

TEST(CodingTest, Varint64_RejectsTruncatedAndOverlong) {
  std::string s;
  PutVarint64(&s, std::numeric_limits<uint64_t>::max());
  ASSERT_EQ(s.size(), 10u);
  for (size_t n = 0; n < s.size(); ++n) {
    std::string_view in(s.data(), n);
    uint64_t v;
    EXPECT_FALSE(GetVarint64(&in, &v)) << n;
  }
  std::string overflow(9, '\xff');
  overflow.push_back('\x02');  // bit 64 set
  std::string_view in = overflow;
  uint64_t v;
  EXPECT_FALSE(GetVarint64(&in, &v));
  std::string eleven(10, '\x80');
  eleven.push_back('\x00');
  in = eleven;
  EXPECT_FALSE(GetVarint64(&in, &v));
}

TEST(CodingTest, LengthPrefixed_RoundTripsAndRejectsShort) {
  std::string s;
  PutLengthPrefixed(&s, "abc");
  PutLengthPrefixed(&s, "");
  std::string_view in = s, a, b;
  ASSERT_TRUE(GetLengthPrefixed(&in, &a));
  ASSERT_TRUE(GetLengthPrefixed(&in, &b));
  EXPECT_EQ(a, "abc");
  EXPECT_EQ(b, "");
  std::string_view truncated(s.data(), 3);
  EXPECT_FALSE(GetLengthPrefixed(&truncated, &a));
}

}  // namespace
}  // namespace verdict
