// densitron._core: the Python face of the C++ engine. One binding file per room; no logic here.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_ops(py::module_& m);    // bind_ops.cc: matmul, cpu_info, threads
void bind_graph(py::module_& m);  // bind_graph.cc: the graph executor

PYBIND11_MODULE(_core, m) {
  m.doc() = "densitron's C++ engine";
  bind_ops(m);
  bind_graph(m);
}
