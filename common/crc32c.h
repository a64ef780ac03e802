// CRC32C (Castagnoli polynomial), the checksum of every durable record, with a masked form
// for checksums stored next to the data they cover. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace verdict::crc32c {

// Returns the CRC32C of concat(A, data[0, n)) where `crc` is the CRC32C of A.
// Uses the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 otherwise.
uint32_t Extend(uint32_t crc, const char* data, size_t n);

// The table-driven implementation, always available (exposed for tests).
uint32_t ExtendPortable(uint32_t crc, const char* data, size_t n);

// True if Extend() uses the hardware instruction on this machine.
bool IsHardwareAccelerated();

inline uint32_t Value(const char* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

// A CRC computed over bytes that themselves contain CRCs is weak, so stored CRCs are
// masked (rotated and offset, as LevelDB does). Unmask(Mask(c)) == c.
constexpr uint32_t kMaskDelta = 0xa282ead8u;

inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace verdict::crc32c
