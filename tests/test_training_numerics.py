"""One training step of the engine against the float64 NumPy reference: forward, loss,
gradients and the optimizer update, for every loss and activation."""

import numpy as np
import pytest
from reference import (adadelta, adagrad, adam, adamax, ftrl, lamb, lion, mlp_step, nadam,
                       rel_err, rmsprop, sgd)

import densitron
from densitron import layers, optimizers
from densitron.models import Model

LOSS_SETUPS = {
    "categorical_crossentropy": ("softmax", 5),
    "sparse_categorical_crossentropy": ("softmax", 5),
    "binary_crossentropy": ("sigmoid", 3),
    "mean_squared_error": ("linear", 3),
    "mean_absolute_error": ("tanh", 3),
    "mean_absolute_percentage_error": ("linear", 3),
    "mean_squared_logarithmic_error": ("sigmoid", 3),
    "cosine_similarity": ("linear", 4),
    "huber": ("linear", 3),
    "log_cosh": ("tanh", 3),
    "hinge": ("tanh", 3),
    "squared_hinge": ("linear", 3),
    "categorical_hinge": ("linear", 4),
    "kl_divergence": ("softmax", 4),
    "poisson": ("sigmoid", 3),
}


def make_targets(loss, rng, rows, width):
    if loss == "categorical_crossentropy":
        return np.eye(width, dtype=np.float32)[rng.integers(0, width, rows)]
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, width, rows)
    if loss in ("binary_crossentropy", "hinge"):  # hinge: {0, 1} read as {-1, 1}
        return rng.integers(0, 2, (rows, width)).astype(np.float32)
    if loss == "squared_hinge":
        return (2 * rng.integers(0, 2, (rows, width)) - 1).astype(np.float32)
    if loss == "categorical_hinge":
        return np.eye(width, dtype=np.float32)[rng.integers(0, width, rows)]
    if loss == "kl_divergence":
        return rng.dirichlet(np.ones(width), rows).astype(np.float32)
    if loss == "mean_absolute_percentage_error":
        # |y| of 20-60: gradients of 100/|y| are then of the other losses' size (with |y| near
        # 1 the float32 rounding of the 100x larger gradients shows in RMSprop's first step)
        return rng.uniform(20, 60, (rows, width)).astype(np.float32)
    if loss in ("mean_squared_logarithmic_error", "poisson"):
        return rng.uniform(0, 3, (rows, width)).astype(np.float32)
    return rng.normal(size=(rows, width)).astype(np.float32)


def build_mlp(hidden_acts, out_act, widths):
    inp = layers.Input(shape=(widths[0],))
    x = inp
    for act, w in zip(hidden_acts + [out_act], widths[1:]):
        x = layers.Dense(w, activation=act, bias_initializer="random_normal")(x)
    return Model(inp, x)


@pytest.mark.parametrize("loss", sorted(LOSS_SETUPS))
# 600: the first kernel is cut into row blocks; 2100: into blocks longer than the GEMM's k block;
# 8200: too large to cut (8200×64 values, over kMaxCutKernel)
@pytest.mark.parametrize("in_width", [13, 600, 2100, 8200])
def test_one_step_matches_numpy(loss, in_width):
    out_act, out_w = LOSS_SETUPS[loss]
    rng = np.random.default_rng(7)
    hidden = ["tanh", "relu"]
    widths = [in_width, 64, 9, out_w]
    model = build_mlp(hidden, out_act, widths)
    x = rng.normal(size=(11, in_width)).astype(np.float32)
    y = make_targets(loss, rng, 11, out_w)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.01), loss=loss)
    w0 = model.get_weights()

    p_ref, loss_ref, grads_ref = mlp_step(w0, hidden + [out_act], x, y, loss)
    assert rel_err(model.predict(x, verbose=0), p_ref) < 1e-5
    assert abs(model.evaluate(x, y, verbose=0) - loss_ref) / abs(loss_ref) < 1e-5

    grads = model._compute_gradients(x, y)
    for g, gr in zip(grads, grads_ref):
        assert g.shape == gr.shape
        assert rel_err(g, gr) < 1e-5

    model.train_on_batch(x, y)
    for w_new, w_old, g in zip(model.get_weights(), w0, grads_ref):
        expected = rmsprop(w_old.astype(np.float64), g, {}, lr=0.01)
        # RMSprop's first step is lr·g / (sqrt(1 - rho)·|g| + eps): where |g| is small it
        # magnifies the float32 rounding of g. Over 30 initial seeds the 600-wide MSE case
        # reaches 0.6-3.5e-5 here, with either row-block cut of its first kernel.
        assert rel_err(w_new, expected) < 6e-5
        # the step itself, not just the weights, agrees
        assert rel_err(w_new - w_old, expected - w_old) < 2e-3


@pytest.mark.parametrize("loss,smoothed", [
    ("categorical_crossentropy", lambda y, s: y * (1 - s) + s / y.shape[1]),
    ("binary_crossentropy", lambda y, s: y * (1 - s) + s / 2),
])
def test_label_smoothing_step_matches_numpy_on_smoothed_targets(loss, smoothed):
    # Keras's label_smoothing: the step (loss, gradients through the fused softmax or sigmoid,
    # update) is the NumPy step on the smoothed targets; the model is fed the targets as given.
    out_act, out_w = LOSS_SETUPS[loss]
    rng = np.random.default_rng(14)
    model = build_mlp(["relu"], out_act, [20, 16, out_w])
    x = rng.normal(size=(33, 20)).astype(np.float32)
    y = make_targets(loss, rng, 33, out_w)
    cls = {"categorical_crossentropy": densitron.losses.CategoricalCrossentropy,
           "binary_crossentropy": densitron.losses.BinaryCrossentropy}[loss]
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.01),
                  loss=cls(label_smoothing=0.2))
    w0 = model.get_weights()
    _, loss_ref, grads = mlp_step(w0, ["relu", out_act], x, smoothed(y.astype(np.float64), 0.2),
                                  loss)
    assert abs(model.evaluate(x, y, verbose=0) - loss_ref) / loss_ref < 1e-5
    assert abs(model.train_on_batch(x, y) - loss_ref) / loss_ref < 1e-5
    for got, w, g in zip(model.get_weights(), w0, grads):
        assert rel_err(got, rmsprop(w.astype(np.float64), g, {}, lr=0.01)) < 6e-5


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden", [["sigmoid", "relu", "tanh"], ["relu", "tanh", "sigmoid"]])
def test_activation_derivative_in_the_input_gradient_gemm(hidden, threads):
    # Each hidden Dense is read by one Dense only, whose input-gradient GEMM applies the
    # hidden activation's derivative as it writes; the 300-wide one feeds a kernel cut into
    # row blocks. Batch 64 splits the products across threads.
    rng = np.random.default_rng(8)
    densitron.set_num_threads(threads)
    model = build_mlp(hidden, "softmax", [7, 300, 64, 48, 5])
    x = rng.normal(size=(64, 7)).astype(np.float32)
    y = make_targets("categorical_crossentropy", rng, 64, 5)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    _, _, grads_ref = mlp_step(model.get_weights(), hidden + ["softmax"], x, y,
                               "categorical_crossentropy")
    for g, gr in zip(model._compute_gradients(x, y), grads_ref):
        assert rel_err(g, gr) < 1e-5


def max_norm(w, limit):
    """Keras's MaxNorm on a kernel: each column (axis 0) scaled to a norm of at most limit."""
    norms = np.sqrt((w ** 2).sum(axis=0, keepdims=True))
    assert (norms > limit).any()  # the constraint acts
    return w * np.clip(norms, 0, limit) / (norms + 1e-7)


def norm_constraint(w, c):
    """Keras's norm constraints (MaxNorm, MinMaxNorm, UnitNorm) in float64."""
    norms = np.sqrt((w ** 2).sum(axis=c.axis, keepdims=True))
    if isinstance(c, densitron.constraints.MaxNorm):
        desired = np.clip(norms, 0, c.max_value)
    elif isinstance(c, densitron.constraints.MinMaxNorm):
        desired = c.rate * np.clip(norms, c.min_value, c.max_value) + (1 - c.rate) * norms
    else:
        desired = 1.0
    return w * desired / (norms + 1e-7)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("make", [
    lambda: densitron.constraints.MaxNorm(0.3), lambda: densitron.constraints.MaxNorm(0.2, axis=1),
    lambda: densitron.constraints.MinMaxNorm(0.5, 0.6, rate=0.7),
    lambda: densitron.constraints.MinMaxNorm(0.1, 0.15, axis=1),
    lambda: densitron.constraints.UnitNorm(), lambda: densitron.constraints.UnitNorm(axis=1),
    lambda: densitron.constraints.NonNeg()])
def test_constraints_match_keras_formulas_on_wide_kernels(make, threads):
    # 600 columns: on two threads 300 each, walked in chunks of 256 and a tail; a bias vector
    # with MaxNorm is one norm over all its values.
    rng = np.random.default_rng(5)
    densitron.set_num_threads(threads)
    c = make()
    inp = layers.Input(shape=(40,))
    out = layers.Dense(600, kernel_constraint=c, bias_initializer="ones",
                       bias_constraint=densitron.constraints.MaxNorm(0.05))(inp)
    model = Model(inp, out)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss="mse")
    x = rng.normal(size=(64, 40)).astype(np.float32)
    y = rng.normal(size=(64, 600)).astype(np.float32)
    w0 = [w.astype(np.float64) for w in model.get_weights()]
    grads = [g.astype(np.float64) for g in model._compute_gradients(x, y)]
    model.train_on_batch(x, y)
    k, b = (w - 0.5 * g for w, g in zip(w0, grads))
    k = np.maximum(k, 0) if isinstance(c, densitron.constraints.NonNeg) else norm_constraint(k, c)
    b = norm_constraint(b, densitron.constraints.MaxNorm(0.05))
    got_k, got_b = model.get_weights()
    assert rel_err(got_k, k) < 1e-5 and rel_err(got_b, b) < 1e-5


@pytest.mark.parametrize("rows", [48, 300])
@pytest.mark.parametrize("threads", [1, 2])
def test_cut_kernel_updated_block_by_block_with_regularizer_and_constraint(threads, rows):
    # A 600-wide input cuts the first kernel into row blocks; each block's optimizer step
    # (with its L2 term) runs on the block's rows as the gradient GEMM finishes them, then
    # max_norm applies. 300 rows exceed the GEMM's k block: the rows come from C, not from the
    # GEMM's small buffer.
    rng = np.random.default_rng(9)
    densitron.set_num_threads(threads)
    inp = layers.Input(shape=(600,))
    h = layers.Dense(64, activation="tanh", kernel_regularizer=densitron.regularizers.L2(0.01),
                     kernel_constraint=densitron.constraints.MaxNorm(0.5))(inp)
    model = Model(inp, layers.Dense(5, activation="softmax")(h))
    x = rng.normal(size=(rows, 600)).astype(np.float32)
    y = make_targets("categorical_crossentropy", rng, rows, 5)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.01),
                  loss="categorical_crossentropy")
    w0 = model.get_weights()
    _, loss_ref, grads = mlp_step(w0, ["tanh", "softmax"], x, y, "categorical_crossentropy")
    k0 = w0[0].astype(np.float64)
    grads[0] = grads[0] + 2 * 0.01 * k0
    loss_ref += 0.01 * (k0 ** 2).sum()
    assert abs(model.train_on_batch(x, y) - loss_ref) / loss_ref < 1e-5
    expected = [rmsprop(w.astype(np.float64), g, {}, lr=0.01) for w, g in zip(w0, grads)]
    expected[0] = max_norm(expected[0], 0.5)
    for got, want in zip(model.get_weights(), expected):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("rows", [40, 300])
@pytest.mark.parametrize("threads", [1, 2])
def test_hidden_kernels_updated_in_backward_with_regularizers_and_constraint(threads, rows):
    # Kernels too narrow to cut but large enough to share between the threads' updates (the
    # 64x64 one; the 64x40 one too on one thread), each written by one Dense, take their
    # optimizer step in the backward, after the barrier that ends their input gradient (the
    # product reading the kernel), a few rows at a time as their gradient GEMM finishes them;
    # their L1/L2 terms are added there, then max_norm applies. 300 rows exceed the GEMM's k
    # block, so the rows come from C rather than from the GEMM's small buffer.
    rng = np.random.default_rng(11)
    densitron.set_num_threads(threads)
    reg = densitron.regularizers
    inp = layers.Input(shape=(24,))
    h = layers.Dense(64, activation="relu")(inp)
    h = layers.Dense(64, activation="tanh", kernel_regularizer=reg.L2(0.01),
                     kernel_constraint=densitron.constraints.MaxNorm(0.5))(h)
    h = layers.Dense(40, activation="relu", kernel_regularizer=reg.L1(0.001))(h)
    model = Model(inp, layers.Dense(5, activation="softmax")(h))
    x = rng.normal(size=(rows, 24)).astype(np.float32)
    y = make_targets("categorical_crossentropy", rng, rows, 5)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.01, momentum=0.5),
                  loss="categorical_crossentropy")
    w0 = model.get_weights()
    acts = ["relu", "tanh", "relu", "softmax"]
    _, loss_ref, grads = mlp_step(w0, acts, x, y, "categorical_crossentropy")
    k1, k2 = w0[2].astype(np.float64), w0[4].astype(np.float64)
    grads[2] = grads[2] + 2 * 0.01 * k1
    grads[4] = grads[4] + 0.001 * np.sign(k2)
    loss_ref += 0.01 * (k1 ** 2).sum() + 0.001 * np.abs(k2).sum()
    assert abs(model.train_on_batch(x, y) - loss_ref) / loss_ref < 1e-5
    expected = [rmsprop(w.astype(np.float64), g, {}, lr=0.01, momentum=0.5)
                for w, g in zip(w0, grads)]
    expected[2] = max_norm(expected[2], 0.5)
    for got, want in zip(model.get_weights(), expected):
        assert rel_err(got, want) < 6e-5


@pytest.mark.parametrize("threads", [1, 2])
def test_rank3_dense_kernels_updated_in_backward(threads):
    # Dense over the last axis of (batch, 4, 64): the kernel gradient sums over batch·4 rows,
    # and the deferred update (64×64 kernels, large enough) runs on them. MSE averages over the
    # last axis, then over the rest, so the step equals the 2-D one on the flattened rows.
    rng = np.random.default_rng(12)
    densitron.set_num_threads(threads)
    inp = layers.Input(shape=(4, 64))
    h = layers.Dense(64, activation="relu")(inp)
    h = layers.Dense(64, activation="tanh")(h)
    model = Model(inp, layers.Dense(5)(h))
    x = rng.normal(size=(40, 4, 64)).astype(np.float32)
    y = rng.normal(size=(40, 4, 5)).astype(np.float32)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.01), loss="mse")
    w0 = model.get_weights()
    _, loss_ref, grads = mlp_step(w0, ["relu", "tanh", "linear"], x.reshape(160, 64),
                                  y.reshape(160, 5), "mean_squared_error")
    assert abs(model.train_on_batch(x, y) - loss_ref) / loss_ref < 1e-5
    for got, w, g in zip(model.get_weights(), w0, grads):
        assert rel_err(got, rmsprop(w.astype(np.float64), g, {}, lr=0.01)) < 6e-5


def test_keras_golden_rmsprop():
    # loss = w^2 / 2 through MSE on one input of 1/sqrt(2): the gradient is w.
    inp = layers.Input(shape=(1,))
    ten = densitron.initializers.Constant(10.0)
    out = layers.Dense(1, use_bias=False, kernel_initializer=ten)(inp)
    model = Model(inp, out)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.1), loss="mse")
    x = np.array([[np.sqrt(0.5)]], dtype=np.float64)
    model.train_on_batch(x, np.zeros((1, 1)))
    assert model.get_weights()[0][0, 0] == pytest.approx(9.683772, abs=2e-6)


OPTIMIZER_CASES = [
    (optimizers.SGD(), lambda w, g, s, t: sgd(w, g, s)),
    (optimizers.SGD(learning_rate=0.1, momentum=0.9), lambda w, g, s, t: sgd(w, g, s, 0.1, 0.9)),
    (optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
     lambda w, g, s, t: sgd(w, g, s, 0.1, 0.9, True)),
    (optimizers.RMSprop(), lambda w, g, s, t: rmsprop(w, g, s)),
    (optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True, epsilon=1e-3),
     lambda w, g, s, t: rmsprop(w, g, s, 0.01, 0.8, 0.5, 1e-3, True)),
    (optimizers.RMSprop(momentum=0.9), lambda w, g, s, t: rmsprop(w, g, s, momentum=0.9)),
    (optimizers.Adam(), lambda w, g, s, t: adam(w, g, s, t)),
    (optimizers.Adam(learning_rate=0.01, amsgrad=True),
     lambda w, g, s, t: adam(w, g, s, t, lr=0.01, amsgrad=True)),
    (optimizers.AdamW(learning_rate=0.01),
     lambda w, g, s, t: adam(w, g, s, t, lr=0.01, weight_decay=0.004)),
    (optimizers.Adamax(), lambda w, g, s, t: adamax(w, g, s, t)),
    (optimizers.Adamax(learning_rate=0.01, beta_1=0.8, epsilon=1e-3, weight_decay=0.01),
     lambda w, g, s, t: adamax(w, g, s, t, 0.01, 0.8, epsilon=1e-3, weight_decay=0.01)),
    (optimizers.Adagrad(learning_rate=0.05), lambda w, g, s, t: adagrad(w, g, s, 0.05)),
    (optimizers.Adagrad(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=1e-3),
     lambda w, g, s, t: adagrad(w, g, s, 0.05, 0.5, 1e-3)),
    (optimizers.Lion(), lambda w, g, s, t: lion(w, g, s)),
    (optimizers.Lion(learning_rate=0.01, beta_1=0.5, beta_2=0.9, weight_decay=0.01),
     lambda w, g, s, t: lion(w, g, s, 0.01, 0.5, 0.9, 0.01)),
    (optimizers.Adadelta(learning_rate=1.0), lambda w, g, s, t: adadelta(w, g, s, 1.0)),
    (optimizers.Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-4),
     lambda w, g, s, t: adadelta(w, g, s, 0.5, 0.8, 1e-4)),
    (optimizers.Nadam(), lambda w, g, s, t: nadam(w, g, s, t)),
    (optimizers.Lamb(), lambda w, g, s, t: lamb(w, g, s, t)),
    (optimizers.Lamb(learning_rate=0.01, beta_1=0.8, epsilon=1e-4, weight_decay=0.02),
     lambda w, g, s, t: lamb(w, g, s, t, 0.01, 0.8, epsilon=1e-4, weight_decay=0.02)),
    (optimizers.Ftrl(learning_rate=0.05), lambda w, g, s, t: ftrl(w, g, s, 0.05)),
    (optimizers.Ftrl(learning_rate=0.05, learning_rate_power=-0.3, initial_accumulator_value=0.5,
                     l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                     l2_shrinkage_regularization_strength=0.03, beta=0.5),
     lambda w, g, s, t: ftrl(w, g, s, 0.05, -0.3, 0.5, 0.01, 0.02, 0.03, 0.5)),
    (optimizers.Nadam(learning_rate=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-4,
                      weight_decay=0.01),
     lambda w, g, s, t: nadam(w, g, s, t, 0.01, 0.8, 0.9, 1e-4, 0.01)),
]


@pytest.mark.parametrize("case", range(len(OPTIMIZER_CASES)))
def test_optimizer_matches_keras_formula(case):
    opt, reference = OPTIMIZER_CASES[case]
    rng = np.random.default_rng(case)
    n = 37
    w = rng.normal(size=n).astype(np.float32)
    w_ref = w.astype(np.float64)
    config = opt._engine_config()
    slots = [np.full(n, opt._slot_initial_value(s), np.float32)  # Adagrad's start at 0.1
             for s in range(densitron._core._optimizer_slot_count(config))]
    state = {}
    for step in range(1, 6):
        g = rng.normal(size=n).astype(np.float32)
        densitron._core._optimizer_update(config, step, w, g, slots)
        w_ref = reference(w_ref, g.astype(np.float64), state, step)
        assert rel_err(w, w_ref) < 1e-5


def clip_reference(grads, kind, c):
    """Keras's gradient clipping of one step's gradients (float64)."""
    if kind == "clipvalue":
        return [np.clip(g, -c, c) for g in grads]
    if kind == "clipnorm":
        return [g * c / max(np.sqrt((g ** 2).sum()), c) for g in grads]
    n = np.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * c * min(1 / n, 1 / c) for g in grads]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["clipvalue", "clipnorm", "global_clipnorm"])
def test_gradient_clipping_step_matches_numpy(kind, threads):
    # SGD's step is linear in g, so the weights show the clipped gradient itself. The L2 term
    # is clipped with the rest; the 600x64 kernel is cut into row blocks and its norm summed
    # over several fixed blocks; c is set from the gradients so that it binds for some.
    rng = np.random.default_rng(15)
    densitron.set_num_threads(threads)
    inp = layers.Input(shape=(600,))
    h = layers.Dense(64, activation="tanh",
                     kernel_regularizer=densitron.regularizers.L2(0.01))(inp)
    model = Model(inp, layers.Dense(5, activation="softmax")(h))
    x = rng.normal(size=(40, 600)).astype(np.float32)
    y = make_targets("categorical_crossentropy", rng, 40, 5)
    w0 = model.get_weights()
    _, loss_ref, grads = mlp_step(w0, ["tanh", "softmax"], x, y, "categorical_crossentropy")
    grads[0] = grads[0] + 2 * 0.01 * w0[0].astype(np.float64)
    loss_ref += 0.01 * (w0[0].astype(np.float64) ** 2).sum()
    norms = sorted(np.sqrt((g ** 2).sum()) for g in grads)
    c = {"clipvalue": 0.5 * max(np.abs(g).max() for g in grads),
         "clipnorm": 0.5 * (norms[1] + norms[2]),  # two of the four clipped
         "global_clipnorm": 0.5 * np.sqrt(sum(n ** 2 for n in norms))}[kind]
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1, **{kind: c}),
                  loss="categorical_crossentropy")
    assert abs(model.train_on_batch(x, y) - loss_ref) / loss_ref < 1e-5
    for got, w, g, gc in zip(model.get_weights(), w0, grads, clip_reference(grads, kind, c)):
        want = w.astype(np.float64) - 0.1 * gc
        assert rel_err(got - w, want - w) < 1e-4
        binds = {"clipvalue": np.abs(g).max() > c, "clipnorm": np.sqrt((g ** 2).sum()) > c,
                 "global_clipnorm": True}[kind]
        if binds:
            assert rel_err(got - w, -0.1 * g) > 1e-2  # the clipping took effect


@pytest.mark.parametrize("make", [
    lambda lr: optimizers.SGD(learning_rate=lr, momentum=0.5),
    lambda lr: optimizers.Adam(learning_rate=lr),
    lambda lr: optimizers.AdamW(learning_rate=lr, weight_decay=0.1),
])
def test_schedule_runs_step_by_step_inside_the_engine(make):
    # fit runs the 12 steps of an epoch in one engine call; the schedule's rate must change at
    # every step exactly as when the rate is set by hand before each train_on_batch.
    schedule = optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    rng = np.random.default_rng(18)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = make_targets("categorical_crossentropy", rng, 96, 3)
    models = []
    for _ in range(2):
        densitron.utils.set_random_seed(19)
        models.append(build_mlp(["relu"], "softmax", [8, 16, 3]))
    scheduled, by_hand = models
    scheduled.compile(optimizer=make(schedule), loss="categorical_crossentropy")
    by_hand.compile(optimizer=make(1.0), loss="categorical_crossentropy")
    scheduled.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for step in range(12):
        by_hand.optimizer.learning_rate = schedule(step)
        by_hand.train_on_batch(x[8 * step:8 * step + 8], y[8 * step:8 * step + 8])
    for a, b in zip(scheduled.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert scheduled.optimizer.iterations == 12
    assert scheduled.optimizer.learning_rate == schedule(12)
    assert abs(schedule(12) - 0.05 * 0.5 ** 4) < 1e-9
    with pytest.raises(TypeError, match="not settable"):
        scheduled.optimizer.learning_rate = 0.1


def test_schedules_refuse_bad_arguments():
    # (schedules written in Python: tests/test_python_schedules.py)
    class NoCall(optimizers.schedules.LearningRateSchedule):
        pass
    with pytest.raises(ValueError, match="Received: learning_rate="):
        optimizers.SGD(learning_rate=NoCall())
    with pytest.raises(ValueError, match="Received: learning_rate="):
        optimizers.SGD(learning_rate=lambda step, other: 0.1)  # (Keras's: of no arguments)
    with pytest.raises(ValueError, match="decay_steps"):
        optimizers.schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError, match="Received: boundaries"):
        optimizers.schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(TypeError, match="Received: decay_rate"):
        optimizers.schedules.InverseTimeDecay(0.1, 10, decay_rate="fast")


def test_fit_trains_through_every_optimizer():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    # (not "adadelta": its default rate of 0.001 moves too little in 8 epochs)
    for name in ("sgd", "rmsprop", "adam", "adamw", "adamax", "adagrad", "lion", "nadam"):
        # (not "ftrl": at its default rate of 0.001 it moves too little in 8 epochs either)
        inp = layers.Input(shape=(8,))
        out = layers.Dense(1, activation="sigmoid")(layers.Dense(16, activation="relu")(inp))
        model = Model(inp, out)
        model.compile(optimizer=name, loss="binary_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y, epochs=8, verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0], name


def test_multi_input_multi_output_shared_layer_step_matches_numpy():
    rng = np.random.default_rng(21)
    a, b = layers.Input(shape=(4,), name="a"), layers.Input(shape=(4,), name="b")
    shared = layers.Dense(3, activation="tanh", name="shared", bias_initializer="random_normal")
    h1, h2 = shared(a), shared(b)
    cls = layers.Dense(2, activation="softmax", name="cls")(layers.Concatenate()([h1, h2]))
    reg = layers.Dense(1, name="reg", bias_initializer="random_normal")(h2)
    model = Model([a, b], [cls, reg])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1),
                  loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    n = 9
    x1, x2 = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    y1 = np.eye(2)[rng.integers(0, 2, n)]
    y2 = rng.normal(size=(n, 1))
    w = {name: [v.astype(np.float64) for v in model.get_layer(name).get_weights()]
         for name in ("shared", "cls", "reg")}
    (W, bb), (V, d), (U, e) = w["shared"], w["cls"], w["reg"]

    h1r, h2r = np.tanh(x1 @ W + bb), np.tanh(x2 @ W + bb)
    c = np.concatenate([h1r, h2r], axis=1)
    logits = c @ V + d
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = h2r @ U + e
    loss = -(y1 * np.log(p)).sum(1).mean() + 0.5 * ((q - y2) ** 2).mean()
    dl = (p - y1) / n
    dq = 0.5 * 2 * (q - y2) / n
    dc = dl @ V.T
    dh2 = dc[:, 3:] + dq @ U.T
    dz1, dz2 = dc[:, :3] * (1 - h1r ** 2), dh2 * (1 - h2r ** 2)
    expected = {
        "shared": [W - 0.1 * (x1.T @ dz1 + x2.T @ dz2), bb - 0.1 * (dz1.sum(0) + dz2.sum(0))],
        "cls": [V - 0.1 * (c.T @ dl), d - 0.1 * dl.sum(0)],
        "reg": [U - 0.1 * (h2r.T @ dq), e - 0.1 * dq.sum(0)],
    }
    assert model.evaluate([x1, x2], [y1, y2], verbose=0)[0] == pytest.approx(loss, rel=1e-5)
    model.train_on_batch([x1, x2], [y1, y2])
    for name, values in expected.items():
        for got, want in zip(model.get_layer(name).get_weights(), values):
            assert rel_err(got, want) < 1e-5, name


def test_adagrad_accumulators_start_at_their_initial_value_in_training():
    # The engine's own slots (not a caller's) start at initial_accumulator_value: one training
    # step equals Keras's formula from there, and the state reads so before any step.
    rng = np.random.default_rng(40)
    inp = layers.Input(shape=(5,))
    model = Model(inp, layers.Dense(3, activation="tanh")(layers.Dense(4)(inp)))
    model.compile(optimizer=optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.3),
                  loss="mse")
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.normal(size=(8, 3)).astype(np.float32)
    iterations, slots = model._optimizer_slots()
    assert iterations == 0 and all(np.all(s == np.float32(0.3)) for s in slots)
    before = model.get_weights()
    grads = model._compute_gradients(x, y)
    model.train_on_batch(x, y)
    for w_new, w, g in zip(model.get_weights(), before, grads):
        want = adagrad(w.astype(np.float64), g.astype(np.float64), {}, 0.1, 0.3)
        assert rel_err(w_new, want) < 1e-5
    _, slots = model._optimizer_slots()
    for s, g in zip(slots, grads):
        np.testing.assert_allclose(s, 0.3 + g.astype(np.float64) ** 2, rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_nadam_product_runs_on_through_fits_and_a_reset_step_count(threads):
    # The engine continues Nadam's running product step by step (a cache per thread): steps
    # over several fit calls, on one or two threads, and after the step count is set back
    # (as a load does), equal the formula with the product taken from scratch.
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(41)
    inp = layers.Input(shape=(300,))
    model = Model(inp, layers.Dense(40)(inp))  # 12k weights: the update is split
    model.compile(optimizer=optimizers.Nadam(learning_rate=0.01), loss="mse")
    x = rng.normal(size=(8, 300)).astype(np.float32)
    y = rng.normal(size=(8, 40)).astype(np.float32)
    step = 0
    weights = [w.astype(np.float64) for w in model.get_weights()]
    states = [{} for _ in weights]
    for fit_steps in (3, 1, 2):
        for _ in range(fit_steps):
            step += 1
            grads = model._compute_gradients(x, y)
            model.train_on_batch(x, y)
            weights = [nadam(w, g.astype(np.float64), s, step, lr=0.01)
                       for w, g, s in zip(weights, grads, states)]
            for got, want in zip(model.get_weights(), weights):
                assert rel_err(got, want) < 1e-5, step
            # keep the reference on the engine's float32 weights
            weights = [w.astype(np.float64) for w in model.get_weights()]
    # the step count set back to 2, with the slots after step 2 (zeros here: from 0)
    iterations, slots = model._optimizer_slots()
    assert iterations == 6
    model._set_optimizer_slots(2, [np.zeros_like(s) for s in slots])
    states = [{} for _ in weights]  # m and v from zeros, as the slots were set
    grads = model._compute_gradients(x, y)
    model.train_on_batch(x, y)
    want = [nadam(w, g.astype(np.float64), s, 3, lr=0.01)
            for w, g, s in zip(weights, grads, states)]
    for got, w in zip(model.get_weights(), want):
        assert rel_err(got, w) < 1e-5


def test_optimizer_arguments_checked_as_keras():
    for bad in (1, 0.5, "2"):
        with pytest.raises(ValueError, match="`gradient_accumulation_steps` must be an integer "
                                             f">= 2. Received: gradient_accumulation_steps="):
            optimizers.SGD(gradient_accumulation_steps=bad)

    # their "off" values (and a loss scale, which changes nothing in float32) are taken
    optimizers.AdamW(use_ema=False, ema_momentum=0.9, ema_overwrite_frequency=None,
                     gradient_accumulation_steps=None, loss_scale_factor=128.0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["sgd", "adam", "adam_clipnorm", "lamb"])
def test_gradient_accumulation_is_keras_formula(name, threads):
    # Keras: steps add their gradients to the sums; every Nth updates with (g + sums) / N (then
    # clipping, and the update's own count for Adam's bias corrections) and resets the sums.
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(7)
    make = {"sgd": lambda: optimizers.SGD(0.1, momentum=0.5, gradient_accumulation_steps=3),
            "adam": lambda: optimizers.Adam(0.01, gradient_accumulation_steps=3),
            "adam_clipnorm": lambda: optimizers.Adam(0.01, gradient_accumulation_steps=3,
                                                     clipnorm=0.05),
            "lamb": lambda: optimizers.Lamb(0.01, gradient_accumulation_steps=3)}[name]
    model = ema_model(make())
    state = [{} for _ in model.get_weights()]
    sums = [np.zeros(w.shape) for w in model.get_weights()]
    want = [w.astype(np.float64) for w in model.get_weights()]
    for step in range(9):
        x = rng.normal(size=(16, 6)).astype(np.float32)
        y = rng.normal(size=(16, 3)).astype(np.float32)
        grads = [g.astype(np.float64) for g in model._compute_gradients(x, y)]
        model.train_on_batch(x, y)
        if (step + 1) % 3:
            sums = [s + g for s, g in zip(sums, grads)]
        else:
            avg = [(g + s) / 3 for g, s in zip(grads, sums)]
            sums = [np.zeros_like(s) for s in sums]
            update = (step + 1) // 3
            for k, g in enumerate(avg):
                if name == "adam_clipnorm":
                    g = g * 0.05 / max(np.sqrt((g * g).sum()), 0.05)
                want[k] = (sgd(want[k], g, state[k], lr=0.1, momentum=0.5) if name == "sgd"
                           else lamb(want[k], g, state[k], update, lr=0.01) if name == "lamb"
                           else adam(want[k], g, state[k], update, lr=0.01))
        for got, w in zip(model.get_weights(), want):
            np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-6)
        assert model.optimizer.iterations == (step + 1) // 3
        iterations, slots = model._optimizer_slots()
        assert iterations == step + 1  # (Keras saves the steps taken)
        for got, s in zip(slots[:4], sums):  # the sums first, as Keras orders them
            np.testing.assert_allclose(got, s, rtol=1e-5, atol=1e-6)


def test_gradient_accumulation_with_ema_saved_and_resumed(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = rng.normal(size=(32, 3)).astype(np.float32)

    def opt():
        return optimizers.RMSprop(0.01, gradient_accumulation_steps=2, use_ema=True)

    a, b = ema_model(opt()), ema_model(opt())
    for _ in range(3):  # mid-accumulation: the sums hold one step
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    b.save(tmp_path / "m.keras")
    b = densitron.models.load_model(tmp_path / "m.keras")
    assert b.optimizer.gradient_accumulation_steps == 2 and b.optimizer.iterations == 1
    for _ in range(3):
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    for got, want in zip(b.get_weights(), a.get_weights()):
        np.testing.assert_array_equal(got, want)
    # fit: the epochs' steps accumulate alike, and end on the averages
    c = ema_model(opt())
    c.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert c.optimizer.iterations == 4


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_flushes_subnormals_and_restores_the_callers_mode(threads):
    # The engine's threads treat subnormal floats as zero while they run (as TensorFlow's do):
    # a product below float32's smallest normal predicts 0. NumPy on the calling thread gets
    # IEEE subnormals again afterwards.
    saved = densitron.get_num_threads()
    densitron.set_num_threads(threads)
    try:
        inputs = layers.Input(shape=(2,))
        model = Model(inputs, layers.Dense(1, use_bias=False)(inputs))
        model.set_weights([np.array([[1e-30], [0.0]], np.float32)])
        x = np.array([[1e-10, 0.0], [1e10, 0.0]] * 40, np.float32)  # 80 rows: both threads
        out = model.predict(x, verbose=0)
    finally:
        densitron.set_num_threads(saved)
    assert np.all(out[0::2] == 0.0)
    np.testing.assert_allclose(out[1::2], 1e-20, rtol=1e-6)
    assert np.float32(1e-30) * np.float32(1e-10) > 0


def ema_model(optimizer, constraint=None, seed=5):
    densitron.utils.set_random_seed(seed)
    inp = layers.Input(shape=(6,))
    h = layers.Dense(8, activation="tanh", kernel_constraint=constraint)(inp)
    model = Model(inp, layers.Dense(3)(h))
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("threads", [1, 2])
def test_use_ema_keeps_keras_moving_average_and_fit_ends_on_it(threads):
    # Keras: after each step average = m·average + (1 - m)·w (m = 0 at the first step, so the
    # average starts at the first step's weights); fit ends with the weights on the averages.
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.normal(size=(40, 3)).astype(np.float32)
    model = ema_model(optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.8))
    m = np.float32(0.8)
    avg = None
    for step in range(5):
        model.train_on_batch(x, y)
        w = [v.copy() for v in model.get_weights()]
        avg = w if avg is None else [m * a + (np.float32(1) - m) * b for a, b in zip(avg, w)]
        iterations, slots = model._optimizer_slots()
        assert iterations == step + 1
        for got, want in zip(slots[:4], avg):  # the averages come first, as in Keras
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    model.optimizer.finalize_variable_values(model.trainable_weights)
    for got, want in zip(model.get_weights(), avg):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # fit: the same five full-batch steps, then the weights on the averages
    fitted = ema_model(optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.8))
    fitted.fit(x, y, batch_size=40, epochs=5, shuffle=False, verbose=0)
    for got, want in zip(fitted.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_ema_overwrite_frequency_and_constraints_after_the_average():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 6)).astype(np.float32)
    y = rng.normal(size=(30, 3)).astype(np.float32) * 5
    model = ema_model(optimizers.SGD(0.2, use_ema=True, ema_momentum=0.9,
                                     ema_overwrite_frequency=2),
                      constraint=densitron.constraints.NonNeg())
    model.train_on_batch(x, y)
    _, slots = model._optimizer_slots()
    # the average took the step's weights before the constraint (Keras's order)
    assert (slots[0] < 0).any() and (model.get_weights()[0] >= 0).all()
    model.train_on_batch(x, y)  # the second step: the weights take their averages
    _, slots = model._optimizer_slots()
    for got, want in zip(model.get_weights()[1:], slots[1:4]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.get_weights()[0], np.maximum(slots[0], 0))
    model.train_on_batch(x, y)
    _, slots = model._optimizer_slots()
    assert not np.array_equal(model.get_weights()[1], slots[1])


def test_ema_state_saved_and_resumed(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = rng.normal(size=(32, 3)).astype(np.float32)
    a = ema_model(optimizers.Adam(0.01, use_ema=True))
    b = ema_model(optimizers.Adam(0.01, use_ema=True))
    for _ in range(3):
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    b.save(tmp_path / "m.keras")
    b = densitron.models.load_model(tmp_path / "m.keras")
    assert b.optimizer.use_ema and b.optimizer.ema_momentum == 0.99
    for _ in range(2):
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    for got, want in zip(b._optimizer_slots()[1], a._optimizer_slots()[1]):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(b.get_weights(), a.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_fit_ends_on_the_averages_when_a_callback_raises_too():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 6)).astype(np.float32)
    y = rng.normal(size=(20, 3)).astype(np.float32)
    model = ema_model(optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5))

    class Stop(densitron.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.fit(x, y, batch_size=20, epochs=4, verbose=0, callbacks=[Stop()])
    _, slots = model._optimizer_slots()
    for got, want in zip(model.get_weights(), slots[:4]):
        np.testing.assert_array_equal(got, want)
    # a fit that takes no step (initial_epoch at epochs) leaves untrained weights alone
    fresh = ema_model(optimizers.SGD(0.1, use_ema=True))
    before = fresh.get_weights()
    fresh.fit(x, y, epochs=2, initial_epoch=2, verbose=0)
    for got, want in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_ema_average_starts_at_zero_beside_an_accumulator():
    # Adagrad's accumulator starts at initial_accumulator_value, use_ema's average at 0
    model = ema_model(optimizers.Adagrad(initial_accumulator_value=0.3, use_ema=True))
    _, slots = model._optimizer_slots()  # before the engine runs
    assert all((s == 0).all() for s in slots[:4]) and all((s == 0.3).all() for s in slots[4:])
    x = np.ones((4, 6), np.float32)
    model.train_on_batch(x, np.zeros((4, 3), np.float32))
    _, slots = model._optimizer_slots()
    for got, want in zip(slots[:4], model.get_weights()):  # the first step: the weights
        np.testing.assert_array_equal(got, want)


def test_ema_arguments_and_config():
    opt = optimizers.RMSprop(use_ema=True, ema_momentum=0.95, ema_overwrite_frequency=10)
    config = opt.get_config()
    assert (config["use_ema"], config["ema_momentum"], config["ema_overwrite_frequency"]) == (
        True, 0.95, 10)
    assert optimizers.RMSprop.from_config(config).get_config() == config
    with pytest.raises(ValueError, match=r"`ema_momentum` must be in the range \[0, 1\]. "
                                         "Received: ema_momentum=1.5"):
        optimizers.Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ValueError, match="`ema_overwrite_frequency` must be an integer >= 1 or "
                                         "None. Received: ema_overwrite_frequency=0.5"):
        optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5)


@pytest.mark.parametrize("how", ["names", "list"])
def test_exclude_from_weight_decay(how):
    # One SGD step with weight decay: the excluded variables (by name pattern or as a list)
    # take the plain step w - lr·g, the others decay first, w·(1 - lr·wd) - lr·g (Keras's).
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=(16, 2))
    inp = layers.Input((4,))
    hidden = layers.Dense(5, activation="tanh", bias_initializer="random_normal")
    model = Model(inp, layers.Dense(2, bias_initializer="random_normal")(hidden(inp)))
    opt = optimizers.SGD(learning_rate=0.1, weight_decay=0.5)
    if how == "names":
        opt.exclude_from_weight_decay(var_names=["bias"])
        excluded = [v.name == "bias" for v in model.weights]
    else:
        opt.exclude_from_weight_decay(var_list=hidden.weights)
        excluded = [any(v is h for h in hidden.weights) for v in model.weights]
    model.compile(optimizer=opt, loss="mse")
    before = [w.astype(np.float64) for w in model.get_weights()]
    grads = model._compute_gradients(x, y)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for w0, g, w1, ex in zip(before, grads, model.get_weights(), excluded):
        want = w0 - 0.1 * g if ex else w0 * (1 - 0.05) - 0.1 * g
        np.testing.assert_allclose(w1, want, rtol=1e-5, atol=1e-6)
    assert any(excluded) and not all(excluded)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])
    with pytest.raises(ValueError, match=r"Received: var_names='bias'"):
        optimizers.AdamW().exclude_from_weight_decay(var_names="bias")


@pytest.mark.parametrize("threads", [1, 2])
def test_lamb_trains_each_variable_by_its_trust_ratio(threads):
    # Lamb in fit against its formula in float64, variable by variable (each its own ratio),
    # over three full-batch steps, on 1 and 2 threads (the norms over fixed blocks), with
    # weight decay and one variable excluded from it; and the two thread counts alike.
    densitron.set_num_threads(threads)
    try:
        rng = np.random.default_rng(21)
        x, y = rng.normal(size=(256, 300)).astype(np.float32), rng.normal(size=(256, 4))
        inp = layers.Input((300,))
        model = Model(inp, layers.Dense(4)(layers.Dense(64, activation="tanh")(inp)))
        opt = optimizers.Lamb(learning_rate=0.01, weight_decay=0.1)
        opt.exclude_from_weight_decay(var_names=["bias"])
        model.compile(optimizer=opt, loss="mse")
        ws = [w.astype(np.float64) for w in model.get_weights()]
        states = [{} for _ in ws]
        for step in range(1, 4):
            grads = model._compute_gradients(x, y)
            model.fit(x, y, batch_size=256, epochs=1, shuffle=False, verbose=0)
            ws = [lamb(w, g.astype(np.float64), s, step, lr=0.01,
                       weight_decay=0.0 if v.name == "bias" else 0.1)
                  for w, g, s, v in zip(ws, grads, states, model.weights)]
            for got, want in zip(model.get_weights(), ws):
                assert rel_err(got, want) < 1e-5
            ws = [w.astype(np.float64) for w in model.get_weights()]  # (no drift)
    finally:
        densitron.set_num_threads(2)


def test_lamb_alike_on_one_and_two_threads():
    from test_threads import assert_trains_alike_on_one_and_two_threads

    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(512, 300)).astype(np.float32), rng.normal(size=(512, 4))

    def build():
        inp = layers.Input((300,))
        model = Model(inp, layers.Dense(4)(layers.Dense(256, activation="relu")(inp)))
        model.compile(optimizer=optimizers.Lamb(0.01, clipnorm=1.0, use_ema=True), loss="mse")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=2, batch_size=128)


def test_recompiling_with_the_same_optimizer_keeps_its_state():
    # Keras 3.15 (JAX), this script: the optimizer object given again (or model.optimizer)
    # keeps its step count and Adam's moments; a new one starts afresh.
    rng_x, rng_y = np.random.RandomState(0), np.random.RandomState(1)
    x, y = rng_x.randn(20, 4).astype("float32"), rng_y.randn(20, 1).astype("float32")

    def run(second):
        model = densitron.Sequential([densitron.Input((4,)),
                                      densitron.layers.Dense(1, kernel_initializer="ones")])
        opt = densitron.optimizers.Adam(0.1)
        model.compile(optimizer=opt, loss="mse")
        model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
        model.compile(optimizer=second(opt, model), loss="mse")
        model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
        return int(model.optimizer.iterations), model.get_weights()[0].ravel()

    keras_kernel = [0.333498, 0.39938185, 0.301213, 0.6523014]
    for second in (lambda opt, m: opt, lambda opt, m: m.optimizer):
        steps, kernel = run(second)
        assert steps == 8
        np.testing.assert_allclose(kernel, keras_kernel, rtol=2e-5)
    steps, kernel = run(lambda opt, m: densitron.optimizers.Adam(0.1))
    assert steps == 4 and not np.allclose(kernel, keras_kernel, rtol=1e-3)


def test_gradient_accumulation_reads_the_schedule_at_the_micro_batch_count():
    # Keras 3.15 (JAX), this script: with gradient_accumulation_steps=2 the schedule is read
    # at the count of micro-batches (12 batches: the rate after is the last boundary's), and a
    # schedule written in Python gives the same as the engine's own
    x = np.random.RandomState(0).randn(20, 4).astype("float32")
    y = np.random.RandomState(1).randn(20, 1).astype("float32")

    class Steps(optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 if step <= 3 else 0.01 if step <= 8 else 0.001

    kernels = []
    for schedule in (optimizers.schedules.PiecewiseConstantDecay([3, 8], [0.1, 0.01, 0.001]),
                     Steps()):
        model = densitron.Sequential([densitron.Input((4,)),
                                      layers.Dense(1, kernel_initializer="ones")])
        opt = optimizers.SGD(schedule, gradient_accumulation_steps=2)
        model.compile(optimizer=opt, loss="mse")
        model.fit(x, y, batch_size=5, epochs=3, shuffle=False, verbose=0)
        assert int(opt.iterations) == 6
        assert float(opt.learning_rate) == pytest.approx(0.001)
        kernels.append(model.get_weights()[0].ravel())
    np.testing.assert_allclose(kernels[0], [0.42974046, 0.45050463, 0.5660601, 0.7853784],
                               rtol=1e-5)
    np.testing.assert_array_equal(kernels[0], kernels[1])


def test_a_learning_rate_given_as_a_function_of_no_arguments():
    # Keras 3.15 (JAX), this script: SGD(learning_rate=lambda: 0.1) trains as SGD(0.1); the
    # function is called for every step, so a rate it reads can change between fits
    x = np.random.RandomState(0).randn(20, 4).astype("float32")
    y = np.random.RandomState(1).randn(20, 1).astype("float32")
    rate = [0.1]
    model = densitron.Sequential([densitron.Input((4,)),
                                  layers.Dense(1, kernel_initializer="ones")])
    opt = optimizers.SGD(learning_rate=lambda: rate[0])
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=5, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.get_weights()[0].ravel(),
                               [0.31172392, 0.07959073, 0.2780746, 0.6460632], rtol=1e-5)
    assert float(opt.learning_rate) == pytest.approx(0.1)
    assert opt.get_config()["learning_rate"] == pytest.approx(0.1)
    rate[0] = 0.0
    kernel = model.get_weights()[0].copy()
    model.fit(x, y, batch_size=5, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], kernel)
    with pytest.raises(ValueError, match="a function of no arguments"):
        optimizers.SGD(learning_rate=lambda step: 0.1)
