// Definitions of arrivals.hpp kept out of it by a separately compiled pyinfer (see
// pyinfer/detail/config.hpp): the random schedule (<random>) and the scheduler thread's start.
// Internal to pyinfer: include pyinfer/arrivals.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "pyinfer/arrivals.hpp"
#include "pyinfer/errors.hpp"

namespace pyinfer {

PYINFER_COMPILED std::vector<std::int64_t> poisson_arrivals(double qps, std::size_t count,
                                                            std::uint64_t seed) {
  detail::check_rate(qps, count);
  std::mt19937_64 engine(seed);
  std::exponential_distribution<double> gap(qps);
  std::vector<std::int64_t> offsets(count);
  double t = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    offsets[i] = static_cast<std::int64_t>(std::llround(t * 1e9));
    t += gap(engine);
  }
  return offsets;
}

PYINFER_COMPILED void ArrivalScheduler::start(std::int64_t start_ns) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) PYINFER_THROW(InvalidArgument("the scheduler was already started"));
  started_ = true;
  start_ns_ = start_ns;
  thread_ = std::thread([this] { run(); });
}

}  // namespace pyinfer
