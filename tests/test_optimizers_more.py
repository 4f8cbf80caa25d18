"""Keras 3.15's Adafactor and LossScaleOptimizer on the engine: each update against a float64
NumPy reference of Keras's formula over variables of rank 1, 2 and 3 with odd sizes, training
runs against Keras itself (JAX, in a process of its own), 1 and 2 threads bitwise alike, the
optimizer's variables in `.keras` files both ways, configs and refusals."""

import json

import densitron as dt
import numpy as np
import pytest
from densitron import _core
from keras_subprocess import keras_on_jax_json

# --- float64 references of Keras's formulas ------------------------------------------------

def adafactor_ref(w, g, state, t, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30,
                  epsilon_2=1e-3, clip_threshold=1.0, relative_step=True, weight_decay=0.0):
    """One Keras Adafactor step in float64; state: {"r", "c", "v"} (updated in place)."""
    lr = learning_rate
    w = w.astype(np.float64) * (1.0 - lr * weight_decay)
    g = g.astype(np.float64)
    if relative_step:
        lr = min(lr, 1 / np.sqrt(t))
    rho = min(lr, 1 / np.sqrt(t))
    alpha = max(epsilon_2, np.sqrt(np.mean(w * w))) * rho
    q = g * g + epsilon_1
    beta = 1 - t ** beta_2_decay
    if w.ndim >= 2:
        state["r"] = beta * state["r"] + (1 - beta) * q.mean(-1)
        state["c"] = beta * state["c"] + (1 - beta) * q.mean(-2)
        state["v"] = (state["r"] / state["r"].mean(-1, keepdims=True))[..., None] * \
            state["c"][..., None, :]
    else:
        state["v"] = beta * state["v"] + (1 - beta) * q
    u = g / np.sqrt(state["v"])
    u = u / max(1.0, np.sqrt(np.mean(u * u)) / clip_threshold)
    return w - alpha * u


def new_state(shape):
    shape = tuple(shape)
    return {"r": np.zeros(shape[:-1]), "c": np.zeros(shape[:-2] + shape[-1:]),
            "v": np.zeros(shape)}


@pytest.mark.parametrize("shape", [(7,), (5, 3), (3, 5, 7), (1, 9), (9, 1), (1,)])
@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 0.5, "clip_threshold": 0.3},
                                    {"relative_step": False, "learning_rate": 0.05,
                                     "beta_2_decay": -0.5, "epsilon_2": 0.2},
                                    {"weight_decay": 0.1, "learning_rate": 0.02}])
def test_adafactor_update_matches_float64_reference(shape, kwargs):
    rng = np.random.default_rng(sum(shape))
    opt = dt.optimizers.Adafactor(**kwargs)
    config = opt._engine_config()
    config["factor_dims"] = [shape[-2], shape[-1]] if len(shape) >= 2 else [0, shape[0]]
    n = int(np.prod(shape))
    w = rng.normal(size=shape).astype(np.float32)
    ref_w, state = w.astype(np.float64), new_state(shape)
    slots = [np.zeros(n, np.float32) for _ in range(3)]
    flat = w.ravel().copy()
    for t in range(1, 6):
        g = (rng.normal(size=shape) * (3.0 if t == 2 else 0.1)).astype(np.float32)
        _core._optimizer_update(config, t, flat, g.ravel(), slots)
        ref_w = adafactor_ref(ref_w, g, state, t, **kwargs)
        np.testing.assert_allclose(flat.reshape(shape), ref_w, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(slots[0].reshape(shape), state["v"], rtol=2e-5, atol=1e-30)
        if len(shape) >= 2:
            np.testing.assert_allclose(slots[1][:state["r"].size], state["r"].ravel(),
                                       rtol=2e-5)
            np.testing.assert_allclose(slots[2][:state["c"].size], state["c"].ravel(),
                                       rtol=2e-5)


def newton_schulz_ref(G, steps, a=3.4445, b=-4.7750, c=2.0315):
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / (np.linalg.norm(X) + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + (c * A) @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def muon_ref(w, g, m, v, t, matrix, learning_rate=0.001, momentum=0.95, nesterov=True,
             ns_steps=5, rms_rate=0.2, weight_decay=0.004, adam_weight_decay=0.004,
             adam_lr_ratio=1, adam_beta_1=0.9, adam_beta_2=0.999, epsilon=1e-7):
    """One Keras Muon step in float64 (m, v updated in place); matrix: Muon's, else AdamW."""
    lr, g = learning_rate, g.astype(np.float64)
    if not matrix:
        w = w * (1 - lr * adam_weight_decay)
        m += (g - m) * (1 - adam_beta_1)
        v += (g * g - v) * (1 - adam_beta_2)
        alpha = lr * adam_lr_ratio * np.sqrt(1 - adam_beta_2 ** t) / (1 - adam_beta_1 ** t)
        return w - m * alpha / (np.sqrt(v) + epsilon)
    w = w * (1 - lr * weight_decay)
    m += g + m * (momentum - 1)
    update = lr * newton_schulz_ref(g + momentum * m if nesterov else m.copy(), ns_steps)
    if rms_rate is not None:
        update = update * np.sqrt(max(w.shape)) * rms_rate
    return w - update


@pytest.mark.parametrize("shape, matrix", [((7,), False), ((5, 3), True), ((3, 5), True),
                                           ((1, 9), True), ((3, 5, 7), False),
                                           ((5, 3), False)])
@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 0.05, "nesterov": False,
                                         "rms_rate": None, "ns_steps": 3, "momentum": 0.8},
                                    {"learning_rate": 0.02, "weight_decay": 0.1,
                                     "adam_weight_decay": 0.3, "adam_lr_ratio": 0.5}])
def test_muon_update_matches_float64_reference(shape, matrix, kwargs):
    rng = np.random.default_rng(sum(shape) + matrix)
    config = dt.optimizers.Muon(**kwargs)._engine_config()
    n = int(np.prod(shape))
    config["factor_dims"] = list(shape) if matrix else [0, n]
    w = rng.normal(size=shape).astype(np.float32)
    ref_w, m, v = w.astype(np.float64), np.zeros(shape), np.zeros(shape)
    slots = [np.zeros(n, np.float32) for _ in range(2)]
    flat = w.ravel().copy()
    for t in range(1, 5):
        g = (rng.normal(size=shape) * 0.3).astype(np.float32)
        _core._optimizer_update(config, t, flat, g.ravel(), slots)
        ref_w = muon_ref(ref_w, g, m, v, t, matrix, **kwargs)
        np.testing.assert_allclose(flat.reshape(shape), ref_w, rtol=1e-4, atol=2e-6)
        np.testing.assert_allclose(slots[0].reshape(shape), m, rtol=1e-5, atol=1e-6)
        if not matrix:
            np.testing.assert_allclose(slots[1].reshape(shape), v, rtol=1e-5, atol=1e-9)


def schedule_free_ref(y, g, z, v, t, learning_rate=0.0025, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-8, warmup_steps=0, weight_decay=0.0):
    """One Keras ScheduleFreeAdamW step in float64 (z, v updated in place), but for the
    betas' complements and 1 - beta_2^t, which Keras computes in float32 (the latter loses
    digits to cancellation: the update follows it)."""
    lr, g = learning_rate, g.astype(np.float64)
    c1 = float(np.float32(1) - np.float32(beta_1))
    c2 = float(np.float32(1) - np.float32(beta_2))
    y = y * (1 - lr * weight_decay)
    if warmup_steps > 0:
        lr = lr * min(t / warmup_steps, 1.0)
    v += (g * g - v) * c2
    z_old = z.copy()
    bc2 = float(np.float32(1) - np.float32(beta_2) ** np.float32(t))  # (as Keras's, float32)
    z -= lr * g / (np.sqrt(v / bc2) + epsilon)
    x = (y - c1 * z_old) / float(np.float32(beta_1))
    x = (1 - 1 / t) * x + z / t
    return c1 * z + float(np.float32(beta_1)) * x


@pytest.mark.parametrize("shape", [(7,), (5, 3), (3, 5, 7)])
@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 0.1, "warmup_steps": 3,
                                         "beta_1": 0.8, "weight_decay": 0.05}])
def test_schedule_free_update_matches_float64_reference(shape, kwargs):
    rng = np.random.default_rng(sum(shape))
    config = dt.optimizers.ScheduleFreeAdamW(**kwargs)._engine_config()
    n = int(np.prod(shape))
    w = rng.normal(size=shape).astype(np.float32)
    ref_w, z, v = w.astype(np.float64), w.astype(np.float64), np.zeros(shape)
    slots = [w.ravel().copy(), np.zeros(n, np.float32)]  # (z starts as the weight)
    flat = w.ravel().copy()
    for t in range(1, 6):
        g = (rng.normal(size=shape) * 0.3).astype(np.float32)
        _core._optimizer_update(config, t, flat, g.ravel(), slots)
        ref_w = schedule_free_ref(ref_w, g, z, v, t, **kwargs)
        # (float32's cancellation in x = (y - (1 - beta_1)·z) / beta_1: Keras's too)
        np.testing.assert_allclose(flat.reshape(shape), ref_w, rtol=1e-5, atol=5e-6)
        np.testing.assert_allclose(slots[0].reshape(shape), z, rtol=1e-5, atol=1e-6)


# --- models trained on densitron and on Keras ----------------------------------------------

def _build(lib):
    inp = lib.Input((6,))
    h = lib.layers.Dense(5, activation="tanh", name="d1")(inp)
    h = lib.layers.Reshape((5, 1))(h)
    h = lib.layers.Conv1D(3, 2, name="c1")(h)
    h = lib.layers.Flatten()(h)
    out = lib.layers.Dense(2, name="d2")(h)
    model = lib.Model(inp, out)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.5
                       for w in model.get_weights()])
    return model


def _data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(21, 6)).astype(np.float32)
    y = rng.normal(size=(21, 2)).astype(np.float32)
    return x, y


OPTIMIZERS = {
    "adafactor": lambda o: o.Adafactor(),
    "adafactor_lr": lambda o: o.Adafactor(learning_rate=0.3, clip_threshold=0.5,
                                          beta_2_decay=-0.6),
    "adafactor_fixed": lambda o: o.Adafactor(learning_rate=0.05, relative_step=False,
                                             weight_decay=0.01, epsilon_2=0.01),
    "lso_adam": lambda o: o.LossScaleOptimizer(o.Adam(0.01), dynamic_growth_steps=2),
    # 2**127: the scaled gradients overflow, steps are skipped while the scale halves
    "lso_overflow": lambda o: o.LossScaleOptimizer(o.SGD(0.05, momentum=0.5, name="sgd"),
                                                   initial_scale=2.0 ** 127,
                                                   dynamic_growth_steps=3),
    "muon": lambda o: o.Muon(),
    "muon_opts": lambda o: o.Muon(learning_rate=0.02, nesterov=False, rms_rate=None,
                                  exclude_layers=["d2"], adam_lr_ratio=0.5, weight_decay=0.05,
                                  adam_weight_decay=None, ns_steps=3, momentum=0.9),
    "schedule_free": lambda o: o.ScheduleFreeAdamW(),
    "schedule_free_opts": lambda o: o.ScheduleFreeAdamW(learning_rate=0.02, beta_1=0.8,
                                                        warmup_steps=4, weight_decay=0.01),
    # with clipping, moving averages and gradient accumulation around the update
    "adafactor_extras": lambda o: o.Adafactor(learning_rate=0.2, clipnorm=0.5, use_ema=True,
                                              ema_overwrite_frequency=3),
    "muon_accumulated": lambda o: o.Muon(learning_rate=0.02, gradient_accumulation_steps=2,
                                         clipvalue=0.2),
    "schedule_free_clipped": lambda o: o.ScheduleFreeAdamW(0.01, global_clipnorm=0.3),
    "lso_muon": lambda o: o.LossScaleOptimizer(o.Muon(learning_rate=0.01)),
    "lso_adafactor": lambda o: o.LossScaleOptimizer(o.Adafactor(learning_rate=0.1)),
}


def _train(lib, key, save_to=None):
    model = _build(lib)
    model.compile(OPTIMIZERS[key](lib.optimizers), "mse")
    x, y = _data()
    hist = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    if save_to:
        model.save(save_to)
    opt = model.optimizer
    return (hist.history["loss"], [w.tolist() for w in model.get_weights()],
            [np.asarray(v.numpy(), np.float64).tolist() for v in opt.variables],
            int(opt.iterations.numpy() if hasattr(opt.iterations, "numpy")
                else opt.iterations))


def _keras_main(key, save_to, load_from):
    import keras

    out = list(_train(keras, key, save_to))
    if load_from:  # densitron's file: its optimizer variables as Keras reads them
        m = keras.saving.load_model(load_from)
        out.append([np.asarray(v.numpy(), np.float64).tolist() for v in m.optimizer.variables])
        out.append(m.optimizer.get_config())
    print(json.dumps(out, default=float))


def _keras(key, save_to="", load_from=""):
    return keras_on_jax_json("import test_optimizers_more as t; "
                             f"t._keras_main({key!r}, {save_to!r}, {load_from!r})")


def _assert_variables_close(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", sorted(OPTIMIZERS))
def test_training_matches_keras_and_files_load_both_ways(key, tmp_path):
    theirs = str(tmp_path / "keras.keras")
    ours = str(tmp_path / "densitron.keras")
    losses, weights, variables, iterations = _train(dt, key, ours)
    k = _keras(key, theirs, ours)
    k_losses, k_weights, k_variables, k_iterations = k[:4]
    np.testing.assert_allclose(losses, k_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(weights, k_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    assert iterations == k_iterations
    _assert_variables_close(variables, k_variables)
    # densitron's file read by Keras: the same optimizer variables and config
    _assert_variables_close(k[4], variables)
    assert _same_config(k[5], _train_config(key))
    assert _same_config(k[5], dt.saving.load_model(ours).optimizer.get_config())
    # Keras's file read by densitron: its variables, and training goes on as Keras's would
    m = dt.saving.load_model(theirs)
    from densitron import saving

    _assert_variables_close(saving._optimizer_values(m), k_variables)
    assert _same_config(m.optimizer.get_config(), k[5])


def _train_config(key):
    # (a new session's first optimizer of its kind, as Keras's run made it: automatic names
    # count up within a session, sgd then sgd_1)
    dt.utils.clear_session()
    return OPTIMIZERS[key](dt.optimizers).get_config()


def _same_config(a, b):
    """Configs equal, floats to float32 rounding (Keras's learning rate is a float32's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_config(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return np.isclose(a, b, rtol=1e-7, atol=0)
    return a == b


def _threads_run(threads, key):
    dt.set_num_threads(threads)
    dt.utils.set_random_seed(5)
    # (wide enough that a step is split across two threads)
    model = dt.Sequential([dt.Input((64,)), dt.layers.Dense(256, activation="relu"),
                           dt.layers.Dense(256), dt.layers.Reshape((16, 16)),
                           dt.layers.Dense(3)])
    model.compile(OPTIMIZERS[key](dt.optimizers), "mse")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(256, 64)).astype(np.float32)
    y = rng.normal(size=(256, 16, 3)).astype(np.float32)
    hist = model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    assert model._graph.last_run_threads == threads
    return hist.history["loss"], [w.tolist() for w in model.get_weights()], \
        [np.asarray(v.numpy()).tolist() for v in model.optimizer.variables]


@pytest.mark.parametrize("key", ["adafactor_lr", "lso_overflow", "muon",
                                 "schedule_free_opts"])
def test_one_and_two_threads_bitwise_equal(key):
    a, b = _threads_run(1, key), _threads_run(2, key)
    assert a == b


def test_configs_and_names():
    opt = dt.optimizers.get("adafactor")
    assert isinstance(opt, dt.optimizers.Adafactor)
    assert _same_config(opt.get_config(), {
        "name": "adafactor", "learning_rate": 0.001, "weight_decay": None, "clipnorm": None,
        "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
        "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "beta_2_decay": -0.8, "epsilon_1": 1e-30,
        "epsilon_2": 0.001, "clip_threshold": 1.0, "relative_step": True})
    lso = dt.optimizers.LossScaleOptimizer(dt.optimizers.Adam())
    config = lso.get_config()
    assert list(config) == ["name", "inner_optimizer", "initial_scale", "dynamic_growth_steps"]
    assert config["initial_scale"] == 32768.0 and config["dynamic_growth_steps"] == 2000
    back = dt.optimizers.deserialize(dt.optimizers.serialize(lso))
    assert isinstance(back, dt.optimizers.LossScaleOptimizer)
    assert isinstance(back.inner_optimizer, dt.optimizers.Adam)
    assert back.get_config() == config
    assert lso.scale_loss(2.0) == 65536.0
    assert "Adafactor" in dt.optimizers.__all__ and "LossScaleOptimizer" in dt.optimizers.__all__


@pytest.mark.parametrize("kwargs, error, message", [
    ({"clipnorm": 1.0}, ValueError,
     ("LossScaleOptimizer does not support `clipnorm`. Instead, set `clipnorm` on the "
      "`inner_optimizer`.")),
    ({"use_ema": True}, ValueError, "LossScaleOptimizer does not support `use_ema`."),
    ({"foo": 1, "bar": 2}, ValueError,
     "LossScaleOptimizer does not support arguments: `foo`, `bar`."),
    ({"dynamic": False}, ValueError, "LossScaleOptimizer no longer supports `dynamic=False`."),
    ({"initial_scale": 0}, ValueError, "Received: initial_scale=0"),
    ({"dynamic_growth_steps": 0}, ValueError, "Received: dynamic_growth_steps=0"),
])
def test_loss_scale_optimizer_refusals(kwargs, error, message):
    with pytest.raises(error) as info:
        dt.optimizers.LossScaleOptimizer(dt.optimizers.SGD(), **kwargs)
    assert message in str(info.value)


def test_loss_scale_optimizer_refuses_bad_inner():
    with pytest.raises(TypeError, match="Received: inner_optimizer='adam'"):
        dt.optimizers.LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        dt.optimizers.LossScaleOptimizer(dt.optimizers.SGD(gradient_accumulation_steps=2))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"clip_threshold": 0.0}, ValueError, "Received: clip_threshold=0.0"),
    ({"epsilon_1": "x"}, TypeError, "Received: epsilon_1='x'"),
    ({"beta_2_decay": float("nan")}, TypeError, "Received: beta_2_decay=nan"),
    ({"foo": 1}, TypeError, "Unrecognized keyword arguments passed to Adafactor"),
])
def test_adafactor_refusals(kwargs, error, message):
    with pytest.raises(error) as info:
        dt.optimizers.Adafactor(**kwargs)
    assert message in str(info.value)


def test_muon_config_and_choice_of_variables():
    opt = dt.optimizers.get("muon")
    assert isinstance(opt, dt.optimizers.Muon)
    config = opt.get_config()
    assert _same_config(config, {
        "name": "muon", "learning_rate": 0.001, "weight_decay": 0.004, "clipnorm": None,
        "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
        "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "adam_beta_1": 0.9, "adam_beta_2": 0.999,
        "epsilon": 1e-07, "exclude_layers": [], "muon_a": 3.4445, "muon_b": -4.775,
        "muon_c": 2.0315, "adam_lr_ratio": 1, "momentum": 0.95, "ns_steps": 5,
        "nesterov": True, "exclude_embeddings": True, "adam_weight_decay": 0.004,
        "rms_rate": 0.2})
    assert _same_config(dt.optimizers.Muon.from_config(config).get_config(), config)
    model = dt.Sequential([dt.Input((4,), dtype="int32"), dt.layers.Embedding(10, 6),
                           dt.layers.Flatten(), dt.layers.Dense(5, name="keep"),
                           dt.layers.Dense(2, name="skip_me")])
    opt = dt.optimizers.Muon(exclude_layers=["skip"])
    uses_adamw = {w.path: opt._should_use_adamw(w) for w in model.trainable_weights}
    assert [k for k, v in uses_adamw.items() if not v] == ["sequential/keep/kernel"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"ns_steps": 1.5}, ValueError, "Received: ns_steps=1.5"),
    ({"momentum": 2}, ValueError, "Received: momentum=2"),
    ({"exclude_layers": "dense"}, ValueError, "Received: exclude_layers='dense'"),
    ({"muon_a": "x"}, TypeError, "Received: muon_a='x'"),
    ({"foo": 1}, TypeError, "Unrecognized keyword arguments passed to Muon"),
])
def test_muon_refusals(kwargs, error, message):
    with pytest.raises(error) as info:
        dt.optimizers.Muon(**kwargs)
    assert message in str(info.value)


def test_schedule_free_config_and_refusals():
    opt = dt.optimizers.get("schedulefreeadamw")
    assert _same_config(opt.get_config(), {
        "name": "schedule_free_adam_w", "learning_rate": 0.0025, "weight_decay": None,
        "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
        "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-08, "warmup_steps": 0})
    with pytest.raises(ValueError, match="Received: warmup_steps=-1"):
        dt.optimizers.ScheduleFreeAdamW(warmup_steps=-1)
    with pytest.raises(ValueError, match="Received: beta_1=0"):
        dt.optimizers.ScheduleFreeAdamW(beta_1=0)


def test_schedule_free_z_starts_as_the_weights():
    model = dt.Sequential([dt.Input((3,)), dt.layers.Dense(2)])
    model.compile(dt.optimizers.ScheduleFreeAdamW(), "mse")
    _, slots = model._optimizer_slots()  # (before the engine runs: as Keras builds them)
    np.testing.assert_array_equal(slots[0], model.get_weights()[0])
    np.testing.assert_array_equal(slots[1], 0)
    np.testing.assert_array_equal(slots[2], model.get_weights()[1])
    x, y = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    model.fit(x, y, verbose=0, epochs=0)
    model._set_optimizer_slots(0, None)  # (a file holding the step count alone)
    np.testing.assert_array_equal(model.optimizer.variables[2].numpy(), model.get_weights()[0])


def test_automatic_names_are_kerass():
    # Keras 3.15 names an optimizer after its class in snake case, made unique in the session
    # (keras.optimizers.RMSprop().name is 'rm_sprop', then 'rm_sprop_1').
    dt.utils.clear_session()
    names = [dt.optimizers.SGD().name, dt.optimizers.SGD().name, dt.optimizers.RMSprop().name,
             dt.optimizers.AdamW().name, dt.optimizers.get("adam").name,
             dt.optimizers.ScheduleFreeAdamW().name,
             dt.optimizers.LossScaleOptimizer(dt.optimizers.Lion()).name,
             dt.optimizers.Adam(name="mine").name]
    assert names == ["sgd", "sgd_1", "rm_sprop", "adam_w", "adam", "schedule_free_adam_w",
                     "loss_scale_optimizer", "mine"]
    assert dt.optimizers.Nadam().get_config()["name"] == "nadam"
    dt.utils.clear_session()
    assert dt.optimizers.SGD().name == "sgd"
