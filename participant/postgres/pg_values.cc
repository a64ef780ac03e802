#include "participant/postgres/pg_values.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace verdict::participant::postgres {
namespace {

// Type OIDs from PostgreSQL's pg_type.dat (stable across versions).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;

std::string FormatReal(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest exact round trip
  return std::string(buf, r.ptr);
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

void BuildParams(const std::vector<SqlValue>& params, PgParams* out) {
  const size_t n = params.size();
  out->storage.assign(n, std::string());
  out->types.assign(n, 0);
  out->values.assign(n, nullptr);
  out->lengths.assign(n, 0);
  out->formats.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const SqlValue& v = params[i];
    switch (v.type) {
      case SqlType::kNull:
        continue;  // values[i] stays null
      case SqlType::kInteger:
        out->types[i] = kInt8Oid;
        out->storage[i] = std::to_string(v.integer);
        break;
      case SqlType::kReal:
        out->types[i] = kFloat8Oid;
        out->storage[i] = FormatReal(v.real);
        break;
      case SqlType::kText:
        out->storage[i] = v.bytes;
        break;
      case SqlType::kBlob:
        out->types[i] = kByteaOid;
        out->storage[i] = v.bytes;
        out->formats[i] = 1;
        break;
    }
    out->lengths[i] = static_cast<int>(out->storage[i].size());
  }
  // Pointers last: `storage` no longer reallocates.
  for (size_t i = 0; i < n; ++i) {
    if (params[i].type != SqlType::kNull) out->values[i] = out->storage[i].data();
  }
}

Status DecodeResult(const PGresult* result, QueryResult* out) {
  out->columns.clear();
  out->rows.clear();
  out->rows_affected = 0;
  const std::string_view tag = PQcmdStatus(const_cast<PGresult*>(result));
  if (StartsWith(tag, "INSERT") || StartsWith(tag, "UPDATE") || StartsWith(tag, "DELETE") ||
      StartsWith(tag, "MERGE")) {
    out->rows_affected = std::strtoll(PQcmdTuples(const_cast<PGresult*>(result)), nullptr, 10);
  }
  const int ncols = PQnfields(result);
  const int nrows = PQntuples(result);
  out->columns.reserve(ncols);
  std::vector<Oid> types(ncols);
  for (int c = 0; c < ncols; ++c) {
    out->columns.emplace_back(PQfname(result, c));
    types[c] = PQftype(result, c);
  }
  out->rows.reserve(nrows);
  for (int r = 0; r < nrows; ++r) {
    SqlRow row;
    row.reserve(ncols);
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(result, r, c)) {
        row.push_back(SqlValue::Null());
        continue;
      }
      const char* text = PQgetvalue(result, r, c);
      const int len = PQgetlength(result, r, c);
      switch (types[c]) {
        case kInt2Oid:
        case kInt4Oid:
        case kInt8Oid:
        case kOidOid: {
          int64_t v = 0;
          auto [ptr, ec] = std::from_chars(text, text + len, v);
          if (ec != std::errc() || ptr != text + len) {
            return Status::Corruption("postgres: bad integer in column " + out->columns[c]);
          }
          row.push_back(SqlValue::Integer(v));
          break;
        }
        case kBoolOid:
          row.push_back(SqlValue::Integer(text[0] == 't' ? 1 : 0));
          break;
        case kFloat4Oid:
        case kFloat8Oid: {
          char* end = nullptr;
          const double v = std::strtod(text, &end);  // also parses Infinity / NaN
          if (end != text + len) {
            return Status::Corruption("postgres: bad float in column " + out->columns[c]);
          }
          row.push_back(SqlValue::Real(v));
          break;
        }
        case kByteaOid: {
          size_t n = 0;
          unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &n);
          if (bytes == nullptr) {
            return Status::Corruption("postgres: bad bytea in column " + out->columns[c]);
          }
          row.push_back(SqlValue::Blob(std::string(reinterpret_cast<char*>(bytes), n)));
          PQfreemem(bytes);
          break;
        }
        default:
          row.push_back(SqlValue::Text(std::string(text, len)));
          break;
      }
    }
    out->rows.push_back(std::move(row));
  }
  return Status::OK();
}

}  // namespace verdict::participant::postgres
