#include "coordinator/txn/gtid.h"

#include <gtest/gtest.h>

namespace verdict::coordinator::txn {
namespace {

TEST(Gtid, FormatParse_RoundTrip) {
  for (Gtid g : {Gtid{1, 1, 1}, Gtid{7, 2, 1534}, Gtid{UINT64_MAX, 3, UINT64_MAX}}) {
    Gtid back;
    ASSERT_TRUE(ParseGtid(FormatGtid(g), &back)) << FormatGtid(g);
    EXPECT_EQ(back, g);
  }
  EXPECT_EQ(FormatGtid({7, 2, 15}), "7.2.15");
}

TEST(Gtid, Parse_RejectsMalformed) {
  Gtid g;
  for (const char* bad :
       {"", "1", "1.2", "1.2.3.4", "0.1.1", "1.0.1", "1.1.0", "01.1.1", "1..1", ".1.1", "1.1.",
        "a.b.c", "1.1.1x", " 1.1.1", "-1.1.1", "+1.1.1", "18446744073709551616.1.1", "1:1:1"}) {
    EXPECT_FALSE(ParseGtid(bad, &g)) << bad;
  }
}

TEST(Gtid, Order_TermThenNodeThenSeq) {
  EXPECT_LT((Gtid{1, 9, 9}), (Gtid{2, 1, 1}));
  EXPECT_LT((Gtid{2, 1, 9}), (Gtid{2, 2, 1}));
  EXPECT_LT((Gtid{2, 2, 1}), (Gtid{2, 2, 2}));
}

}  // namespace
}  // namespace verdict::coordinator::txn
