// Helpers shared by the fuzz targets: a reader over the fuzzer's bytes, and a check that
// aborts (which libFuzzer, and the replay driver, report as a failure with its input).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace verdict::fuzz {

// Consumes the fuzzer's bytes; past the end, every read gives zeros (empty strings).
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  uint8_t Byte() { return empty() ? 0 : *p_++; }
  std::string Bytes(size_t n) {
    std::string s;
    while (n-- > 0 && !empty()) s.push_back(static_cast<char>(*p_++));
    return s;
  }
  std::string Rest() { return Bytes(left()); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace verdict::fuzz
