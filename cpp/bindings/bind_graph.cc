// Binds the graph executor: converts and checks arrays, releases the GIL, calls. The Python
// layer validates user input with Keras-style messages; the checks here only keep a wrong call
// from touching memory it does not own.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "densitron/graph.h"

namespace py = pybind11;
using densitron::Graph;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

using DoubleArray = py::array_t<double, py::array::c_style>;

// The data of a C-contiguous array of T holding rows × width values.
template <class T = float>
const T* checked_rows(const py::handle& obj, int64_t width, int64_t rows, const char* what) {
  using Array = py::array_t<T, py::array::c_style>;
  if (!py::isinstance<Array>(obj))
    throw py::type_error(std::string(what) + " must be C-contiguous float32 arrays");
  auto a = py::reinterpret_borrow<Array>(obj);
  const int64_t size = static_cast<int64_t>(a.size());
  if (size != rows * width)
    throw py::value_error(std::string(what) + ": expected " + std::to_string(rows) + " rows of " +
                          std::to_string(width) + " values. Received: " + std::to_string(size) +
                          " values");
  return a.data();
}

// A sparse input: an object with scipy's CSR attributes `indptr` (int64), `indices` (int32)
// and `data` (float32), all C-contiguous (densitron.trainers.data.SparseInput).
bool is_sparse(const py::handle& obj) { return py::hasattr(obj, "indptr"); }

int64_t rows_of(const py::list& xs) {
  if (xs.empty()) throw py::value_error("at least one input array is required");
  if (is_sparse(xs[0]))
    return static_cast<int64_t>(py::len(xs[0].attr("indptr"))) - 1;
  return static_cast<int64_t>(py::reinterpret_borrow<py::array>(xs[0]).shape(0));
}

// The CSR arrays of a sparse input of `rows` rows and `width` columns, checked so that no row
// reads outside them.
densitron::SparseRows checked_sparse(const py::handle& obj, int64_t width, int64_t rows) {
  using I64 = py::array_t<int64_t, py::array::c_style>;
  using I32 = py::array_t<int32_t, py::array::c_style>;
  const py::object ip = obj.attr("indptr"), ix = obj.attr("indices"), v = obj.attr("data");
  if (!py::isinstance<I64>(ip) || !py::isinstance<I32>(ix) || !py::isinstance<FloatArray>(v))
    throw py::type_error("a sparse x needs C-contiguous int64 indptr, int32 indices and float32 "
                         "data");
  auto indptr = py::reinterpret_borrow<I64>(ip);
  auto indices = py::reinterpret_borrow<I32>(ix);
  auto values = py::reinterpret_borrow<FloatArray>(v);
  const int64_t nnz = static_cast<int64_t>(values.size());
  if (static_cast<int64_t>(indptr.size()) != rows + 1 ||
      static_cast<int64_t>(indices.size()) != nnz)
    throw py::value_error("a sparse x needs rows + 1 indptr entries and one index per value");
  const int64_t* p = indptr.data();
  if (p[0] != 0 || p[rows] != nnz) throw py::value_error("a sparse x's indptr must run 0..nnz");
  for (int64_t r = 0; r < rows; ++r)
    if (p[r + 1] < p[r]) throw py::value_error("a sparse x's indptr must not decrease");
  const int32_t* c = indices.data();
  for (int64_t e = 0; e < nnz; ++e)
    if (c[e] < 0 || c[e] >= width)
      throw py::value_error("a sparse x's column indices must lie in [0, " +
                            std::to_string(width) + "). Received: " + std::to_string(c[e]));
  densitron::SparseRows sp;
  sp.indptr = p;
  sp.indices = c;
  sp.values = values.data();
  return sp;
}

// A metric spec from its Python tuple: (is_accuracy, kind, threshold, loss, class_id, top_k,
// weighted[, AUC thresholds]).
densitron::MetricSpec metric_spec(const py::handle& m) {
  auto full = m.cast<py::tuple>();
  if (full.size() != 7 && full.size() != 8)
    throw py::value_error("metric specs have 7 or 8 fields");
  auto mt = py::tuple(full[py::slice(0, 7, 1)])
                .cast<std::tuple<bool, int, float, int, int64_t, int64_t, bool>>();
  densitron::MetricSpec ms;
  if (full.size() == 8) {
    ms.thresholds = full[7].cast<std::vector<float>>();
    if (static_cast<float>(ms.thresholds.size()) != std::get<2>(mt) ||
        !std::is_sorted(ms.thresholds.begin(), ms.thresholds.end()))
      throw py::value_error("AUC thresholds: one per bucket, sorted");
  }
  ms.is_accuracy = std::get<0>(mt);
  ms.accuracy = static_cast<densitron::AccuracyKind>(std::get<1>(mt));
  ms.threshold = std::get<2>(mt);
  ms.loss = static_cast<densitron::Loss>(std::get<3>(mt));
  ms.class_id = std::get<4>(mt);
  ms.top_k = std::get<5>(mt);
  ms.weighted = std::get<6>(mt);
  return ms;
}

// A C-contiguous float64, int32, int64 or uint8 array of rows × width values, read as it is;
// data nullptr for any other array.
densitron::RawInput raw_input(const py::handle& obj, int64_t width, int64_t rows) {
  densitron::RawInput in;
  if (py::isinstance<DoubleArray>(obj)) {
    in.data = checked_rows<double>(obj, width, rows, "x");
    in.type = densitron::RawType::kFloat64;
  } else if (py::isinstance<py::array_t<int32_t, py::array::c_style>>(obj)) {
    in.data = checked_rows<int32_t>(obj, width, rows, "x");
    in.type = densitron::RawType::kInt32;
  } else if (py::isinstance<py::array_t<int64_t, py::array::c_style>>(obj)) {
    in.data = checked_rows<int64_t>(obj, width, rows, "x");
    in.type = densitron::RawType::kInt64;
  } else if (py::isinstance<py::array_t<uint8_t, py::array::c_style>>(obj)) {
    in.data = checked_rows<uint8_t>(obj, width, rows, "x");
    in.type = densitron::RawType::kUint8;
  }
  return in;
}

// Input k of xs into d: a dense array or a sparse input.
void add_input(densitron::DataRefs* d, const py::handle& obj, int64_t width) {
  if (is_sparse(obj)) {
    d->sparse.resize(d->x.size() + 1);
    d->sparse.back() = checked_sparse(obj, width, d->rows);
    d->x.push_back(nullptr);
  } else if (const densitron::RawInput in = raw_input(obj, width, d->rows); in.data) {
    d->raw.resize(d->x.size() + 1);  // converted to float32 as its rows are gathered
    d->raw.back() = in;
    d->x.push_back(nullptr);
  } else {
    d->x.push_back(checked_rows(obj, width, d->rows, "x"));
  }
}

class PyGraph {
 public:
  // nodes: (op, inputs, width, last_dim, activation, (negative_slope, max_value, threshold,
  //         alpha), params, fattrs, iattrs, (activity l1, activity l2))
  // params: (array, rows, cols, l1, l2, constraint, c_min, c_max, c_rate, c_axis)
  PyGraph(const py::list& nodes, const py::list& params, std::vector<int> inputs,
          std::vector<int> outputs) {
    std::vector<densitron::NodeSpec> specs;
    for (const py::handle& h : nodes) {
      auto t = h.cast<py::tuple>();
      if (t.size() != 10) throw py::value_error("node specs have 10 fields");
      densitron::NodeSpec s;
      s.op = static_cast<densitron::OpType>(t[0].cast<int>());
      s.inputs = t[1].cast<std::vector<int>>();
      s.width = t[2].cast<int64_t>();
      s.last_dim = t[3].cast<int64_t>();
      s.activation = static_cast<densitron::Activation>(t[4].cast<int>());
      auto ap = t[5].cast<std::tuple<float, float, float, float>>();
      s.act_params.negative_slope = std::get<0>(ap);
      s.act_params.max_value = std::get<1>(ap);
      s.act_params.threshold = std::get<2>(ap);
      s.act_params.alpha = std::get<3>(ap);
      s.params = t[6].cast<std::vector<int>>();
      s.fattrs = t[7].cast<std::vector<double>>();
      s.iattrs = t[8].cast<std::vector<int64_t>>();
      auto activity = t[9].cast<std::tuple<float, float>>();
      s.activity_l1 = std::get<0>(activity);
      s.activity_l2 = std::get<1>(activity);
      specs.push_back(std::move(s));
    }
    std::vector<densitron::ParamSpec> ps;
    for (const py::handle& h : params) {
      auto t = h.cast<py::tuple>();
      if (t.size() != 10) throw py::value_error("parameter specs have 10 fields");
      py::object arr = t[0];
      if (!py::isinstance<FloatArray>(arr))
        throw py::type_error("parameters must be C-contiguous float32 arrays");
      auto a = py::reinterpret_borrow<FloatArray>(arr);
      if (!a.writeable()) throw py::value_error("parameters must be writeable");
      densitron::ParamSpec p;
      p.data = a.mutable_data();
      p.size = static_cast<int64_t>(a.size());
      p.rows = t[1].cast<int64_t>();
      p.cols = t[2].cast<int64_t>();
      if (p.rows * p.cols != p.size) throw py::value_error("parameter rows × cols != size");
      p.l1 = t[3].cast<float>();
      p.l2 = t[4].cast<float>();
      p.constraint = static_cast<densitron::ConstraintKind>(t[5].cast<int>());
      p.c_min = t[6].cast<float>();
      p.c_max = t[7].cast<float>();
      p.c_rate = t[8].cast<float>();
      p.c_axis = t[9].cast<int>();
      ps.push_back(p);
      keep_alive_.append(a);
    }
    graph_ = std::make_unique<Graph>(std::move(specs), std::move(ps), std::move(inputs),
                                     std::move(outputs));
  }

  void compile(const py::list& outputs, const py::dict& opt, std::vector<bool> trainable) {
    std::vector<densitron::OutputSpec> specs;
    target_widths_.clear();
    loss_of_.clear();
    weighted_.clear();
    for (const py::handle& h : outputs) {
      auto t = h.cast<std::tuple<int, int, float, int64_t, py::list, float,
                                 std::array<float, 3>, std::optional<float>, int, bool,
                                 std::vector<std::array<float, 3>>, int, int>>();
      densitron::OutputSpec o;
      o.node = std::get<0>(t);
      o.loss = static_cast<densitron::Loss>(std::get<1>(t));
      o.loss_weight = std::get<2>(t);
      o.target_width = std::get<3>(t);
      o.loss_param = std::get<5>(t);
      o.loss_extra = std::get<6>(t);
      o.tail = std::get<10>(t);
      o.reduction = std::get<11>(t);
      o.mask_node = std::get<12>(t);  // (Keras's mask on the output, or -1)
      if (o.reduction < 0 || o.reduction > 2)
        throw py::value_error("reduction: 0 (over the batch), 1 (sum) or 2 (over the weights)");
      if (o.reduction != 0 && std::get<7>(t).has_value())
        throw py::value_error("a loss with ignore_class reduces over the batch");
      if (std::get<7>(t).has_value()) {
        const bool sparse = o.loss == densitron::Loss::kSparseCategoricalCrossentropy ||
                            o.loss == densitron::Loss::kSparseCategoricalCrossentropyLogits;
        if (!sparse || std::isnan(*std::get<7>(t)))
          throw py::value_error("ignore_class: a class id, for a sparse cross-entropy");
        o.ignore_class = *std::get<7>(t);
      }
      for (const py::handle& m : std::get<4>(t)) o.metrics.push_back(metric_spec(m));
      // loss_of >= 0: a loss (or metric) function's values for model output loss_of, after
      // the model's outputs: no targets of its own, and when `weighted` that output's sample
      // weights
      const int loss_of = std::get<8>(t);
      if (loss_of >= 0 &&
          (loss_of >= static_cast<int>(loss_of_.size()) || loss_of_[loss_of] >= 0))
        throw py::value_error("loss_of: a model output before it");
      if (loss_of < 0 && !loss_of_.empty() && loss_of_.back() >= 0)
        throw py::value_error("the model's outputs come before the loss functions' values");
      loss_of_.push_back(loss_of);
      weighted_.push_back(std::get<9>(t));
      target_widths_.push_back(o.target_width);
      specs.push_back(std::move(o));
    }
    densitron::OptimizerConfig c = optimizer_config(opt);
    graph_->compile(std::move(specs), c, std::move(trainable));
  }

  static densitron::OptimizerConfig optimizer_config(const py::dict& opt) {
    densitron::OptimizerConfig c;
    c.kind = static_cast<densitron::OptimizerKind>(opt["kind"].cast<int>());
    c.learning_rate = opt["learning_rate"].cast<float>();
    c.momentum = opt["momentum"].cast<float>();
    c.nesterov = opt["nesterov"].cast<bool>();
    c.rho = opt["rho"].cast<float>();
    c.centered = opt["centered"].cast<bool>();
    c.epsilon = opt["epsilon"].cast<float>();
    c.beta_1 = opt["beta_1"].cast<float>();
    c.beta_2 = opt["beta_2"].cast<float>();
    c.amsgrad = opt["amsgrad"].cast<bool>();
    if (opt.contains("initial_accumulator"))
      c.initial_accumulator = opt["initial_accumulator"].cast<float>();
    if (opt.contains("lr_power")) {  // Ftrl
      c.lr_power = opt["lr_power"].cast<float>();
      c.l1_strength = opt["l1_strength"].cast<float>();
      c.l2_strength = opt["l2_strength"].cast<float>();
      c.l2_shrinkage = opt["l2_shrinkage"].cast<float>();
      c.ftrl_beta = opt["ftrl_beta"].cast<float>();
    }
    c.weight_decay = opt["weight_decay"].cast<float>();
    if (opt.contains("no_decay")) c.no_decay = opt["no_decay"].cast<std::vector<int>>();
    c.clipnorm = opt["clipnorm"].cast<float>();
    c.clipvalue = opt["clipvalue"].cast<float>();
    c.global_clipnorm = opt["global_clipnorm"].cast<float>();
    if (opt.contains("schedule")) c.schedule = lr_schedule(opt["schedule"].cast<py::dict>());
    if (opt.contains("accumulation_steps"))
      c.accumulation_steps = opt["accumulation_steps"].cast<int64_t>();
    if (opt.contains("beta_2_decay")) {  // Adafactor
      c.beta_2_decay = opt["beta_2_decay"].cast<float>();
      c.epsilon_1 = opt["epsilon_1"].cast<float>();
      c.epsilon_2 = opt["epsilon_2"].cast<float>();
      c.clip_threshold = opt["clip_threshold"].cast<float>();
      c.relative_step = opt["relative_step"].cast<bool>();
      if (opt.contains("factor_dims"))
        c.factor_dims = opt["factor_dims"].cast<std::vector<int64_t>>();
    }
    if (opt.contains("muon_a")) {  // Muon
      c.muon_a = opt["muon_a"].cast<float>();
      c.muon_b = opt["muon_b"].cast<float>();
      c.muon_c = opt["muon_c"].cast<float>();
      c.ns_steps = opt["ns_steps"].cast<int>();
      c.rms_rate = opt["rms_rate"].cast<float>();
      c.adam_lr_ratio = opt["adam_lr_ratio"].cast<float>();
      c.adam_weight_decay = opt["adam_weight_decay"].cast<float>();
      c.factor_dims = opt["factor_dims"].cast<std::vector<int64_t>>();
      c.adam_c1 = opt["adam_c1"].cast<float>();
      c.adam_c2 = opt["adam_c2"].cast<float>();
      c.momentum_m1 = opt["momentum_m1"].cast<float>();
    }
    if (opt.contains("warmup_steps"))  // ScheduleFreeAdamW
      c.warmup_steps = opt["warmup_steps"].cast<int64_t>();
    if (opt.contains("loss_scale")) {  // LossScaleOptimizer
      c.loss_scale = opt["loss_scale"].cast<bool>();
      c.initial_scale = opt["initial_scale"].cast<float>();
      c.growth_steps = opt["growth_steps"].cast<int64_t>();
    }
    if (opt.contains("use_ema")) {
      c.use_ema = opt["use_ema"].cast<bool>();
      c.ema_momentum = opt["ema_momentum"].cast<float>();
      c.ema_overwrite_frequency = opt["ema_overwrite_frequency"].cast<int64_t>();
    }
    return c;
  }

  // A schedule's engine form (densitron.optimizers.schedules: `_engine_config`).
  static densitron::LrScheduleConfig lr_schedule(const py::dict& d) {
    densitron::LrScheduleConfig s;
    s.kind = static_cast<densitron::LrSchedule>(d["kind"].cast<int>());
    s.initial = d["initial"].cast<float>();
    s.decay_steps = d["decay_steps"].cast<float>();
    s.decay_rate = d["decay_rate"].cast<float>();
    s.end = d["end"].cast<float>();
    s.power = d["power"].cast<float>();
    s.alpha = d["alpha"].cast<float>();
    s.staircase = d["staircase"].cast<bool>();
    s.cycle = d["cycle"].cast<bool>();
    s.warmup = d["warmup"].cast<bool>();
    s.warmup_target = d["warmup_target"].cast<float>();
    s.warmup_steps = d["warmup_steps"].cast<float>();
    s.t_mul = d["t_mul"].cast<float>();
    s.m_mul = d["m_mul"].cast<float>();
    s.boundaries = d["boundaries"].cast<std::vector<int64_t>>();
    s.values = d["values"].cast<std::vector<float>>();
    if (s.kind == densitron::LrSchedule::kPiecewiseConstantDecay &&
        s.values.size() != s.boundaries.size() + 1)
      throw py::value_error("a piecewise schedule needs one value more than boundaries");
    return s;
  }

  // The model inputs of a run, checked: one dense or sparse array per input node.
  densitron::DataRefs input_refs(const py::list& xs) const {
    densitron::DataRefs d;
    d.rows = rows_of(xs);
    const auto& in = graph_->input_nodes();
    if (xs.size() != in.size()) throw py::value_error("wrong number of input arrays");
    for (size_t k = 0; k < in.size(); ++k) add_input(&d, xs[k], graph_->node_width(in[k]));
    return d;
  }

  // input_refs, then the targets and sample weights (None: unweighted), checked.
  densitron::DataRefs data_refs(const py::list& xs, const py::list& ys,
                                const py::object& ws = py::none()) const {
    densitron::DataRefs d = input_refs(xs);
    static const float kNoTargets = 0.0f;  // a loss function's values take none
    size_t model_outputs = 0;
    while (model_outputs < loss_of_.size() && loss_of_[model_outputs] < 0) ++model_outputs;
    if (ys.size() != model_outputs) throw py::value_error("wrong number of targets");
    for (size_t k = 0; k < model_outputs; ++k)
      d.y.push_back(checked_rows(ys[k], target_widths_[k], d.rows, "y"));
    for (size_t k = model_outputs; k < loss_of_.size(); ++k) d.y.push_back(&kNoTargets);
    if (!ws.is_none()) {
      const py::list wl = ws.cast<py::list>();
      if (wl.size() != model_outputs)
        throw py::value_error("one sample-weight entry (or None) per output is required");
      // (a row's weights: one, or one per loss row of the output, which the engine checks)
      for (const py::handle& h : wl) {
        int64_t width = 1;
        if (!h.is_none() && d.rows > 0 && py::isinstance<py::array>(h)) {
          const int64_t size = static_cast<int64_t>(py::reinterpret_borrow<py::array>(h).size());
          if (size > 0 && size % d.rows == 0) width = size / d.rows;
        }
        d.w.push_back(h.is_none() ? nullptr : checked_rows(h, width, d.rows, "sample_weight"));
        d.w_width.push_back(width);
      }
      for (size_t k = model_outputs; k < loss_of_.size(); ++k) {
        d.w.push_back(weighted_[k] ? d.w[loss_of_[k]] : nullptr);
        d.w_width.push_back(weighted_[k] ? d.w_width[loss_of_[k]] : 1);
      }
    }
    return d;
  }

  static py::tuple totals(const densitron::RunTotals& t) {
    return py::make_tuple(t.rows, t.loss_sum, t.output_loss_sums, t.metric_sums, t.weight_sums);
  }

  // The totals of a run that checks the rows it gathers, and last the (input index, row) of a
  // NaN that stopped it, or None.
  static py::tuple totals_and_nan(const densitron::RunTotals& t) {
    py::object nan = py::none();
    if (t.nan_row >= 0) nan = py::make_tuple(t.nan_input, t.nan_row);
    return py::make_tuple(t.rows, t.loss_sum, t.output_loss_sums, t.metric_sums, t.weight_sums,
                          nan);
  }

  void set_stop_on_nonfinite_loss(bool stop) { graph_->set_stop_on_nonfinite_loss(stop); }
  int64_t last_batches_run() const { return graph_->last_batches_run(); }
  int last_run_threads() const { return graph_->last_run_threads(); }

  py::tuple train_batches(const py::list& xs, const py::list& ys, const py::object& perm,
                          int64_t batch_size, int64_t first_batch, int64_t num_batches,
                          const py::object& ws, bool continue_totals) {
    if (!graph_->compiled()) throw py::value_error("the graph is not compiled");
    if (batch_size < 1 || first_batch < 0 || num_batches < 0)
      throw py::value_error("batch_size must be >= 1 and batch indices >= 0");
    densitron::DataRefs d = data_refs(xs, ys, ws);
    const int64_t* p = nullptr;
    py::array_t<int64_t, py::array::c_style> perm_arr;
    if (!perm.is_none()) {
      perm_arr = py::reinterpret_borrow<py::array_t<int64_t, py::array::c_style>>(perm);
      if (!py::isinstance<py::array_t<int64_t, py::array::c_style>>(perm) ||
          static_cast<int64_t>(perm_arr.size()) != d.rows)
        throw py::value_error("perm must be a C-contiguous int64 array with one entry per row");
      p = perm_arr.data();
      // (rows of the batches asked for, without overflow for any batch size)
      const int64_t size = densitron::clamped_batch(batch_size, d.rows);
      const int64_t lo = densitron::batch_row(first_batch, size, d.rows);
      const int64_t hi = densitron::batch_row(first_batch + std::min(num_batches, d.rows + 1),
                                              size, d.rows);
      for (int64_t i = lo; i < hi; ++i)
        if (p[i] < 0 || p[i] >= d.rows) throw py::value_error("perm entry out of range");
    }
    densitron::RunTotals t;
    {
      py::gil_scoped_release release;
      t = graph_->train_batches(d, p, batch_size, first_batch, num_batches, continue_totals);
    }
    return totals_and_nan(t);
  }

  py::tuple evaluate(const py::list& xs, const py::list& ys, int64_t batch_size,
                     const py::object& ws, bool check_nan) {
    if (!graph_->compiled()) throw py::value_error("the graph is not compiled");
    if (batch_size < 1) throw py::value_error("batch_size must be >= 1");
    densitron::DataRefs d = data_refs(xs, ys, ws);
    densitron::RunTotals t;
    {
      py::gil_scoped_release release;
      t = graph_->evaluate(d, batch_size, check_nan);
    }
    return totals_and_nan(t);
  }

  py::tuple gradients(const py::list& xs, const py::list& ys) {
    if (!graph_->compiled()) throw py::value_error("the graph is not compiled");
    densitron::DataRefs d = data_refs(xs, ys);
    std::vector<float> flat;
    densitron::RunTotals t;
    {
      py::gil_scoped_release release;
      t = graph_->gradients(d, &flat);
    }
    py::list grads;
    size_t offset = 0;
    for (const py::handle& h : keep_alive_) {
      auto param = py::reinterpret_borrow<py::array>(h);
      std::vector<py::ssize_t> shape(param.shape(), param.shape() + param.ndim());
      FloatArray g(shape);
      std::copy(flat.begin() + offset, flat.begin() + offset + param.size(), g.mutable_data());
      offset += param.size();
      grads.append(g);
    }
    return py::make_tuple(totals(t), grads);
  }

  py::list predict(const py::list& xs, int64_t batch_size, bool training) {
    if (batch_size < 1) throw py::value_error("batch_size must be >= 1");
    const densitron::DataRefs d = input_refs(xs);
    const int64_t rows = d.rows;
    py::list result;
    std::vector<float*> out;
    for (int node : graph_->output_nodes()) {
      FloatArray a({static_cast<py::ssize_t>(rows),
                    static_cast<py::ssize_t>(graph_->node_width(node))});
      out.push_back(a.mutable_data());
      result.append(a);
    }
    {
      py::gil_scoped_release release;
      graph_->predict(d, batch_size, out, training);
    }
    return result;
  }

  Graph& graph() { return *graph_; }

 private:
  std::unique_ptr<Graph> graph_;
  py::list keep_alive_;
  std::vector<int64_t> target_widths_;
  std::vector<int> loss_of_;      // per output spec: see compile
  std::vector<bool> weighted_;    // per output spec: a loss or metric function's weighting
};

}  // namespace

// One optimizer step on a flat float32 buffer, for tests against Keras's formulas.
void optimizer_update(const py::dict& opt, int64_t step, const py::object& w_obj,
                      const py::object& g_obj, const py::list& slots) {
  if (!py::isinstance<FloatArray>(w_obj) || !py::isinstance<FloatArray>(g_obj))
    throw py::type_error("w and g must be C-contiguous float32 arrays");
  auto w = py::reinterpret_borrow<FloatArray>(w_obj);
  auto g = py::reinterpret_borrow<FloatArray>(g_obj);
  densitron::OptimizerConfig c = PyGraph::optimizer_config(opt);
  const int count = densitron::optimizer_slot_count(c);
  if (static_cast<int>(slots.size()) != count)
    throw py::value_error("expected " + std::to_string(count) + " slot arrays. Received: " +
                          std::to_string(slots.size()));
  if (g.size() != w.size() || !w.writeable())
    throw py::value_error("w must be writeable and g the same size as w");
  std::vector<float*> ptrs;
  for (const py::handle& h : slots) {
    if (!py::isinstance<FloatArray>(h)) throw py::type_error("slots must be float32 arrays");
    auto a = py::reinterpret_borrow<FloatArray>(h);
    if (a.size() != w.size() || !a.writeable())
      throw py::value_error("slots must be writeable and the same size as w");
    ptrs.push_back(a.mutable_data());
  }
  if (step < 1) throw py::value_error("step starts at 1");
  densitron::optimizer_update(c, step, w.mutable_data(), g.data(), ptrs.data(), w.size());
}

// A metric's sums (metric_sums) over y_pred's rows for a standalone metric object's
// update_state, or with per_row each row's value (a metric function's per-sample values):
// y_true rows × cols, or rows × 1 class ids for the sparse kinds (checked here: integers in
// [0, cols)); sample_weight None or one value a row. (Python shapes the arrays.)
py::array_t<double> metric_sums_on(const py::tuple& spec_tuple, const FloatArray& y_true,
                                   const FloatArray& y_pred, const py::object& sample_weight,
                                   bool per_row) {
  const densitron::MetricSpec spec = metric_spec(spec_tuple);
  if (y_pred.ndim() != 2 || y_true.ndim() != 2 || y_true.shape(0) != y_pred.shape(0) ||
      y_pred.shape(0) == 0)
    throw py::value_error("`y_true` and `y_pred` must be 2-D with matching rows. Received: "
                          "shapes (" + std::to_string(y_true.shape(0)) + ", ...) and (" +
                          std::to_string(y_pred.shape(0)) + ", ...)");
  const int64_t rows = y_pred.shape(0), cols = y_pred.shape(1);
  const bool sparse = spec.sparse_targets();
  if (y_true.shape(1) != (sparse ? 1 : cols))
    throw py::value_error("`y_true` must have " + std::to_string(sparse ? 1 : cols) +
                          " columns. Received: " + std::to_string(y_true.shape(1)));
  if (spec.iou() && spec.top_k < 1)
    throw py::value_error("`num_classes` must be at least 1. Received: " +
                          std::to_string(spec.top_k));
  if (sparse && !spec.iou()) {  // (the IoUs leave ids outside their classes out)
    for (int64_t r = 0; r < rows; ++r) {
      const float id = y_true.data()[r];
      if (spec.ignores_a_class() && id == spec.threshold) continue;  // (the ignored class)
      if (!(id >= 0.0f && id < static_cast<float>(cols)) ||
          id != static_cast<float>(static_cast<int64_t>(id)))
        throw py::value_error("Class ids in `y_true` must be integers in [0, " +
                              std::to_string(cols) + "). Received: " + std::to_string(id));
    }
  }
  if (spec.buckets() && !spec.bucket_count_valid())
    throw py::value_error("`num_thresholds` must be 2 to 1e6 buckets. Received: " +
                          std::to_string(spec.threshold));
  if (spec.class_id >= cols || spec.top_k < 0)
    throw py::value_error("`class_id` must be a class of y_pred's " + std::to_string(cols) +
                          ". Received: class_id=" + std::to_string(spec.class_id));
  FloatArray w;
  if (!sample_weight.is_none()) {
    w = sample_weight.cast<FloatArray>();
    if (w.ndim() != 1 || w.shape(0) != rows)
      throw py::value_error("`sample_weight` must hold one value a row. Received: " +
                            std::to_string(w.size()) + " values for " + std::to_string(rows) +
                            " rows");
  }
  if (per_row && spec.sums(cols) != 1)
    throw py::value_error("per-row values are for a metric with one sum a row");
  py::array_t<double> out(per_row ? rows : spec.sums(cols));
  double* o = out.mutable_data();
  const float* wp = sample_weight.is_none() ? nullptr : w.data();
  const int64_t ycols = y_true.shape(1);
  py::gil_scoped_release release;
  const bool hinge_loss = !spec.is_accuracy && (spec.loss == densitron::Loss::kHinge ||
                                                spec.loss == densitron::Loss::kSquaredHinge);
  const float hinge = hinge_loss ? densitron::hinge_targets(y_true.data(), rows * cols) : 0.0f;
  if (per_row) {
    for (int64_t r = 0; r < rows; ++r)
      densitron::metric_sums(spec, y_pred.data() + r * cols, y_true.data() + r * ycols, 1, cols,
                             wp ? wp + r : nullptr, 1, hinge, o + r);
  } else {
    densitron::metric_sums(spec, y_pred.data(), y_true.data(), rows, cols, wp, 1, hinge, o);
  }
  return out;
}

// The DenseType of a C-contiguous 2-D array of one of its types; a TypeError otherwise.
int dense_type(const py::array& x) {
  if (x.ndim() != 2 || !(x.flags() & py::array::c_style))
    throw py::type_error("a C-contiguous 2-D array is required. Received: ndim=" +
                         std::to_string(x.ndim()));
  if (py::isinstance<py::array_t<float>>(x)) return densitron::kDenseFloat32;
  if (py::isinstance<py::array_t<double>>(x)) return densitron::kDenseFloat64;
  if (py::isinstance<py::array_t<int32_t>>(x)) return densitron::kDenseInt32;
  if (py::isinstance<py::array_t<int64_t>>(x)) return densitron::kDenseInt64;
  if (py::isinstance<py::array_t<uint8_t>>(x)) return densitron::kDenseUint8;
  throw py::type_error("float32, float64, int32, int64 or uint8 values are required. Received: " +
                       std::string(py::str(x.dtype())));
}

// A NumPy array owning v's storage (no copy).
template <typename T>
py::array_t<T> owned_array(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(static_cast<py::ssize_t>(heap->size()), heap->data(), owner);
}

void check_slot(PyGraph& g, int s, int p) {
  if (s < 0 || s >= g.graph().slot_count() || p < 0 || p >= g.graph().num_params())
    throw py::index_error("no such optimizer slot or parameter. Received: slot " +
                          std::to_string(s) + ", parameter " + std::to_string(p));
}

void bind_graph(py::module_& m) {
  m.def(
      "_first_nan",
      [](const py::object& obj) -> int64_t {
        if (!py::isinstance<FloatArray>(obj))
          throw py::type_error("_first_nan takes a C-contiguous float32 array");
        auto a = py::reinterpret_borrow<FloatArray>(obj);
        const float* p = a.data();
        const int64_t n = static_cast<int64_t>(a.size());
        py::gil_scoped_release release;
        return densitron::first_nan(p, n);
      },
      py::arg("array"), "Flat index of the first NaN in a float32 array, or -1.");
  m.def(
      "_any_bad_id",
      [](const py::object& obj, double limit) -> bool {
        if (!py::isinstance<FloatArray>(obj))
          throw py::type_error("_any_bad_id takes a C-contiguous float32 array");
        auto a = py::reinterpret_borrow<FloatArray>(obj);
        return densitron::any_bad_id(a.data(), static_cast<int64_t>(a.size()),
                                     static_cast<float>(limit));
      },
      py::arg("array"), py::arg("limit"),
      "Whether any value of a float32 array is not an integer in [0, limit).");
  m.def(
      "_dense_to_csr",
      [](const py::array& x) {
        const int type = dense_type(x);
        const int64_t rows = x.shape(0), cols = x.shape(1);
        densitron::CsrMatrix m;
        {
          py::gil_scoped_release release;
          m = densitron::dense_to_csr(x.data(), type, rows, cols);
        }
        return py::make_tuple(owned_array(std::move(m.indptr)), owned_array(std::move(m.indices)),
                              owned_array(std::move(m.data)), m.first_nan_row);
      },
      py::arg("x"),
      "A C-contiguous 2-D float32, float64, int32, int64 or uint8 array as CSR: (indptr int64, "
      "indices int32, data float32, first row storing a NaN or -1).");
  m.def(
      "_stored_fraction",
      [](const py::array& x, int64_t sample) {
        const int type = dense_type(x);
        return densitron::stored_fraction(x.data(), type, x.shape(0), x.shape(1), sample);
      },
      py::arg("x"), py::arg("sample"),
      "The fraction of non-zero values among `sample` rows spread evenly over a 2-D array "
      "(the types of _dense_to_csr).");
  m.def(
      "_permutation",
      [](int64_t n, uint64_t seed) {
        if (n < 0) throw py::value_error("n must be >= 0. Received: n=" + std::to_string(n));
        py::array_t<int64_t> out(n);
        int64_t* p = out.mutable_data();
        py::gil_scoped_release release;
        densitron::random_permutation(p, n, seed);
        return out;
      },
      py::arg("n"), py::arg("seed"), "A random permutation of range(n) (an epoch's shuffle).");
  m.def(
      "_metric_sums",
      [](const py::tuple& spec, int64_t columns) { return metric_spec(spec).sums(columns); },
      py::arg("spec"), py::arg("columns"),
      "How many sums the engine keeps for a metric spec on an output of `columns` columns.");
  m.def("_metric_sums_on", &metric_sums_on, py::arg("spec"), py::arg("y_true"),
        py::arg("y_pred"), py::arg("sample_weight"), py::arg("per_row") = false,
        "A metric's engine sums over the rows of y_pred (a metric object's update_state), "
        "or with per_row its value for each row (Keras's metric functions).");
  m.def("_optimizer_update", &optimizer_update, py::arg("config"), py::arg("step"), py::arg("w"),
        py::arg("g"), py::arg("slots"));
  m.def(
      "_scheduled_learning_rate",
      [](const py::dict& schedule, int64_t iterations) {
        return densitron::scheduled_learning_rate(PyGraph::lr_schedule(schedule), iterations);
      },
      py::arg("schedule"), py::arg("iterations"));
  m.def("_nadam_u_product", [](float beta_1, int64_t steps) {
    return densitron::nadam_u_product(beta_1, steps);
  }, py::arg("beta_1"), py::arg("steps"));
  m.def("_optimizer_slot_count", [](const py::dict& opt) {
    return densitron::optimizer_slot_count(PyGraph::optimizer_config(opt));
  });
  py::class_<PyGraph>(m, "Graph")
      .def(py::init<const py::list&, const py::list&, std::vector<int>, std::vector<int>>(),
           py::arg("nodes"), py::arg("params"), py::arg("inputs"), py::arg("outputs"))
      .def("compile", &PyGraph::compile, py::arg("outputs"), py::arg("optimizer"),
           py::arg("trainable"))
      .def_property("stop_on_nonfinite_loss", nullptr, &PyGraph::set_stop_on_nonfinite_loss)
      .def_property_readonly("last_batches_run", &PyGraph::last_batches_run)
      .def_property_readonly("last_run_threads", &PyGraph::last_run_threads)
      .def("train_batches", &PyGraph::train_batches, py::arg("xs"), py::arg("ys"),
           py::arg("perm"), py::arg("batch_size"), py::arg("first_batch"),
           py::arg("num_batches"), py::arg("sample_weights") = py::none(),
           py::arg("continue_totals") = false)
      .def("evaluate", &PyGraph::evaluate, py::arg("xs"), py::arg("ys"), py::arg("batch_size"),
           py::arg("sample_weights") = py::none(), py::arg("check_nan") = false)
      .def("gradients", &PyGraph::gradients, py::arg("xs"), py::arg("ys"))
      .def("predict", &PyGraph::predict, py::arg("xs"), py::arg("batch_size"),
           py::arg("training") = false)
      .def("set_profiling", [](PyGraph& g, bool on) { g.graph().set_profiling(on); })
      .def("reset_profile", [](PyGraph& g) { g.graph().reset_profile(); })
      .def(
          "reads_sparse_in_place",
          [](PyGraph& g, int64_t k, bool training) {
            if (k < 0 || k >= static_cast<int64_t>(g.graph().num_inputs()))
              throw py::index_error("no such input. Received: " + std::to_string(k));
            return g.graph().reads_sparse_in_place(static_cast<size_t>(k), training);
          },
          py::arg("k"), py::arg("training"),
          "Whether sparse input k is read in place by Dense layers (not written out densely).")
      .def("profile",
           [](PyGraph& g) {
             const std::vector<double> p = g.graph().profile();
             py::dict d;
             d["gather"] = p[Graph::kProfGather];
             d["gemm"] = p[Graph::kProfGemm];
             d["elementwise"] = p[Graph::kProfElementwise];
             d["loss"] = p[Graph::kProfLoss];
             d["optimizer"] = p[Graph::kProfOptimizer];
             d["wait"] = p[Graph::kProfWait];
             d["run"] = p[Graph::kProfRun];
             d["barrier_waits"] = g.graph().barrier_waits();
             d["barriers"] = g.graph().barrier_count();
             return d;
           })
      .def(
          "get_slot",
          [](PyGraph& g, int s, int p) {
            check_slot(g, s, p);
            const int64_t n = g.graph().param_size(p);
            FloatArray out(n);
            std::copy(g.graph().slot(s, p), g.graph().slot(s, p) + n, out.mutable_data());
            return out;
          },
          py::arg("slot"), py::arg("param"), "A copy of the optimizer's slot of a parameter.")
      .def(
          "set_slot",
          [](PyGraph& g, int s, int p, const FloatArray& values) {
            check_slot(g, s, p);
            if (values.size() != g.graph().param_size(p))
              throw py::value_error("a slot holds one value per parameter element. Received: " +
                                    std::to_string(values.size()) + " values");
            std::copy(values.data(), values.data() + values.size(), g.graph().slot(s, p));
          },
          py::arg("slot"), py::arg("param"), py::arg("values"))
      .def_property_readonly("slot_count", [](PyGraph& g) { return g.graph().slot_count(); })
      .def(
          "share_optimizer_state",
          [](PyGraph& g, PyGraph& other) {
            const std::string why = g.graph().slots_mismatch(other.graph());
            if (!why.empty()) throw py::value_error("share_optimizer_state: " + why);
            g.graph().share_slots(other.graph());
          },
          py::arg("other"),
          "Makes this graph's optimizer slots other's (no copy): the graphs of one model at "
          "other data shapes, compiled with the same optimizer. A compile ends the sharing.")
      .def_property_readonly(
          "optimizer_state_id",
          [](PyGraph& g) { return reinterpret_cast<uintptr_t>(g.graph().slots_buffer()); },
          "Identifies the optimizer slot buffer: graphs sharing one have the same id.")
      .def_property(
          "learning_rate", [](PyGraph& g) { return g.graph().learning_rate(); },
          [](PyGraph& g, float lr) { g.graph().set_learning_rate(lr); })
      .def(
          "set_lr_table",
          [](PyGraph& g, int64_t first, std::vector<float> values) {
            if (values.empty()) throw py::value_error("the rate table needs a value");
            g.graph().set_lr_table(first, std::move(values));
          },
          py::arg("first"), py::arg("values"))
      .def_property(
          "iterations", [](PyGraph& g) { return g.graph().iterations(); },
          [](PyGraph& g, int64_t it) { g.graph().set_iterations(it); })
      .def_property(
          "loss_scale", [](PyGraph& g) { return g.graph().loss_scale(); },
          [](PyGraph& g, float s) { g.graph().set_loss_scale(s); })
      .def_property(
          "scale_counter", [](PyGraph& g) { return g.graph().scale_counter(); },
          [](PyGraph& g, int64_t c) { g.graph().set_scale_counter(c); });
}
