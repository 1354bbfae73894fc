// Minimal checking for the C++ tests (no framework: each test is one program).
#pragma once

#include <cstdio>

namespace pyinfer_test {
inline int& failures() {
  static int count = 0;
  return count;
}
}  // namespace pyinfer_test

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      ++pyinfer_test::failures();                                                        \
    }                                                                                    \
  } while (0)

#define CHECK_THROWS(expression, exception_type)              \
  do {                                                        \
    bool thrown_ = false;                                     \
    try {                                                     \
      (void)(expression);                                     \
    } catch (const exception_type&) {                         \
      thrown_ = true;                                         \
    }                                                         \
    CHECK(thrown_ && #expression " throws " #exception_type); \
  } while (0)

#define TEST_MAIN_RESULT() (pyinfer_test::failures() == 0 ? 0 : 1)
