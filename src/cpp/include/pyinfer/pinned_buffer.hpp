// Page-locked (pinned) host memory for fast host-to-device copies, and a ring of slots for
// double-buffered uploads.
//
// Header-only; the allocation itself (pinned or the pageable fallback) is
// pyinfer/detail/host_allocation.hpp.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/detail/host_allocation.hpp"
#include "pyinfer/errors.hpp"

namespace pyinfer {

/// A block of host memory, page-locked when CUDA is available, that a binding layer exports
/// zero-copy (numpy, torch.from_numpy). It is either a whole allocation or a slice of one shared
/// with others (the slots of a PinnedRing); the allocation is freed when its last user closes or
/// is destroyed.
///
/// The buffer tracks exports (views handed out) so that close() can refuse to free memory that
/// is still viewed. The memory must also not be freed while the GPU still copies from it:
/// synchronise the copies first (PinnedRing does for its slots).
///
/// Thread-safety: every member function locks an internal mutex; data pointers obtained before
/// close() must not be used after it.
class PinnedBuffer {
 public:
  /// A new allocation of `nbytes` bytes (contents uninitialised), page-locked with
  /// cuMemHostAlloc in the primary context of `device`, pinned for every context (portable).
  /// Without CUDA: ordinary 4096-aligned memory if `allow_pageable`, else an error. Takes tens
  /// of milliseconds per hundred MiB when pinned.
  /// @throws InvalidArgument (nbytes 0, no such device), CudaUnavailable, OutOfMemory,
  ///         CudaError.
  PYINFER_COMPILED explicit PinnedBuffer(std::size_t nbytes, int device = 0,
                                         bool allow_pageable = false);

  /// A slice `[offset, offset + size)` of an existing allocation, which it keeps alive.
  /// @throws InvalidArgument if the slice is empty or exceeds the allocation.
  PinnedBuffer(std::shared_ptr<detail::HostAllocation> allocation, std::size_t offset,
               std::size_t size, int device)
      : allocation_(std::move(allocation)), offset_(offset), size_(size), device_(device) {
    if (!allocation_ || size == 0 || offset > allocation_->size() ||
        size > allocation_->size() - offset) {
      PYINFER_THROW(InvalidArgument("invalid slice of a host allocation"));
    }
    pinned_ = allocation_->pinned();
  }

  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  /// Size in bytes (still reported after close()).
  std::size_t size() const noexcept { return size_; }
  /// True when page-locked; false for the pageable fallback.
  bool pinned() const noexcept { return pinned_; }
  /// The device whose primary context allocated it (or was asked for, when pageable).
  int device() const noexcept { return device_; }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return !allocation_;
  }

  /// Number of live exports (views).
  std::size_t exports() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return exports_;
  }

  /// The first byte. @throws InvalidArgument when closed.
  std::byte* data() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return data_unlocked();
  }

  /// data() as an integer.
  std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(data()); }

  /// Counts one more export (a view the binding layer hands out) and returns the data pointer.
  /// Pair every call with remove_export(). @throws InvalidArgument when closed.
  std::byte* add_export() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::byte* p = data_unlocked();
    ++exports_;
    return p;
  }

  /// Counts one export fewer.
  void remove_export() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (exports_ > 0) --exports_;
  }

  /// Drops this buffer's share of the memory now (freeing it if no other slice uses it). Closing
  /// twice is allowed. @throws BufferInUse while exports are alive.
  void close() {
    std::shared_ptr<detail::HostAllocation> released;  // freed after the lock is dropped
    std::lock_guard<std::mutex> lock(mutex_);
    if (exports_ > 0) {
      PYINFER_THROW(
          BufferInUse("cannot close a PinnedBuffer while " + std::to_string(exports_) +
                      " view(s) of it (memoryview, numpy array, tensor) are alive: delete "
                      "them first"));
    }
    released = std::move(allocation_);
    allocation_.reset();
  }

 private:
  std::byte* data_unlocked() const {
    if (!allocation_) PYINFER_THROW(InvalidArgument("the PinnedBuffer is closed"));
    return allocation_->data() + offset_;
  }

  mutable std::mutex mutex_;
  std::shared_ptr<detail::HostAllocation> allocation_;  // null once closed
  std::size_t offset_;
  std::size_t size_;
  int device_;
  bool pinned_ = false;
  std::size_t exports_ = 0;
};

/// A ring of `slots` equal host buffers in one (pinned) allocation, for double-buffered
/// uploads: fill slot acquire(), enqueue its asynchronous copy on a stream, release(slot,
/// stream); the next acquire() of that slot first waits until that copy has finished. Slot
/// starts are 4096-byte aligned.
///
/// With pageable memory (no CUDA) there are no events: acquire() is plain round-robin.
///
/// Thread-safety: every member function locks an internal mutex (acquire() holds it while it
/// waits for the GPU).
class PinnedRing {
 public:
  /// @throws InvalidArgument (slot_nbytes or slots 0, size overflow, no such device),
  ///         CudaUnavailable, OutOfMemory, CudaError.
  PYINFER_COMPILED PinnedRing(std::size_t slot_nbytes, std::size_t slots = 2, int device = 0,
                              bool allow_pageable = false);

  /// Waits for the copies still in flight from the slots, then destroys the events. The memory
  /// lives on while slot buffers are still referenced elsewhere.
  ~PinnedRing() { drop_events(); }

  PinnedRing(const PinnedRing&) = delete;
  PinnedRing& operator=(const PinnedRing&) = delete;

  std::size_t slots() const noexcept { return events_.size(); }
  std::size_t slot_nbytes() const noexcept { return slot_nbytes_; }
  /// Distance between slot starts in bytes (slot_nbytes rounded up to 4096).
  std::size_t slot_stride() const noexcept { return stride_; }
  bool pinned() const noexcept { return pinned_; }
  int device() const noexcept { return device_; }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  /// Slot `index` as a buffer sharing the ring's memory (the same object on every call).
  /// @throws InvalidArgument (index out of range, ring closed).
  std::shared_ptr<PinnedBuffer> slot(std::size_t index) const {
    std::lock_guard<std::mutex> lock(mutex_);
    check_unlocked(index);
    return slots_[index];
  }

  /// The next slot index, round-robin; first waits (blocking the calling thread) until the copy
  /// that release() recorded for that slot has finished, so the slot may be overwritten.
  /// @throws InvalidArgument (ring closed), CudaError.
  std::size_t acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    check_unlocked(0);
    const std::size_t index = next_;
    next_ = (next_ + 1) % events_.size();
    SlotEvent& e = events_[index];
    if (e.recorded) {
      detail::ScopedContext scope(e.ctx);
      detail::check(detail::driver_state().api.cuEventSynchronize(e.event), "cuEventSynchronize");
      e.recorded = false;
    }
    return index;
  }

  /// Marks slot `index` as read by the work enqueued so far on `stream` (records an event
  /// there; does not wait). Call it right after enqueuing the slot's copy. `stream` is a
  /// stream handle as for CudaEventTimer. No-op with pageable memory.
  /// @throws InvalidArgument (index out of range, ring closed), CudaError.
  void release(std::size_t index, std::uintptr_t stream = 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    check_unlocked(index);
    if (!pinned_) return;
    const detail::DriverApi& api = detail::driver_state().api;
    const detail::CUcontext ctx = detail::stream_context(stream, device_);
    SlotEvent& e = events_[index];
    detail::ScopedContext scope(ctx);
    if (e.event != nullptr && e.ctx != ctx) {  // another context: wait for the old copy first
      if (e.recorded) detail::check(api.cuEventSynchronize(e.event), "cuEventSynchronize");
      api.cuEventDestroy(e.event);
      e = SlotEvent{};
    }
    if (e.event == nullptr) {
      detail::check(api.cuEventCreate(&e.event, detail::kEventDisableTiming), "cuEventCreate");
      e.ctx = ctx;
    }
    detail::check(api.cuEventRecord(e.event, detail::to_stream(stream)), "cuEventRecord");
    e.recorded = true;
  }

  /// Waits for the slots' copies in flight, then closes every slot and frees the memory.
  /// Closing twice is allowed. @throws BufferInUse (nothing is closed) while a slot has live
  /// views; CudaError if waiting fails.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const std::size_t n = slots_[i]->exports();
      if (n > 0) {
        PYINFER_THROW(BufferInUse(
            "cannot close a PinnedRing while " + std::to_string(n) + " view(s) of slot " +
            std::to_string(i) + " (memoryview, numpy array, tensor) are alive: delete them first"));
      }
    }
    const detail::DriverApi& api = detail::driver_state().api;
    for (SlotEvent& e : events_) {
      if (e.recorded) {
        detail::ScopedContext scope(e.ctx);
        detail::check(api.cuEventSynchronize(e.event), "cuEventSynchronize");
        e.recorded = false;
      }
    }
    for (auto& s : slots_) s->close();
    drop_events_unlocked();
    closed_ = true;
  }

 private:
  struct SlotEvent {
    detail::CUevent event = nullptr;
    detail::CUcontext ctx = nullptr;
    bool recorded = false;  // recorded since the last wait for it
  };

  void check_unlocked(std::size_t index) const {
    if (closed_) PYINFER_THROW(InvalidArgument("the PinnedRing is closed"));
    if (index >= events_.size()) {
      PYINFER_THROW(InvalidArgument("slot index " + std::to_string(index) +
                                    " is out of range: the ring has " +
                                    std::to_string(events_.size()) + " slots"));
    }
  }

  void drop_events() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    drop_events_unlocked();
  }

  // Best effort, never throws: waits for recorded events, destroys them.
  void drop_events_unlocked() noexcept {
    for (SlotEvent& e : events_) {
      if (e.event == nullptr) continue;
      const detail::DriverApi& api = detail::driver_state().api;
      detail::ScopedContext scope(e.ctx, std::nothrow);
      if (e.recorded) api.cuEventSynchronize(e.event);
      api.cuEventDestroy(e.event);
      e = SlotEvent{};
    }
  }

  mutable std::mutex mutex_;
  std::size_t slot_nbytes_;
  std::size_t stride_ = 0;
  int device_;
  bool pinned_ = false;
  bool closed_ = false;
  std::size_t next_ = 0;
  std::vector<std::shared_ptr<PinnedBuffer>> slots_;
  std::vector<SlotEvent> events_;
};

#if PYINFER_DETAIL_DEFINE_COMPILED
PYINFER_COMPILED PinnedBuffer::PinnedBuffer(std::size_t nbytes, int device, bool allow_pageable)
    : PinnedBuffer(std::make_shared<detail::HostAllocation>(nbytes, device, allow_pageable), 0,
                   nbytes, device) {}

PYINFER_COMPILED PinnedRing::PinnedRing(std::size_t slot_nbytes, std::size_t slots, int device,
                                        bool allow_pageable)
    : slot_nbytes_(slot_nbytes), device_(device) {
  if (slot_nbytes == 0) PYINFER_THROW(InvalidArgument("slot_nbytes must be at least 1, got 0"));
  if (slots == 0) PYINFER_THROW(InvalidArgument("slots must be at least 1, got 0"));
  const std::size_t limit = static_cast<std::size_t>(-1) / 2;  // no overflow below
  if (slot_nbytes > limit ||
      slots > limit / detail::align_up(slot_nbytes, detail::kHostAlignment)) {
    PYINFER_THROW(InvalidArgument("slot_nbytes * slots is too large"));
  }
  stride_ = detail::align_up(slot_nbytes, detail::kHostAlignment);
  auto allocation =
      std::make_shared<detail::HostAllocation>(stride_ * slots, device, allow_pageable);
  pinned_ = allocation->pinned();
  slots_.reserve(slots);
  for (std::size_t i = 0; i < slots; ++i) {
    slots_.push_back(std::make_shared<PinnedBuffer>(allocation, i * stride_, slot_nbytes, device));
  }
  events_.resize(slots);
}
#endif

}  // namespace pyinfer
