// C++ tests of LatencyRecorder under threads: writers, readers, merges, clears and moves at once.
// Short on purpose (well under a second, also under the sanitizers); scripts/tsan.sh runs them
// under ThreadSanitizer.
#include <pyinfer/errors.hpp>
#include <pyinfer/histogram.hpp>
#include <pyinfer/recorder.hpp>
#include <pyinfer/summary.hpp>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
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

// A snapshot read in one thread while another clears the recorder and records again: the
// reads must not race with the new writes (clear() may not hand the snapshot's memory back to
// the recorder while a snapshot may still read it), and the snapshot keeps its values.
void test_snapshot_reads_during_clear_and_record() {
  pyinfer::LatencyRecorder r;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    for (int local = 0; !done.load() || local < 3; ++local) {
      {
        const pyinfer::SampleSnapshot snap = r.samples();
        for (std::size_t i = 0; i < snap.size; ++i) {
          if (snap.data[i] != 1.0) ++bad;
        }
      }  // the snapshot is gone: the recorder may reuse nothing the reads above touched
      for (volatile int spin = 0; spin < 100; spin = spin + 1) {
      }
      ++reads;
    }
  });
  const std::vector<double> batch(8, 1.0);
  for (int i = 0; i < 200000; ++i) {
    r.record_many(batch.data(), batch.size());
    r.clear();
  }
  done.store(true);
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(reads.load() > 0);
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

// Every member is read-consistent with one of the two recorders a move may install: the
// settings read are either an exact recorder's (all 0) or the 3-digit histogram's.
bool settings_ok(const pyinfer::LatencyRecorder& r, double histogram_error) {
  const double e = r.relative_error();
  const int digits = r.significant_digits();
  const std::uint64_t highest = r.highest_trackable_ns();
  return (e == 0.0 || e == histogram_error) && (digits == 0 || digits == 3) &&
         (highest == 0 || highest == pyinfer::LogLinearHistogram::kOneHourNs);
}

// Move assignment into, and out of, a recorder that other threads record into and read from
// at the same time (the documented contract: any member, any number of threads). Writers and
// readers must never see a torn recorder: every value read is one a recorder could hold.
void test_moves_during_reads_and_writes() {
  const double histogram_error = pyinfer::LatencyRecorder::histogram(3).relative_error();
  CHECK(histogram_error > 0.0);
  pyinfer::LatencyRecorder r;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      const double v = value_of(w);
      const std::vector<double> batch(16, v);
      for (int i = 0; !done.load(); ++i) {
        if (i % 2 == 0) {
          r.record(v);
        } else {
          r.record_many(batch.data(), batch.size());
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int local = 0; !done.load() || local < 3; ++local) {
      if (!settings_ok(r, histogram_error)) ++bad;
      (void)r.is_histogram();
      // Each call on its own (a move may come between two): none or at least a first block.
      const std::size_t bytes = r.memory_bytes();
      if (bytes != 0 && bytes < 1024 * sizeof(double)) ++bad;
      try {
        const pyinfer::Summary s = r.summary({50.0});
        if (s.count == 0 || s.min < value_of(0) || s.max > value_of(1)) ++bad;
        if (s.exact == (s.relative_error != 0.0)) ++bad;
      } catch (const pyinfer::InvalidArgument&) {  // empty just after a move: allowed
      }
      try {
        const pyinfer::SampleSnapshot snap = r.samples();
        for (std::size_t i = 0; i < snap.size; ++i) {
          if (snap.data[i] != value_of(0) && snap.data[i] != value_of(1)) ++bad;
        }
      } catch (const pyinfer::InvalidArgument&) {  // a histogram keeps no samples
      }
      try {
        const std::vector<std::uint64_t> b = r.histogram_buckets();
        if (b.size() % 3 != 0 || b.size() > 6) ++bad;
      } catch (const pyinfer::InvalidArgument&) {  // an exact recorder has no buckets
      }
      ++reads;
    }
  });
  // The mover: assigns fresh recorders of both kinds into `r`, moves `r` out into locals
  // (move construction and assignment from a recorder in use), and merges it elsewhere.
  int moved_out = 0;
  pyinfer::LatencyRecorder sink = pyinfer::LatencyRecorder::histogram(3);
  for (int k = 0; k < 200; ++k) {
    switch (k % 5) {
      case 0:
        r = pyinfer::LatencyRecorder::histogram(3);
        break;
      case 1:
        r = pyinfer::LatencyRecorder::from_samples(std::vector<double>(8, value_of(1)));
        break;
      case 2: {
        pyinfer::LatencyRecorder taken(std::move(r));
        moved_out += taken.count() > 0 ? 1 : 0;
        if (!settings_ok(taken, histogram_error)) ++bad;
        break;
      }
      case 3: {
        pyinfer::LatencyRecorder taken;
        taken = std::move(r);
        if (!settings_ok(taken, histogram_error)) ++bad;
        break;
      }
      default:
        sink.merge(r);
        break;
    }
    std::this_thread::yield();
  }
  done.store(true);
  for (auto& t : threads) t.join();
  CHECK(bad.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(moved_out > 0);
  // A moved-from recorder is an empty exact recorder, usable as any other.
  pyinfer::LatencyRecorder h = pyinfer::LatencyRecorder::histogram(3);
  h.record(5.0);
  pyinfer::LatencyRecorder taken(std::move(h));
  CHECK(taken.is_histogram() && taken.count() == 1);
  CHECK(!h.is_histogram() && h.count() == 0 && h.relative_error() == 0.0);
  h.record(7.0);
  CHECK(h.count() == 1 && h.samples().data[0] == 7.0);
}

// Two recorders moved into each other from two threads at once: no deadlock (both locks are
// taken together), and exactly the samples of one of them survive each exchange.
void test_crossed_moves_do_not_deadlock() {
  pyinfer::LatencyRecorder a = pyinfer::LatencyRecorder::from_samples({1.0, 2.0, 3.0});
  pyinfer::LatencyRecorder b = pyinfer::LatencyRecorder::histogram(3);
  std::atomic<int> bad{0};
  auto mover = [&bad](pyinfer::LatencyRecorder& to, pyinfer::LatencyRecorder& from) {
    for (int i = 0; i < 2000; ++i) {
      to = std::move(from);
      if (to.count() > 3 || from.count() > 3) ++bad;
    }
  };
  std::thread t1(mover, std::ref(a), std::ref(b));
  std::thread t2(mover, std::ref(b), std::ref(a));
  t1.join();
  t2.join();
  CHECK(bad.load() == 0);
  CHECK(a.count() + b.count() <= 3);
}

// Self move assignment leaves the recorder as it was, also while another thread reads it.
void test_self_move_assignment() {
  pyinfer::LatencyRecorder r = pyinfer::LatencyRecorder::from_samples({4.0, 5.0});
  pyinfer::LatencyRecorder& alias = r;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (r.count() != 2 || r.summary({50.0}).max != 5.0) ++bad;
    }
  });
  for (int i = 0; i < 500; ++i) r = std::move(alias);
  done.store(true);
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(r.count() == 2 && r.samples().data[1] == 5.0);
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
  test_snapshot_reads_during_clear_and_record();
  test_concurrent_merges();
  test_concurrent_summaries();
  test_moves_during_reads_and_writes();
  test_crossed_moves_do_not_deadlock();
  test_self_move_assignment();
  return TEST_MAIN_RESULT();
}
