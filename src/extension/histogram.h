// A log-linear latency histogram: exact below 16 ticks, then 16 sub-buckets per power of two
// (relative error under 6 %). Recording is O(1) with no allocation.
#pragma once

#include <array>
#include <cstdint>

namespace spyglass::exact {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 4;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kBuckets = kSubBuckets + (64 - kSubBucketBits) * kSubBuckets;

  void record(uint64_t ticks) { ++counts_[bucket_of(ticks)]; }
  void merge(const LatencyHistogram& other);
  void clear() { counts_.fill(0); }
  // The value (in ticks) below which the fraction `quantile` of recorded values lie: the middle
  // of the bucket holding that rank.
  double quantile(double quantile, uint64_t total) const;

  static int bucket_of(uint64_t ticks) {
    if (ticks < kSubBuckets) return static_cast<int>(ticks);
    int exponent = 63 - __builtin_clzll(ticks);
    int sub = static_cast<int>((ticks >> (exponent - kSubBucketBits)) & (kSubBuckets - 1));
    return kSubBuckets + (exponent - kSubBucketBits) * kSubBuckets + sub;
  }
  // Each bucket holding values, as the value quantile() gives for it and its count, lowest
  // first: what a client merging several processes' histograms needs.
  template <typename Visit>
  void for_each_bucket(Visit&& visit) const {
    for (int i = 0; i < kBuckets; ++i) {
      if (counts_[i] != 0) visit(representative(i), counts_[i]);
    }
  }
  static double representative(int bucket) {
    return bucket < kSubBuckets ? bucket_low(bucket)
                                : bucket_low(bucket) + bucket_width(bucket) / 2;
  }
  static double bucket_low(int bucket);
  static double bucket_width(int bucket);

 private:
  std::array<uint64_t, kBuckets> counts_{};
};

}  // namespace spyglass::exact
