// Bindings of the open-loop arrivals: the schedules and the scheduler thread.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "bindings.hpp"
#include "pyinfer/arrivals.hpp"

namespace pyinfer::bindings {

void bind_load(py::module_& m) {
  m.def("constant_arrivals", &constant_arrivals, py::arg("qps"), py::arg("count"),
        "Offsets in nanoseconds of `count` requests at a constant rate: i / qps.");
  m.def("poisson_arrivals", &poisson_arrivals, py::arg("qps"), py::arg("count"), py::arg("seed"),
        "Offsets in nanoseconds of `count` Poisson arrivals of rate `qps` (first at 0).");

  py::class_<ArrivalScheduler>(
      m, "ArrivalScheduler",
      "Issues the requests of a schedule on time from a native thread (no GIL) to workers\n"
      "waiting in next().")
      .def(py::init<std::vector<std::int64_t>, std::int64_t>(), py::arg("offsets_ns"),
           py::arg("spin_ns") = ArrivalScheduler::kDefaultSpinNs)
      .def("start", &ArrivalScheduler::start, py::arg("start_ns"),
           "Starts issuing; request i is due at start_ns + offsets_ns[i] (now_ns() time).")
      .def(
          "next",
          [](ArrivalScheduler& self, std::int64_t deadline_ns) -> py::object {
            Arrival a;
            bool got = false;
            {
              py::gil_scoped_release release;
              got = self.next(a, deadline_ns);
            }
            if (!got) return py::none();
            return py::make_tuple(a.index, a.scheduled_ns, a.issued_ns);
          },
          py::arg("deadline_ns") = -1,
          "Waits (GIL released) for the next issued request: (index, scheduled_ns, issued_ns),\n"
          "or None past deadline_ns (now_ns() time; -1: none) or when the schedule is over.")
      .def("stop", &ArrivalScheduler::stop, "Stops issuing and wakes every waiting worker.")
      .def_property_readonly("finished", &ArrivalScheduler::finished,
                             "True when nothing is queued and nothing more will be issued.")
      .def_property_readonly("issued", &ArrivalScheduler::issued)
      .def_property_readonly("queued", &ArrivalScheduler::queued)
      .def("__len__", &ArrivalScheduler::size);
}

}  // namespace pyinfer::bindings
