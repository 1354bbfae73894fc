// A C++ program built against pyinfer's installed headers, as another extension would be.
// It prints "pyinfer <version>" and exits 0 when every check holds.
#include <pyinfer/pyinfer.hpp>

#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

namespace {
int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}
}  // namespace

int main() {
  std::printf("pyinfer %s\n", PYINFER_VERSION_STRING);

  // Clock and timed loop around real work.
  const std::int64_t t0 = pyinfer::now_ns();
  std::vector<double> samples(200);
  double x = 2.0;
  const std::size_t done = pyinfer::timed_loop(
      [&x] {
        pyinfer::do_not_optimize(x);  // x may have changed: the body is computed anew
        double acc = 0.0;
        for (int i = 0; i < 1000; ++i) acc += std::sqrt(x + i);
        pyinfer::do_not_optimize(acc);  // acc is used: the loop is not deleted
      },
      samples.size(), 10, samples.data());
  check(done == samples.size(), "timed_loop returns every sample");
  check(pyinfer::now_ns() > t0, "the clock moves forward");
  const pyinfer::ClockInfo info = pyinfer::clock_info(5, 100);
  check(info.read_cost_ns > 0.0, "clock_info measures a read");

  // Exact recorder, filled from several threads.
  pyinfer::LatencyRecorder recorder;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&recorder] {
      for (int i = 1; i <= 1000; ++i) recorder.record(static_cast<double>(i));
    });
  }
  for (auto& thread : threads) thread.join();
  check(recorder.count() == 4000, "no sample lost across threads");
  const pyinfer::Summary s = recorder.summary({0.0, 50.0, 100.0});
  check(s.min == 1.0 && s.max == 1000.0, "min and max");
  check(s.mean == 500.5, "mean");
  check(s.percentile_values[1] == 500.5, "median by linear interpolation");

  // Histogram recorder: bounded error.
  auto histogram = pyinfer::LatencyRecorder::histogram(3);
  for (int i = 1; i <= 100000; ++i) histogram.record(static_cast<double>(i) * 1000.0);
  const pyinfer::Summary h = histogram.summary({50.0, 99.0});
  const double exact_p50 = 50000.5 * 1000.0;
  check(std::fabs(h.percentile_values[0] - exact_p50) <= h.relative_error * exact_p50,
        "histogram p50 within its bound");

  // Errors are typed C++ exceptions.
  try {
    recorder.record(-1.0);
    check(false, "a negative duration throws");
  } catch (const pyinfer::InvalidArgument&) {
  }

  check(pyinfer::current_rss_bytes() > 0, "RSS is readable");

  // CUDA: the same timer as pyinfer's; without a GPU, a typed error instead of a crash.
  if (pyinfer::cuda_available()) {
    pyinfer::CudaEventTimer timer(0, 0, 4);
    for (int i = 0; i < 8; ++i) {
      timer.start();
      timer.stop();
    }
    const std::vector<double> ms = timer.elapsed_ms();
    check(ms.size() == 8, "one duration per event pair");
    std::printf("cuda: %s\n", pyinfer::cuda_device_name(0).c_str());
  } else {
    try {
      pyinfer::CudaEventTimer timer;
      check(false, "a timer without CUDA throws");
    } catch (const pyinfer::CudaUnavailable& e) {
      std::printf("cuda: unavailable (%s)\n", e.what());
    }
  }
  return failures == 0 ? 0 : 1;
}
