// Random: the simulator's single seeded source of randomness. Every choice a run makes
// (fault, delay, client action) draws from one of these, so a seed replays exactly.
// Not thread-safe (the simulator is single-threaded).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace verdict::sim {

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  Random(const Random&) = delete;
  Random& operator=(const Random&) = delete;

  uint64_t Next() { return gen_(); }
  // Uniform in [lo, hi] (inclusive). Own arithmetic, not std::uniform_int_distribution,
  // so the sequence does not depend on the standard library.
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + gen_() % (hi - lo + 1); }
  int64_t RangeSigned(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(gen_() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Uniform in [0, 1).
  double Real() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  double RealRange(double lo, double hi) { return lo + (hi - lo) * Real(); }
  bool Chance(double p) { return Real() < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Range(0, v.size() - 1)];
  }

 private:
  std::mt19937_64 gen_;
};

}  // namespace verdict::sim
