// Conversion between Verdict's typed SQL values (participant/resource_manager.h) and libpq:
// parameters out, result rows in. Pure functions; thread-safe.
//
// Parameters: kInteger is sent as int8, kReal as float8, kText as an untyped literal (the
// server infers the column's type, as SQLite's flexible typing would), kBlob as binary
// bytea, kNull as an untyped NULL.
// Results: int2/int4/int8/oid -> kInteger; bool -> kInteger 0/1; float4/float8 -> kReal;
// bytea -> kBlob; NULL -> kNull; everything else (numeric, text, dates, json...) -> kText
// in PostgreSQL's text form.
#pragma once

#include <libpq-fe.h>

#include <vector>

#include "common/status.h"
#include "participant/postgres/pg_connection.h"
#include "participant/resource_manager.h"

namespace verdict::participant::postgres {

// Fills `out` (libpq's layout) from `params`.
void BuildParams(const std::vector<SqlValue>& params, PgParams* out);

// Decodes a successful result into *out (columns, typed rows, rows_affected).
// Corruption if the server sent a value that does not parse as its declared type.
Status DecodeResult(const PGresult* result, QueryResult* out);

}  // namespace verdict::participant::postgres
