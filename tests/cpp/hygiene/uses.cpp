// A program that uses the public C++ API the way an extension would, built by
// tests/test_header_hygiene.py: under strict warnings with -Werror, without exceptions, and from a
// source checkout (no generated header). The test puts the #include lines in front of it.
//
//   uses            prints "pyinfer <version>" and one summary, exits 0
//   uses bad-rank   asks for percentile 101: an InvalidArgument (exit 3 when caught; without
//                   exceptions, "pyinfer: percentile 101..." on stderr and abort())
#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  std::printf("pyinfer %s\n", PYINFER_VERSION_STRING);

  std::vector<double> samples(1000);
  volatile double sink = 0.0;
  const std::size_t done = pyinfer::timed_loop(
      [&sink] {
        sink = sink + 1.0;
        return 1;
      },
      [](int) { return true; }, samples.size(), 10, samples.data());
  (void)pyinfer::timed_loop([&sink] { sink = sink * 0.5; }, samples.size(), 0, samples.data());
  const pyinfer::ClockInfo info = pyinfer::clock_info(3, 100);

  std::vector<double> values(100000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i % 977);
  const pyinfer::Summary s = pyinfer::summarize(values.data(), values.size(), {50.0, 99.0}, 0, 2);
  const pyinfer::Summary small = pyinfer::summarize(values.data(), 100, {0.0, 100.0});

  pyinfer::LogLinearHistogram histogram(3);
  for (std::uint64_t v = 1; v <= 1000; ++v) histogram.record(v);
  const std::vector<double> estimates = histogram.percentiles({50.0});

  const std::uint64_t rss = pyinfer::current_rss_bytes();
  const bool cuda = pyinfer::cuda_available();
  if (cuda) {
    pyinfer::CudaEventTimer timer;
    std::vector<double> host_ns(4);
    timer.time_calls([] { return 0; }, [](int) { return true; }, host_ns.size(), 1, host_ns.data());
    (void)timer.elapsed_ms();
  }

  std::printf("done %zu, clock %s, p50 %g, min %g, estimate %g, rss %s, cuda %d\n", done,
              info.timed_loop_clock.c_str(), s.percentile_values[0], small.percentile_values[0],
              estimates[0], rss > 0 ? "yes" : "no", cuda ? 1 : 0);

  if (argc > 1 && std::strcmp(argv[1], "bad-rank") == 0) {
#if PYINFER_HAS_EXCEPTIONS
    try {
      pyinfer::validate_percentiles({101.0});
    } catch (const pyinfer::InvalidArgument& error) {
      std::fprintf(stderr, "caught: %s\n", error.what());
      return 3;
    }
#else
    pyinfer::validate_percentiles({101.0});
#endif
    return 4;  // not reached
  }
  return 0;
}
