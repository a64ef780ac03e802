// LatencySamples: every latency a benchmark run observed, kept exactly (nanoseconds) so
// that percentiles are exact rather than bucketed. Not thread-safe: each worker fills its
// own and the runner merges them after the workers have joined.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace verdict::bench {

class LatencySamples {
 public:
  void Reserve(size_t n) { nanos_.reserve(n); }
  void Add(std::chrono::nanoseconds latency) {
    nanos_.push_back(latency.count());
    sorted_ = false;
  }
  // Moves every sample of `other` into this one.
  void Merge(LatencySamples&& other);

  size_t count() const { return nanos_.size(); }
  // The q-quantile (q in [0, 1], nearest rank) in milliseconds; NaN if empty.
  double QuantileMs(double q);
  double MaxMs();
  double MeanMs() const;

 private:
  std::vector<int64_t> nanos_;
  bool sorted_ = true;
};

}  // namespace verdict::bench
