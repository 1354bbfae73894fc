// Bodies compiled to assembly (-O2 -S) by tests/test_do_not_optimize.py, which checks that the
// work survives in the *_kept functions and is deleted from the *_dropped ones.
#include <pyinfer/do_not_optimize.hpp>

#include <cmath>

// 1000 square roots whose result nobody uses: deleted unless do_not_optimize keeps it.
extern "C" void sqrt_loop_dropped(double x) {
  [[maybe_unused]] double acc = 0.0;  // set, never read: dead code
  for (int i = 0; i < 1000; ++i) acc += std::sqrt(x + i);
}

extern "C" void sqrt_loop_kept(double x) {
  double acc = 0.0;
  for (int i = 0; i < 1000; ++i) acc += std::sqrt(x + i);
  pyinfer::do_not_optimize(acc);
}

// A square root of a temporary, kept through the rvalue overload.
extern "C" void sqrt_temporary_kept(double x) { pyinfer::do_not_optimize(std::sqrt(x)); }

// A const value: the const overload keeps what computed it.
extern "C" void sqrt_const_kept(double x) {
  const double root = std::sqrt(x);
  pyinfer::do_not_optimize(root);
}

// A store overwritten before anyone reads it: the first one is dead unless clobber_memory()
// says that memory may be read in between.
extern "C" void store_dropped(int* p) {
  *p = 12345;
  *p = 67890;
}

extern "C" void store_kept(int* p) {
  *p = 12345;
  pyinfer::clobber_memory();
  *p = 67890;
}
