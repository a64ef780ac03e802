// RewritePlaceholders: ? -> $n outside literals, identifiers and comments.
#include "participant/postgres/placeholder.h"

#include <gtest/gtest.h>

#include <string>

namespace verdict::participant::postgres {
namespace {

// Rewrites `sql`, expecting success; returns the text and sets *count.
std::string Rewrite(const std::string& sql, int* count = nullptr) {
  std::string out;
  int n = -1;
  Status s = RewritePlaceholders(sql, &out, &n);
  EXPECT_TRUE(s.ok()) << s.ToString() << " for: " << sql;
  if (count != nullptr) *count = n;
  return out;
}

Status RewriteError(const std::string& sql) {
  std::string out;
  int n = 0;
  return RewritePlaceholders(sql, &out, &n);
}

TEST(RewritePlaceholders, Plain_NumbersInOrder) {
  int n = 0;
  EXPECT_EQ(Rewrite("UPDATE a SET b = b + ? WHERE id = ? AND c > ?", &n),
            "UPDATE a SET b = b + $1 WHERE id = $2 AND c > $3");
  EXPECT_EQ(n, 3);
}

TEST(RewritePlaceholders, NoPlaceholders_Unchanged) {
  int n = -1;
  EXPECT_EQ(Rewrite("SELECT 1", &n), "SELECT 1");
  EXPECT_EQ(n, 0);
  EXPECT_EQ(Rewrite("", &n), "");
  EXPECT_EQ(n, 0);
}

TEST(RewritePlaceholders, AdjacentAndAtEdges) {
  int n = 0;
  EXPECT_EQ(Rewrite("?", &n), "$1");
  EXPECT_EQ(Rewrite("VALUES(?,?)", &n), "VALUES($1,$2)");
  EXPECT_EQ(n, 2);
}

TEST(RewritePlaceholders, DoubledQuestionMark_IsLiteral) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT j ?? 'k', j ??| ? FROM t WHERE id = ?", &n),
            "SELECT j ? 'k', j ?| $1 FROM t WHERE id = $2");
  EXPECT_EQ(n, 2);
}

TEST(RewritePlaceholders, InsideStringLiteral_Untouched) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT 'what?', ? ", &n), "SELECT 'what?', $1 ");
  EXPECT_EQ(n, 1);
  EXPECT_EQ(Rewrite("SELECT 'it''s ?', ?", &n), "SELECT 'it''s ?', $1");
  EXPECT_EQ(Rewrite("SELECT '', ?", &n), "SELECT '', $1");
}

TEST(RewritePlaceholders, EscapeString_BackslashQuoteDoesNotClose) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT E'a\\'?', ?", &n), "SELECT E'a\\'?', $1");
  EXPECT_EQ(n, 1);
  EXPECT_EQ(Rewrite("SELECT e'\\\\', ?", &n), "SELECT e'\\\\', $1");
  // In a standard string a backslash is an ordinary character.
  EXPECT_EQ(Rewrite("SELECT 'a\\', ?", &n), "SELECT 'a\\', $1");
}

TEST(RewritePlaceholders, QuotedIdentifier_Untouched) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT \"col?\", \"a\"\"?\" FROM t WHERE x = ?", &n),
            "SELECT \"col?\", \"a\"\"?\" FROM t WHERE x = $1");
  EXPECT_EQ(n, 1);
}

TEST(RewritePlaceholders, Comments_Untouched) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT ? -- why?\n, ?", &n), "SELECT $1 -- why?\n, $2");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(Rewrite("SELECT /* ? /* nested ? */ still ? */ ?", &n),
            "SELECT /* ? /* nested ? */ still ? */ $1");
  EXPECT_EQ(n, 1);
  EXPECT_EQ(Rewrite("SELECT 1 -- trailing ?", &n), "SELECT 1 -- trailing ?");
  EXPECT_EQ(n, 0);
}

TEST(RewritePlaceholders, DollarQuoted_Untouched) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT $$a?b$$, $fn$ ' ? $$ $fn$, ?", &n),
            "SELECT $$a?b$$, $fn$ ' ? $$ $fn$, $1");
  EXPECT_EQ(n, 1);
}

TEST(RewritePlaceholders, DollarInIdentifier_NotAQuote) {
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT a$b, ? FROM t$1", &n), "SELECT a$b, $1 FROM t$1");
  EXPECT_EQ(n, 1);
}

TEST(RewritePlaceholders, Unterminated_InvalidArgument) {
  EXPECT_EQ(RewriteError("SELECT 'abc, ?").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RewriteError("SELECT \"abc, ?").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RewriteError("SELECT /* ?").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RewriteError("SELECT /* /* */ ?").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RewriteError("SELECT $x$ ?").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RewriteError("SELECT E'\\'").code(), Status::Code::kInvalidArgument);
}

TEST(RewritePlaceholders, NativeDollarParameter_Rejected) {
  Status s = RewriteError("SELECT $1, ?");
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("?"), std::string::npos);
  // Inside a literal it is just text.
  int n = 0;
  EXPECT_EQ(Rewrite("SELECT '$1', ?", &n), "SELECT '$1', $1");
}

TEST(RewritePlaceholders, TooMany_InvalidArgument) {
  std::string sql = "SELECT ";
  for (int i = 0; i < 65536; ++i) sql += "?,";
  sql += "1";
  EXPECT_EQ(RewriteError(sql).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace verdict::participant::postgres
