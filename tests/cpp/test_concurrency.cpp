// C++ tests of LatencyRecorder under threads: writers, readers, merges and clears at once.
// Short on purpose (well under a second, also under the sanitizers).
#include <pyinfer/recorder.hpp>
#include <pyinfer/summary.hpp>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

constexpr int kWriters = 4;
constexpr int kPerWriter = 4000;  // half one by one, half in batches
constexpr int kBatch = 100;

double value_of(int writer) { return 1000.0 * (writer + 1); }

void write(pyinfer::LatencyRecorder& r, int writer) {
  const double v = value_of(writer);
  for (int i = 0; i < kPerWriter / 2; ++i) r.record(v);
  const std::vector<double> batch(kBatch, v);
  for (int i = 0; i < kPerWriter / 2 / kBatch; ++i) r.record_many(batch.data(), batch.size());
}

// Readers run while the writers record: counts never go back, summaries stay in range,
// snapshots hold only recorded values and never change afterwards.
void test_readers_during_writes(bool histogram) {
  pyinfer::LatencyRecorder r =
      histogram ? pyinfer::LatencyRecorder::histogram(3) : pyinfer::LatencyRecorder();
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<int> reads{0};
  auto reader = [&] {
    std::size_t last = 0;
    for (int local = 0; !done.load() || local < 3; ++local) {  // a few reads even if writers won
      const std::size_t n = r.count();
      if (n < last) ++bad;
      last = n;
      if (n == 0) continue;
      const pyinfer::Summary s = r.summary({50.0});
      if (s.count < n || s.min < value_of(0) || s.max > value_of(kWriters - 1)) ++bad;
      if (histogram) {
        std::uint64_t total = 0;
        const std::vector<std::uint64_t> b = r.histogram_buckets();
        for (std::size_t i = 2; i < b.size(); i += 3) total += b[i];
        if (total < s.count) ++bad;
      } else {
        const pyinfer::SampleSnapshot snap = r.samples();
        const std::vector<double> copy(snap.data, snap.data + snap.size);
        for (double v : copy) {
          if (v != value_of(0) && v != value_of(1) && v != value_of(2) && v != value_of(3)) ++bad;
        }
        std::this_thread::yield();
        for (std::size_t i = 0; i < copy.size(); ++i) {
          if (snap.data[i] != copy[i]) ++bad;
        }
      }
      ++reads;
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(reader);
  threads.emplace_back(reader);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) writers.emplace_back(write, std::ref(r), w);
  for (auto& t : writers) t.join();
  done.store(true);
  for (auto& t : threads) t.join();
  CHECK(bad.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(r.count() == static_cast<std::size_t>(kWriters * kPerWriter));
  const pyinfer::Summary s = r.summary({50.0});
  CHECK(s.count == static_cast<std::size_t>(kWriters * kPerWriter));
  CHECK(std::fabs(s.mean - 2500.0) < 1e-9);
  if (histogram) {
    const std::vector<std::uint64_t> b = r.histogram_buckets();
    CHECK(b.size() == 3u * kWriters);
    for (std::size_t i = 2; i < b.size(); i += 3) CHECK(b[i] == kPerWriter);
  } else {
    int per[kWriters] = {0, 0, 0, 0};
    const pyinfer::SampleSnapshot snap = r.samples();
    for (std::size_t i = 0; i < snap.size; ++i) ++per[static_cast<int>(snap.data[i] / 1000.0) - 1];
    for (int w = 0; w < kWriters; ++w) CHECK(per[w] == kPerWriter);
  }
}

// record_many is one step for readers, also across clear(): a snapshot holds whole batches.
void test_batches_are_atomic_across_clear() {
  pyinfer::LatencyRecorder r;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread writer([&] {
    for (int k = 0; k < 300; ++k) {
      const std::vector<double> batch(64, static_cast<double>(k));
      r.record_many(batch.data(), batch.size());
      if (k % 30 == 29) r.clear();
    }
    done.store(true);
  });
  std::thread reader([&] {
    for (bool last = false; !last;) {
      last = done.load();
      const pyinfer::SampleSnapshot snap = r.samples();
      if (snap.size % 64 != 0) ++bad;
      for (std::size_t i = 0; i < snap.size; ++i) {
        if (snap.data[i] != snap.data[i - i % 64]) ++bad;
      }
    }
  });
  writer.join();
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(r.count() == 0);
}

// Merges from several threads into one exact and one histogram recorder lose nothing.
void test_concurrent_merges() {
  pyinfer::LatencyRecorder exact;
  pyinfer::LatencyRecorder histogram = pyinfer::LatencyRecorder::histogram(3);
  std::vector<pyinfer::LatencyRecorder> parts;
  for (int w = 0; w < kWriters; ++w) {
    parts.push_back(pyinfer::LatencyRecorder::from_samples(std::vector<double>(500, value_of(w))));
  }
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 20; ++i) {
        exact.merge(parts[static_cast<std::size_t>(w)]);
        histogram.merge(parts[static_cast<std::size_t>(w)]);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(exact.count() == static_cast<std::size_t>(kWriters * 20 * 500));
  CHECK(histogram.count() == exact.count());
  const std::vector<std::uint64_t> b = histogram.histogram_buckets();
  CHECK(b.size() == 3u * kWriters);
  for (std::size_t i = 2; i < b.size(); i += 3) CHECK(b[i] == 20u * 500u);
}

// summarize() on one array from several threads gives the sequential answer, bit for bit.
void test_concurrent_summaries() {
  std::vector<double> x(50000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>((i * 7919) % 10007);
  const std::vector<double> ranks = {50.0, 99.0};
  const pyinfer::Summary expected = pyinfer::summarize(x.data(), x.size(), ranks, 0);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        const pyinfer::Summary s = pyinfer::summarize(x.data(), x.size(), ranks, 0);
        if (s.mean != expected.mean || s.std != expected.std ||
            s.percentile_values != expected.percentile_values) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad.load() == 0);
}

}  // namespace

int main() {
  test_readers_during_writes(false);
  test_readers_during_writes(true);
  test_batches_are_atomic_across_clear();
  test_concurrent_merges();
  test_concurrent_summaries();
  return TEST_MAIN_RESULT();
}
