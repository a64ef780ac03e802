// FatalError: stops the process at once after a storage failure or a broken invariant,
// with one log line and a non-zero exit. Nothing runs after it (no destructors, no more
// messages): a node must never continue after a failed fsync. Thread-safe.
#pragma once

#include <string_view>

namespace verdict::coordinator::server {

inline constexpr int kExitFatal = 3;

[[noreturn]] void FatalError(std::string_view what);

}  // namespace verdict::coordinator::server
