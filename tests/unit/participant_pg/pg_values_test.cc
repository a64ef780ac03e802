// BuildParams: Verdict's typed values in libpq's parameter layout.
#include "participant/postgres/pg_values.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace verdict::participant::postgres {
namespace {

TEST(BuildParams, EachTypeHasItsOidFormatAndText) {
  PgParams p;
  BuildParams({SqlValue::Null(), SqlValue::Integer(-9223372036854775807LL - 1), SqlValue::Real(0.1),
               SqlValue::Text("héllo"), SqlValue::Blob(std::string("\0\xff", 2))},
              &p);
  ASSERT_EQ(p.size(), 5);
  EXPECT_EQ(p.values[0], nullptr);
  EXPECT_EQ(p.types[1], 20u);
  EXPECT_STREQ(p.values[1], "-9223372036854775808");
  EXPECT_EQ(p.types[2], 701u);
  EXPECT_STREQ(p.values[2], "0.1");
  EXPECT_EQ(p.types[3], 0u);
  EXPECT_EQ(std::string(p.values[3], p.lengths[3]), "héllo");
  EXPECT_EQ(p.types[4], 17u);
  EXPECT_EQ(p.formats[4], 1);
  EXPECT_EQ(p.lengths[4], 2);
  EXPECT_EQ(std::string(p.values[4], 2), std::string("\0\xff", 2));
}

TEST(BuildParams, NonFiniteRealsUsePostgresSpelling) {
  PgParams p;
  BuildParams(
      {SqlValue::Real(std::numeric_limits<double>::infinity()),
       SqlValue::Real(-std::numeric_limits<double>::infinity()), SqlValue::Real(std::nan(""))},
      &p);
  EXPECT_STREQ(p.values[0], "Infinity");
  EXPECT_STREQ(p.values[1], "-Infinity");
  EXPECT_STREQ(p.values[2], "NaN");
}

}  // namespace
}  // namespace verdict::participant::postgres
