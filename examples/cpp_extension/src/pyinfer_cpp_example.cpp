// A Python extension that times a C++ function with pyinfer's timed loop and returns a summary.
//
// Built three ways by scripts/check_cpp_extension.sh: with CMake (find_package(pyinfer)), with a
// plain compiler command (-I"$(python -c 'import pyinfer; print(pyinfer.get_include())')"), and
// by pip as a scikit-build-core package whose build environment installs pyinfer-toolkit.
#include <pybind11/pybind11.h>
#include <pyinfer/pyinfer.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

/// The work being timed: sqrt(x) + sqrt(x + 1) + ... + sqrt(x + n - 1).
double sum_of_square_roots(double x, std::int64_t n) {
  double acc = 0.0;
  for (std::int64_t i = 0; i < n; ++i) acc += std::sqrt(x + static_cast<double>(i));
  return acc;
}

/// Times `iterations` calls of sum_of_square_roots(x, n) after `warmup` untimed ones.
py::dict time_sum_of_square_roots(double x, std::int64_t n, std::size_t iterations,
                                  std::size_t warmup) {
  if (n < 0) throw pyinfer::InvalidArgument("n must be at least 0, got " + std::to_string(n));
  if (iterations == 0) throw pyinfer::InvalidArgument("iterations must be at least 1");
  std::vector<double> ns(iterations);
  double result = 0.0;
  std::size_t done = 0;
  {
    py::gil_scoped_release no_gil;  // pure C++ from here: other Python threads may run
    done = pyinfer::timed_loop(
        [&] {
          pyinfer::do_not_optimize(x);  // x "may have changed": computed anew on every call
          result = sum_of_square_roots(x, n);
          pyinfer::do_not_optimize(result);  // the result "is read": the work is not deleted
        },
        iterations, warmup, ns.data());
  }
  pyinfer::LatencyRecorder recorder;
  recorder.record_many(ns.data(), done);
  const pyinfer::Summary s = recorder.summary({50.0, 99.0});
  py::dict summary;
  summary["count"] = s.count;
  summary["mean_ns"] = s.mean;
  summary["std_ns"] = s.std;
  summary["min_ns"] = s.min;
  summary["max_ns"] = s.max;
  summary["p50_ns"] = s.percentile(50.0);
  summary["p99_ns"] = s.percentile(99.0);
  summary["result"] = result;
  return summary;
}

}  // namespace

PYBIND11_MODULE(pyinfer_cpp_example, m) {
  m.doc() = "Times a C++ function with pyinfer's timed loop (an example of pyinfer's C++ headers).";
  m.attr("pyinfer_version") = PYINFER_VERSION_STRING;
  m.def("sum_of_square_roots", &sum_of_square_roots, py::arg("x"), py::arg("n"),
        "sqrt(x) + sqrt(x + 1) + ... + sqrt(x + n - 1), the work that is timed.");
  m.def("time_sum_of_square_roots", &time_sum_of_square_roots, py::arg("x"), py::arg("n"),
        py::arg("iterations"), py::arg("warmup") = 10,
        "Times sum_of_square_roots(x, n) `iterations` times; returns count, mean_ns, std_ns, "
        "min_ns, max_ns, p50_ns, p99_ns and the result of the last call.");
}
