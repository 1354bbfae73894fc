// Times a 1000-sqrt body through pyinfer's timed loop three ways, in one process, alternating:
//   without  the result is unused: an optimising compiler may delete the work
//   with     pyinfer::do_not_optimize on the input and on the result
//   volatile the reference: the input read from, and the result stored to, a volatile
// and prints "<name> <median ns>" for each. tests/test_do_not_optimize.py compiles it at -O2.
#include <pyinfer/do_not_optimize.hpp>
#include <pyinfer/timed_loop.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int kSqrts = 1000;
volatile double g_input = 2.0;
volatile double g_sink = 0.0;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 30;
  const std::size_t per_round = 50;
  double x = g_input;  // unknown to the compiler
  std::vector<double> without, with, reference, ns(per_round);
  auto keep = [&](std::vector<double>& into) { into.insert(into.end(), ns.begin(), ns.end()); };
  for (int round = 0; round < rounds; ++round) {
    pyinfer::timed_loop(
        [&x] {
          [[maybe_unused]] double acc = 0.0;  // set, never read: dead code
          for (int i = 0; i < kSqrts; ++i) acc += std::sqrt(x + i);
        },
        per_round, 5, ns.data());
    keep(without);
    pyinfer::timed_loop(
        [&x] {
          pyinfer::do_not_optimize(x);
          double acc = 0.0;
          for (int i = 0; i < kSqrts; ++i) acc += std::sqrt(x + i);
          pyinfer::do_not_optimize(acc);
        },
        per_round, 5, ns.data());
    keep(with);
    pyinfer::timed_loop(
        [] {
          const double y = g_input;
          double acc = 0.0;
          for (int i = 0; i < kSqrts; ++i) acc += std::sqrt(y + i);
          g_sink = acc;
        },
        per_round, 5, ns.data());
    keep(reference);
  }
  std::printf("without %.1f\nwith %.1f\nvolatile %.1f\n", median(without), median(with),
              median(reference));
  return 0;
}
