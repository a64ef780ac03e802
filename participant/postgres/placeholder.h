// Rewrites Verdict's portable `?` parameter placeholders into PostgreSQL's `$1..$n`.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace verdict::participant::postgres {

// Rewrites every `?` that is outside string literals ('...', E'...' with backslash escapes,
// $tag$...$tag$), quoted identifiers ("...") and comments (-- and nested /* */) into $1, $2,
// ... in order. `??` is an escaped literal `?` (for the jsonb operators ?, ?| and ?&).
// On success *out is the rewritten text and *param_count the number of placeholders.
// InvalidArgument: an unterminated literal, identifier or comment; a native `$n` parameter
// outside quotes (mixing styles would misnumber them); more than 65535 placeholders.
Status RewritePlaceholders(std::string_view sql, std::string* out, int* param_count);

}  // namespace verdict::participant::postgres
