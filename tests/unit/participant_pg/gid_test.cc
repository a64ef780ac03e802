// The gid format verdict:<gtid>:<participant>:<branch>: encoding, limits, parsing.
#include "participant/postgres/gid.h"

#include <gtest/gtest.h>

#include <string>

namespace verdict::participant::postgres {
namespace {

TEST(Gid, MakeGid_PlainFieldsVerbatim) {
  std::string gid;
  ASSERT_TRUE(MakeGid("shard_a", BranchKey{"t1-42", "b0"}, &gid).ok());
  EXPECT_EQ(gid, "verdict:t1-42:shard_a:b0");
}

TEST(Gid, MakeGid_QuotesAndSpecialsAreEncoded) {
  std::string gid;
  ASSERT_TRUE(MakeGid("p", BranchKey{"a'b\\c", "x y%"}, &gid).ok());
  EXPECT_EQ(gid, "verdict:a%27b%5Cc:p:x%20y%25");
  EXPECT_EQ(gid.find('\''), std::string::npos);
}

TEST(Gid, ParseGid_RoundTrips) {
  for (const BranchKey& key : {BranchKey{"t1", "b"}, BranchKey{"a'b\\c", "x y%"},
                               BranchKey{"~!@#$^&*()", "{}[]|\"<>,?/"}}) {
    std::string gid;
    ASSERT_TRUE(MakeGid("shard-1", key, &gid).ok());
    std::string participant;
    BranchKey parsed;
    ASSERT_TRUE(ParseGid(gid, &participant, &parsed)) << gid;
    EXPECT_EQ(participant, "shard-1");
    EXPECT_EQ(parsed, key);
  }
}

TEST(Gid, MakeGid_BadFieldsRejected) {
  std::string gid;
  EXPECT_EQ(MakeGid("p", BranchKey{"", "b"}, &gid).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MakeGid("p", BranchKey{"g", ""}, &gid).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MakeGid("", BranchKey{"g", "b"}, &gid).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MakeGid("p", BranchKey{"g:1", "b"}, &gid).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MakeGid("p", BranchKey{"g", "b\n"}, &gid).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MakeGid("p", BranchKey{"g\x80", "b"}, &gid).code(), Status::Code::kInvalidArgument);
}

TEST(Gid, MakeGid_LengthLimit) {
  std::string gid;
  // "verdict:" (8) + gtid + ":p:" (3) + "b" (1) = 12 + gtid.
  ASSERT_TRUE(MakeGid("p", BranchKey{std::string(187, 'g'), "b"}, &gid).ok());
  EXPECT_EQ(gid.size(), kMaxGidBytes);
  Status s = MakeGid("p", BranchKey{std::string(188, 'g'), "b"}, &gid);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("199"), std::string::npos) << s.ToString();
  // Encoding counts: 70 quotes become 210 bytes.
  EXPECT_FALSE(MakeGid("p", BranchKey{std::string(70, '\''), "b"}, &gid).ok());
}

TEST(Gid, ParseGid_RejectsForeignAndMalformed) {
  std::string participant;
  BranchKey key;
  EXPECT_FALSE(ParseGid("other:t:p:b", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict:t:p", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict:t:p:b:x", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict::p:b", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict:t%2:p:b", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict:t%zz:p:b", &participant, &key));
  EXPECT_FALSE(ParseGid("verdict:t%2c:p:b", &participant, &key));  // non-canonical case
  EXPECT_FALSE(ParseGid("verdict:t x:p:b", &participant, &key));
}

TEST(Gid, ValidateParticipantName) {
  EXPECT_TRUE(ValidateParticipantName("shard_a").ok());
  EXPECT_FALSE(ValidateParticipantName("").ok());
  EXPECT_FALSE(ValidateParticipantName("a:b").ok());
  EXPECT_FALSE(ValidateParticipantName(std::string(65, 'p')).ok());
}

}  // namespace
}  // namespace verdict::participant::postgres
