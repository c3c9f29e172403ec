#include "extension/histogram.h"

#include <cmath>

namespace spyglass::exact {

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
}

double LatencyHistogram::bucket_low(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  int exponent = (bucket - kSubBuckets) / kSubBuckets + kSubBucketBits;
  int sub = (bucket - kSubBuckets) % kSubBuckets;
  return std::ldexp(static_cast<double>(kSubBuckets + sub), exponent - kSubBucketBits);
}

double LatencyHistogram::bucket_width(int bucket) {
  if (bucket < kSubBuckets) return 1;
  int exponent = (bucket - kSubBuckets) / kSubBuckets + kSubBucketBits;
  return std::ldexp(1.0, exponent - kSubBucketBits);
}

double LatencyHistogram::quantile(double quantile, uint64_t total) const {
  if (total == 0) return 0;
  // Rank of the wanted value, 1-based; ceil so that p50 of {a, b} is a.
  double wanted = std::ceil(quantile * static_cast<double>(total));
  if (wanted < 1) wanted = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (static_cast<double>(seen) >= wanted) {
      return representative(i);
    }
  }
  return bucket_low(kBuckets - 1);
}

}  // namespace spyglass::exact
