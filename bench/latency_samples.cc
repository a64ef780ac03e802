#include "bench/latency_samples.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace verdict::bench {

void LatencySamples::Merge(LatencySamples&& other) {
  if (nanos_.empty()) {
    nanos_ = std::move(other.nanos_);
  } else {
    nanos_.insert(nanos_.end(), other.nanos_.begin(), other.nanos_.end());
  }
  other.nanos_.clear();
  sorted_ = false;
}

double LatencySamples::QuantileMs(double q) {
  if (nanos_.empty()) return std::numeric_limits<double>::quiet_NaN();
  if (!sorted_) {
    std::sort(nanos_.begin(), nanos_.end());
    sorted_ = true;
  }
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(nanos_.size())));
  size_t index = rank == 0 ? 0 : rank - 1;
  return static_cast<double>(nanos_[index]) / 1e6;
}

double LatencySamples::MaxMs() { return QuantileMs(1.0); }

double LatencySamples::MeanMs() const {
  if (nanos_.empty()) return std::numeric_limits<double>::quiet_NaN();
  long double sum = 0;
  for (int64_t n : nanos_) sum += n;
  return static_cast<double>(sum / nanos_.size()) / 1e6;
}

}  // namespace verdict::bench
