// VERDICT_PANIC: stop the process on a broken invariant or corrupt durable state.
// Thread-safe (writes one line to stderr, then aborts).
#pragma once

#include <cstdio>
#include <cstdlib>

#define VERDICT_PANIC(...)                                     \
  do {                                                         \
    std::fprintf(stderr, "PANIC %s:%d: ", __FILE__, __LINE__); \
    std::fprintf(stderr, __VA_ARGS__);                         \
    std::fprintf(stderr, "\n");                                \
    std::fflush(stderr);                                       \
    std::abort();                                              \
  } while (0)

#define VERDICT_CHECK(cond)                                \
  do {                                                     \
    if (!(cond)) VERDICT_PANIC("check failed: %s", #cond); \
  } while (0)
