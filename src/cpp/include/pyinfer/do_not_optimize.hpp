// do_not_optimize and clobber_memory: keep the compiler from removing the work being timed.
//
// An optimising compiler may delete work whose result nobody uses, compute a loop-invariant
// body once instead of once per call, or keep values in registers instead of storing them. In
// a benchmark that means timing nothing. These two functions are barriers the compiler cannot
// see through, and cost no instruction themselves (GCC and Clang: an empty asm statement):
//
//   double x = 2.0;
//   pyinfer::timed_loop([&] {
//     pyinfer::do_not_optimize(x);       // x may have changed: the body is computed anew
//     double acc = 0.0;
//     for (int i = 0; i < 1000; ++i) acc += std::sqrt(x + i);
//     pyinfer::do_not_optimize(acc);     // acc is used: the loop is not deleted
//   }, ns.size(), /*warmup=*/100, ns.data());
//
//   buffer[0] = 1;
//   pyinfer::clobber_memory();           // the store above really happens before this point
//
// The same contract as google-benchmark's DoNotOptimize and ClobberMemory.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <type_traits>

#if !defined(__GNUC__) && !defined(__clang__)
#include <atomic>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PYINFER_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define PYINFER_ALWAYS_INLINE __forceinline
#else
#define PYINFER_ALWAYS_INLINE inline
#endif

namespace pyinfer {

#if defined(__GNUC__) || defined(__clang__)

/// Makes the compiler treat `value` as read by code it cannot see: whatever computed it is kept,
/// and the value is materialised (in a register or in memory) at this point. Also acts as
/// clobber_memory(). For a const value (or one that must not change), this is all it does.
///
/// Thread-safety: none needed (nothing is read or written at run time).
template <class T>
PYINFER_ALWAYS_INLINE void do_not_optimize(const T& value) noexcept {
  __asm__ __volatile__("" : : "r,m"(value) : "memory");
}

/// For a modifiable value: as above, and the compiler must also assume the value was changed,
/// so computations that depend on it are redone after this point (not hoisted out of a loop
/// or folded to constants). Small trivially copyable values may stay in a register; anything
/// else is kept in memory.
template <class T>
PYINFER_ALWAYS_INLINE void do_not_optimize(T& value) noexcept {
  if constexpr (std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(T*)) {
#if defined(__clang__)
    __asm__ __volatile__("" : "+r,m"(value) : : "memory");
#else
    // Not "+m,r": GCC 12 at -O2 then passes a stack copy, and a value stored just before the
    // call never reaches the variable (GCC bug 92597); "+g" lets it pick, correctly.
    __asm__ __volatile__("" : "+g"(value) : : "memory");
#endif
  } else {
    __asm__ __volatile__("" : "+m"(value) : : "memory");
  }
}

/// For a temporary, e.g. `do_not_optimize(f(x))`: the result of the call is kept.
template <class T>
PYINFER_ALWAYS_INLINE void do_not_optimize(T&& value) noexcept {
  do_not_optimize(value);  // `value` is an lvalue here: the overload above
}

/// A compiler barrier for memory: every store before it is performed (the compiler must assume
/// something reads all memory here) and every value is read from memory again after it. Emits
/// no instruction and is no CPU fence: other threads need atomics as usual.
PYINFER_ALWAYS_INLINE void clobber_memory() noexcept { __asm__ __volatile__("" : : : "memory"); }

#else  // MSVC and other compilers without GNU inline asm: a weaker, portable fallback.

namespace detail {
// The address escapes through a volatile store (per thread: no data race, no shared cache
// line), so the compiler must assume the object is read through it.
inline void escape(const volatile void* address) noexcept {
  static thread_local const volatile void* volatile sink = nullptr;
  sink = address;
}
}  // namespace detail

/// See the GCC/Clang version: here the value's address escapes through a volatile store, then a
/// compiler barrier for memory follows.
template <class T>
PYINFER_ALWAYS_INLINE void do_not_optimize(const T& value) noexcept {
  detail::escape(&reinterpret_cast<const volatile char&>(value));
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

/// A compiler barrier for memory (std::atomic_signal_fence: no CPU fence).
PYINFER_ALWAYS_INLINE void clobber_memory() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

#endif

}  // namespace pyinfer

#undef PYINFER_ALWAYS_INLINE
