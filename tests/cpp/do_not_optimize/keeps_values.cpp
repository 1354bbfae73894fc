// A value stored just before do_not_optimize(value) reaches the variable: the barrier must not
// hand the compiler a copy to write into. GCC 12 at -O2 lost the store with the constraint
// "+m,r" (GCC bug 92597): r stayed 0 while the loop ran. Prints "3 3 3 4" when right.
#include <pyinfer/do_not_optimize.hpp>

#include <cmath>
#include <cstdio>

namespace {

template <class F>
__attribute__((noinline)) void three_times(F&& f) {
  for (int i = 0; i < 3; ++i) f();
}

__attribute__((noinline)) double stored_then_kept(double x) {
  double r = 0.0;
  three_times([&] {
    pyinfer::do_not_optimize(x);
    r = std::sqrt(x) + 1.0;
    pyinfer::do_not_optimize(r);
  });
  return r;
}

struct Pair {
  double a;
  double b;
};

__attribute__((noinline)) double stored_then_kept_large(double x) {
  Pair p{0.0, 0.0};
  three_times([&] {
    p.a = std::sqrt(x) + 1.0;
    p.b = p.a;
    pyinfer::do_not_optimize(p);
  });
  return p.b;
}

__attribute__((noinline)) int stored_then_kept_int(int n) {
  int k = 0;
  three_times([&] {
    k = n + 1;
    pyinfer::do_not_optimize(k);
  });
  return k;
}

}  // namespace

int main() {
  std::printf("%g %g %g %d\n", stored_then_kept(4.0), stored_then_kept_large(4.0),
              stored_then_kept(4.0), stored_then_kept_int(3));
  return 0;
}
