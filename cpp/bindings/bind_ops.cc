// densitron._core bindings for the GEMM room: matmul on float32 matrices, a loss's value on
// arrays (a Keras loss object called on y_true and y_pred), CPU/ISA information and the thread
// count. Converts and validates, releases the GIL, calls the engine; no logic here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/gemm.h"
#include "densitron/ops.h"

namespace py = pybind11;

namespace {

struct Matrix {
  py::array keep;  // owns the data (a contiguous copy when the input had unusable strides)
  float* data;
  int64_t rows, cols, ld;
};

std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

std::string shape_str(const py::array& arr) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(arr.shape(i));
  }
  if (arr.ndim() == 1) s += ",";
  return s + ")";
}

// Row stride in floats if the array is a row-major matrix with unit column stride, else -1.
int64_t leading_dim(const py::array& arr) {
  const int64_t rows = arr.shape(0), cols = arr.shape(1);
  const int64_t s0 = arr.strides(0), s1 = arr.strides(1);
  if (cols > 1 && s1 != static_cast<int64_t>(sizeof(float))) return -1;
  const int64_t min_ld = std::max<int64_t>(cols, 1);
  if (rows <= 1) return min_ld;
  if (s0 % static_cast<int64_t>(sizeof(float)) != 0) return -1;
  const int64_t ld = s0 / static_cast<int64_t>(sizeof(float));
  return ld >= min_ld ? ld : -1;
}

py::array check_float32_2d(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string("`") + name +
                         "` must be a numpy.ndarray of dtype float32. Received: " + name +
                         " of type " + type_name(obj));
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<float>())) {
    throw py::type_error(std::string("`") + name + "` must have dtype float32. Received: " +
                         name + ".dtype=" + py::str(arr.dtype()).cast<std::string>());
  }
  if (arr.ndim() != 2) {
    throw py::value_error(std::string("`") + name + "` must be a 2-D array. Received: " + name +
                          ".shape=" + shape_str(arr));
  }
  return arr;
}

Matrix as_input(const py::handle& obj, const char* name) {
  py::array arr = check_float32_2d(obj, name);
  int64_t ld = leading_dim(arr);
  if (ld < 0) {  // unusable strides: one contiguous copy
    arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
    ld = std::max<int64_t>(arr.shape(1), 1);
  }
  return Matrix{arr, static_cast<float*>(const_cast<void*>(arr.data())), arr.shape(0),
                arr.shape(1), ld};
}

bool overlaps(const Matrix& x, const Matrix& y) {
  if (x.rows == 0 || x.cols == 0 || y.rows == 0 || y.cols == 0) return false;
  const float* x0 = x.data;
  const float* x1 = x.data + (x.rows - 1) * x.ld + x.cols;
  const float* y0 = y.data;
  const float* y1 = y.data + (y.rows - 1) * y.ld + y.cols;
  return x0 < y1 && y0 < x1;
}

py::array matmul(const py::object& a_obj, const py::object& b_obj, bool transpose_a,
                 bool transpose_b, const py::object& out_obj) {
  const Matrix a = as_input(a_obj, "a");
  const Matrix b = as_input(b_obj, "b");
  const int64_t m = transpose_a ? a.cols : a.rows;
  const int64_t k = transpose_a ? a.rows : a.cols;
  const int64_t kb = transpose_b ? b.cols : b.rows;
  const int64_t n = transpose_b ? b.rows : b.cols;
  if (k != kb) {
    throw py::value_error(
        "`a` and `b` have incompatible shapes: op(a) is (" + std::to_string(m) + ", " +
        std::to_string(k) + ") and op(b) is (" + std::to_string(kb) + ", " + std::to_string(n) +
        "). Received: a.shape=" + shape_str(a.keep) + ", b.shape=" + shape_str(b.keep) +
        ", transpose_a=" + (transpose_a ? "True" : "False") +
        ", transpose_b=" + (transpose_b ? "True" : "False"));
  }
  Matrix c;
  if (out_obj.is_none()) {
    py::array_t<float> arr({m, n});
    c = Matrix{arr, arr.mutable_data(), m, n, std::max<int64_t>(n, 1)};
  } else {
    py::array arr = check_float32_2d(out_obj, "out");
    if (arr.shape(0) != m || arr.shape(1) != n) {
      throw py::value_error("`out` must have shape (" + std::to_string(m) + ", " +
                            std::to_string(n) + ") for these operands. Received: out.shape=" +
                            shape_str(arr));
    }
    if (!arr.writeable()) {
      throw py::value_error("`out` must be writeable. Received: a read-only out");
    }
    const int64_t ld = leading_dim(arr);
    if (ld < 0) {
      throw py::value_error(
          "`out` must have unit column stride and a row stride >= its width. Received: "
          "out.strides=(" + std::to_string(arr.strides(0)) + ", " +
          std::to_string(arr.strides(1)) + ")");
    }
    c = Matrix{arr, static_cast<float*>(arr.mutable_data()), m, n, ld};
    if (overlaps(c, a) || overlaps(c, b)) {
      throw py::value_error("`out` must not share memory with `a` or `b`. Received: an out "
                            "that overlaps an input");
    }
  }
  // Releasing the GIL costs about as much as a 64³ product: small ones keep it.
  if (static_cast<double>(m) * n * k < 64.0 * 64.0 * 64.0) {
    densitron::sgemm(transpose_a, transpose_b, m, n, k, 1.0f, a.data, a.ld, b.data, b.ld, 0.0f,
                     c.data, c.ld);
  } else {
    py::gil_scoped_release release;
    densitron::sgemm(transpose_a, transpose_b, m, n, k, 1.0f, a.data, a.ld, b.data, b.ld, 0.0f,
                     c.data, c.ld);
  }
  return c.keep;
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// The per-sample values of a loss (densitron::Loss id) on rows × cols predictions: y_true is
// rows × cols, or rows × 1 class ids for the sparse cross-entropies. The hinge losses read {0,
// 1} targets as {-1, 1} when all of y_true is 0 or 1, as Keras does per call. (Python shapes
// and checks the arrays; this guards the sizes.)
py::array_t<float> loss_rows(int loss, const FloatArray& y_true, const FloatArray& y_pred,
                             float param, std::array<float, 3> extra,
                             std::optional<float> ignore_class) {
  if (y_pred.ndim() != 2 || y_true.ndim() != 2 || y_true.shape(0) != y_pred.shape(0) ||
      (y_true.shape(1) != y_pred.shape(1) && y_true.shape(1) != 1)) {
    throw py::value_error("`y_true` and `y_pred` must be 2-D with matching rows. Received: "
                          "y_true.shape=" + shape_str(y_true) + ", y_pred.shape=" +
                          shape_str(y_pred));
  }
  const int64_t rows = y_pred.shape(0), cols = y_pred.shape(1), ycols = y_true.shape(1);
  const auto kind = static_cast<densitron::Loss>(loss);
  py::array_t<float> out(rows);
  float* values = out.mutable_data();
  py::gil_scoped_release release;
  if (kind == densitron::Loss::kHinge || kind == densitron::Loss::kSquaredHinge)
    param = densitron::hinge_targets(y_true.data(), rows * ycols);
  for (int64_t r = 0; r < rows; ++r) {
    values[r] = static_cast<float>(densitron::loss_forward_backward(
        kind, y_pred.data() + r * cols, y_true.data() + r * ycols, 1, cols, nullptr, 1.0, false,
        nullptr, 1, param, extra.data(),
        ignore_class.value_or(std::numeric_limits<float>::quiet_NaN())));
  }
  return out;
}

densitron::Isa isa_from_name(const std::string& name) {
  for (densitron::Isa isa :
       {densitron::Isa::kGeneric, densitron::Isa::kAvx2, densitron::Isa::kAvx512}) {
    if (name == densitron::isa_name(isa)) return isa;
  }
  throw py::value_error("`name` must be one of 'generic', 'avx2', 'avx512'. Received: name='" +
                        name + "'");
}

}  // namespace

void bind_ops(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("transpose_a") = false,
        py::arg("transpose_b") = false, py::arg("out") = py::none(),
        "op(a) @ op(b) for 2-D float32 arrays; a transposed operand is passed as stored.");
  m.def(
      "cpu_info",
      [] {
        py::dict info;
        info["isa"] = densitron::isa_name(densitron::active_isa());
        py::list supported;
        for (densitron::Isa isa :
             {densitron::Isa::kGeneric, densitron::Isa::kAvx2, densitron::Isa::kAvx512}) {
          if (densitron::isa_supported(isa)) supported.append(densitron::isa_name(isa));
        }
        info["supported_isas"] = supported;
        info["num_threads"] = densitron::get_num_threads();
        info["openmp"] = densitron::built_with_openmp();
        info["adaptive_threads"] = densitron::adaptive_threads();
        info["oversubscribed"] = densitron::machine_oversubscribed();
        return info;
      },
      "The SIMD instruction set in use, the ones this CPU supports, the thread count and "
      "whether the engine was built with OpenMP's threads.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) {
          throw py::value_error("`n` must be >= 1. Received: n=" + std::to_string(n));
        }
        densitron::set_num_threads(n);
      },
      py::arg("n"), "Sets the number of threads the kernels use.");
  m.def("set_adaptive_threads", &densitron::set_adaptive_threads, py::arg("on"),
        "Whether runs go to one thread while the machine is oversubscribed (default on).");
  m.def("get_adaptive_threads", &densitron::adaptive_threads);
  m.def("machine_oversubscribed", &densitron::machine_oversubscribed,
        "Whether the last runs found other processes keeping the engine's threads off their "
        "cores (runs then take one thread).");
  m.def("_loss_rows", &loss_rows, py::arg("loss"), py::arg("y_true"), py::arg("y_pred"),
        py::arg("param"), py::arg("extra") = std::array<float, 3>{2.0f, 0.25f, 0.0f},
        py::arg("ignore_class") = py::none(),
        "A loss's per-sample values over the rows of y_pred (extra: the focal losses' gamma, "
        "alpha and class balancing; ignore_class: the sparse cross-entropies' class id whose "
        "rows take 0).");
  m.def("get_num_threads", &densitron::get_num_threads, "The number of threads the kernels use.");
  m.def(
      "_set_isa",
      [](const std::string& name) {
        const densitron::Isa isa = isa_from_name(name);
        if (!densitron::isa_supported(isa)) {
          throw py::value_error("`name` names an ISA this CPU does not support. Received: name='" +
                                name + "'");
        }
        densitron::set_active_isa(isa);
      },
      py::arg("name"), "Forces the GEMM microkernel ISA (for tests).");
}
