#include "participant/postgres/placeholder.h"

#include <cctype>

namespace verdict::participant::postgres {
namespace {

constexpr int kMaxParams = 65535;  // libpq's limit on one statement's parameters

bool IsIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool IsIdentChar(char c) {
  return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// If a dollar-quote opening tag ($$ or $tag$) starts at sql[i], returns its length; else 0.
size_t DollarTagLength(std::string_view sql, size_t i) {
  size_t j = i + 1;
  if (j < sql.size() && sql[j] == '$') return 2;
  if (j >= sql.size() || !IsIdentStart(sql[j])) return 0;
  while (j < sql.size() &&
         (IsIdentStart(sql[j]) || std::isdigit(static_cast<unsigned char>(sql[j])))) {
    ++j;
  }
  if (j < sql.size() && sql[j] == '$') return j - i + 1;
  return 0;
}

}  // namespace

Status RewritePlaceholders(std::string_view sql, std::string* out, int* param_count) {
  std::string result;
  result.reserve(sql.size() + 16);
  int count = 0;
  size_t i = 0;
  const size_t n = sql.size();
  // Appends sql[from, to) verbatim.
  auto copy = [&](size_t from, size_t to) { result.append(sql.substr(from, to - from)); };

  while (i < n) {
    const char c = sql[i];
    const char prev = i > 0 ? sql[i - 1] : '\0';
    const char next = i + 1 < n ? sql[i + 1] : '\0';

    if (c == '\'') {
      // A string literal. E'...' (escape string) honours backslashes; others only ''.
      const bool escape_string =
          i > 0 && (prev == 'E' || prev == 'e') && (i < 2 || !IsIdentChar(sql[i - 2]));
      size_t j = i + 1;
      bool closed = false;
      while (j < n) {
        if (escape_string && sql[j] == '\\') {
          j += 2;
          continue;
        }
        if (sql[j] == '\'') {
          if (j + 1 < n && sql[j + 1] == '\'') {
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        ++j;
      }
      if (!closed) return Status::InvalidArgument("unterminated string literal in SQL");
      copy(i, j);
      i = j;
    } else if (c == '"') {
      size_t j = i + 1;
      bool closed = false;
      while (j < n) {
        if (sql[j] == '"') {
          if (j + 1 < n && sql[j + 1] == '"') {
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        ++j;
      }
      if (!closed) return Status::InvalidArgument("unterminated quoted identifier in SQL");
      copy(i, j);
      i = j;
    } else if (c == '-' && next == '-') {
      size_t j = sql.find('\n', i);
      j = j == std::string_view::npos ? n : j + 1;
      copy(i, j);
      i = j;
    } else if (c == '/' && next == '*') {
      // Block comments nest in PostgreSQL.
      int depth = 1;
      size_t j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] == '/' && j + 1 < n && sql[j + 1] == '*') {
          ++depth;
          j += 2;
        } else if (sql[j] == '*' && j + 1 < n && sql[j + 1] == '/') {
          --depth;
          j += 2;
        } else {
          ++j;
        }
      }
      if (depth > 0) return Status::InvalidArgument("unterminated /* comment */ in SQL");
      copy(i, j);
      i = j;
    } else if (c == '$' && !IsIdentChar(prev)) {
      if (std::isdigit(static_cast<unsigned char>(next))) {
        return Status::InvalidArgument(
            "SQL contains a native $n parameter; write parameters as ? placeholders");
      }
      const size_t tag_len = DollarTagLength(sql, i);
      if (tag_len == 0) {
        result += c;
        ++i;
        continue;
      }
      const std::string_view tag = sql.substr(i, tag_len);
      const size_t end = sql.find(tag, i + tag_len);
      if (end == std::string_view::npos) {
        return Status::InvalidArgument("unterminated dollar-quoted string in SQL");
      }
      copy(i, end + tag_len);
      i = end + tag_len;
    } else if (c == '?') {
      if (next == '?') {
        result += '?';
        i += 2;
        continue;
      }
      if (++count > kMaxParams) {
        return Status::InvalidArgument("more than 65535 ? placeholders in one statement");
      }
      result += '$';
      result += std::to_string(count);
      ++i;
    } else {
      result += c;
      ++i;
    }
  }
  *out = std::move(result);
  *param_count = count;
  return Status::OK();
}

}  // namespace verdict::participant::postgres
