// Bindings of the summary, the recorder and summarize().
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/histogram.hpp"
#include "pyinfer/recorder.hpp"
#include "pyinfer/summary.hpp"

namespace pyinfer::bindings {

namespace {

const std::vector<double> kDefaultRanks(kDefaultPercentiles.begin(), kDefaultPercentiles.end());

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Shortest text that reads back as the same double: "50", "99.9", "1e+20".
std::string format_number(double v) {
  char text[32];
  const std::to_chars_result result = std::to_chars(text, text + sizeof(text), v);
  return std::string(text, result.ptr);
}

double percentile_from(const Summary& s, double p) {
  for (std::size_t i = 0; i < s.percentile_ranks.size(); ++i) {
    if (s.percentile_ranks[i] == p) return s.percentile_values[i];
  }
  std::string asked;
  for (double r : s.percentile_ranks) asked += (asked.empty() ? "" : ", ") + format_number(r);
  throw InvalidArgument("percentile " + format_number(p) +
                        " was not requested; this summary has: " + asked);
}

py::dict percentiles_dict(const Summary& s) {
  py::dict d;
  for (std::size_t i = 0; i < s.percentile_ranks.size(); ++i) {
    d[py::float_(s.percentile_ranks[i])] = s.percentile_values[i];
  }
  return d;
}

// A read-only numpy view of a snapshot; the array keeps the snapshot's buffer alive.
py::array snapshot_view(const SampleSnapshot& snap) {
  auto* holder = new std::shared_ptr<const double[]>(snap.owner);
  py::capsule owner(holder,
                    [](void* p) { delete static_cast<std::shared_ptr<const double[]>*>(p); });
  static const double kEmpty = 0.0;
  const double* data = snap.data != nullptr ? snap.data : &kEmpty;
  py::array view(py::dtype::of<double>(), {static_cast<py::ssize_t>(snap.size)}, {}, data, owner);
  py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return view;
}

}  // namespace

void bind_stats(py::module_& m) {
  py::class_<Summary>(m, "Summary",
                      "Count, mean, std, min, max and percentiles of a set of samples, in the\n"
                      "samples' unit (nanoseconds for a LatencyRecorder).")
      .def_readonly("count", &Summary::count)
      .def_readonly("mean", &Summary::mean)
      .def_readonly("std", &Summary::std)
      .def_readonly("min", &Summary::min)
      .def_readonly("max", &Summary::max)
      .def_readonly("exact", &Summary::exact,
                    "True when percentiles are exact; False for a histogram's estimates.")
      .def_readonly("relative_error", &Summary::relative_error,
                    "Bound on the percentiles' relative error (0 when exact).")
      .def_property_readonly("percentiles", &percentiles_dict,
                             "The requested percentiles as {rank: value}, in the order asked.")
      .def_property_readonly(
          "std_percent",
          [](const Summary& s) { return s.mean != 0.0 ? 100.0 * s.std / s.mean : NAN; },
          "The std as a percentage of the mean (coefficient of variation); NaN if mean is 0.")
      .def("percentile", &percentile_from, py::arg("p"),
           "The value at rank p, which must be one of the requested ranks.")
      .def("to_dict",
           [](const Summary& s) {
             return attributes_dict(s, {"count", "mean", "std", "min", "max", "percentiles",
                                        "exact", "relative_error"});
           })
      .def("__repr__", [](const Summary& s) {
        std::string r = "Summary(count=" + std::to_string(s.count) +
                        ", mean=" + format_number(s.mean) + ", std=" + format_number(s.std) +
                        ", min=" + format_number(s.min) + ", max=" + format_number(s.max);
        for (std::size_t i = 0; i < s.percentile_ranks.size(); ++i) {
          r += ", p" + format_number(s.percentile_ranks[i]) + "=" +
               format_number(s.percentile_values[i]);
        }
        return r + (s.exact ? ")" : ", exact=False)");
      });

  m.def(
      "summarize",
      [](const DoubleArray& values, const std::vector<double>& percentiles, int ddof) {
        const double* data = values.data();
        const auto n = static_cast<std::size_t>(values.size());
        py::gil_scoped_release release;
        return summarize(data, n, percentiles, ddof);
      },
      py::arg("values"), py::arg("percentiles") = kDefaultRanks, py::arg("ddof") = 0,
      "Summary of an array (any shape, flattened). A C-contiguous float64 array is read in\n"
      "place, without a copy; other dtypes are converted first.");

  py::class_<LatencyRecorder>(m, "LatencyRecorder",
                              "Thread-safe collection of durations in nanoseconds, exact or as a\n"
                              "bounded log-linear histogram.")
      .def(py::init([](bool histogram, int significant_digits, std::uint64_t highest_trackable_ns) {
             return histogram ? LatencyRecorder::histogram(significant_digits, highest_trackable_ns)
                              : LatencyRecorder();
           }),
           py::kw_only(), py::arg("histogram") = false, py::arg("significant_digits") = 3,
           py::arg("highest_trackable_ns") = LogLinearHistogram::kOneHourNs)
      .def("record", &LatencyRecorder::record, py::arg("ns"), "Records one duration.")
      .def(
          "record_many",
          [](LatencyRecorder& self, const DoubleArray& values) {
            const double* data = values.data();
            const auto n = static_cast<std::size_t>(values.size());
            py::gil_scoped_release release;
            self.record_many(data, n);
          },
          py::arg("values"), "Records every value of an array; none if any is invalid.")
      .def_property_readonly("count", &LatencyRecorder::count)
      .def("__len__", &LatencyRecorder::count)
      .def_property_readonly("is_histogram", &LatencyRecorder::is_histogram)
      .def_property_readonly("significant_digits", &LatencyRecorder::significant_digits)
      .def_property_readonly("highest_trackable_ns", &LatencyRecorder::highest_trackable_ns)
      .def_property_readonly("relative_error", &LatencyRecorder::relative_error)
      .def_property_readonly("memory_bytes", &LatencyRecorder::memory_bytes)
      .def(
          "samples", [](const LatencyRecorder& self) { return snapshot_view(self.samples()); },
          "Read-only zero-copy float64 view of the samples recorded so far.")
      .def(
          "summary",
          [](const LatencyRecorder& self, const std::vector<double>& percentiles, int ddof) {
            py::gil_scoped_release release;
            return self.summary(percentiles, ddof);
          },
          py::arg("percentiles") = kDefaultRanks, py::arg("ddof") = 0)
      .def("merge", &LatencyRecorder::merge, py::arg("other"),
           py::call_guard<py::gil_scoped_release>())
      .def("clear", &LatencyRecorder::clear)
      .def(
          "histogram_buckets",
          [](const LatencyRecorder& self) {
            std::vector<std::uint64_t> flat = self.histogram_buckets();
            py::array_t<std::uint64_t> out(
                {static_cast<py::ssize_t>(flat.size() / 3), static_cast<py::ssize_t>(3)});
            std::copy(flat.begin(), flat.end(), out.mutable_data());
            return out;
          },
          "Non-empty buckets as rows of (lowest value ns, width ns, count).")
      .def("__repr__", [](const LatencyRecorder& self) {
        if (self.is_histogram()) {
          return "LatencyRecorder(histogram=True, significant_digits=" +
                 std::to_string(self.significant_digits()) +
                 ", count=" + std::to_string(self.count()) + ")";
        }
        return "LatencyRecorder(count=" + std::to_string(self.count()) + ")";
      });
}

}  // namespace pyinfer::bindings
