"""A run of batches is one parallel region with per-thread shares of every op: results must be
bitwise identical for 1 and 2 threads, for every kind of node, in training and inference."""

import numpy as np
import pytest

import densitron
from densitron import layers
from densitron.models import Model

# Tests that look for the step split across threads (an engine built without OpenMP has one).
ONE_THREAD_ONLY = "densitron was built without OpenMP: one thread only"
needs_threads = pytest.mark.skipif(not densitron.cpu_info()["openmp"], reason=ONE_THREAD_ONLY)


def big_dag():
    # Wide enough that the executor splits the step across threads (~1M multiply-adds a step).
    a = layers.Input(shape=(96,))
    ids = layers.Input(shape=(6,), dtype="int32")
    h = layers.Dense(192, activation="gelu")(a)
    h = layers.BatchNormalization()(h)
    h = layers.Dropout(0.2, seed=5)(h)
    g = layers.Dense(192, activation="tanh")(a)
    g = layers.GaussianNoise(0.1, seed=6)(g)
    m = layers.Multiply()([h, g])
    s = layers.Subtract()([layers.Maximum()([h, g]), layers.Minimum()([h, g])])
    e = layers.Flatten()(layers.SpatialDropout1D(0.3, seed=7)(layers.Embedding(50, 32)(ids)))
    c = layers.Concatenate()([layers.Add()([m, s]), layers.Average()([h, g]), e])
    c = layers.LayerNormalization()(c)
    c = layers.Reshape((12, 48))(layers.Dense(576, activation="relu")(c))
    c = layers.Dense(16, activation="selu")(c)  # on the last axis of a rank-3 tensor
    c = layers.Activation("swish")(layers.Flatten()(c))
    out = layers.Dense(10, activation="softmax")(c)
    reg = layers.Dense(3, kernel_regularizer="l2", kernel_constraint="max_norm")(c)
    return Model([a, ids], [out, reg])


def assert_trains_alike_on_one_and_two_threads(build, x, y, **fit_kwargs):
    """Fits `build()`'s compiled model, built alike after the same seed, on one thread and on
    two; the second must split its steps (profile) and both must end bitwise equal."""
    if not densitron.cpu_info()["openmp"]:
        pytest.skip(ONE_THREAD_ONLY)
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(10)
        model = build()
        h = model.fit(x, y, verbose=0, profile=True, **fit_kwargs)
        assert len(h.profile["barrier_waits"]) == (2 if threads == 2 else 0)  # split or not
        results.append((h.history["loss"], model.get_weights()))
    (loss_1, weights_1), (loss_2, weights_2) = results
    assert loss_1 == loss_2
    for p, q in zip(weights_1, weights_2):
        np.testing.assert_array_equal(p, q)


def run(threads, seed=11):
    densitron.set_num_threads(threads)
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(seed)
    model = big_dag()
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], ["mae"]])
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(256, 96)).astype(np.float32), rng.integers(0, 50, (256, 6))]
    y = [np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)],
         rng.normal(size=(256, 3)).astype(np.float32)]
    hist = model.fit(x, y, batch_size=64, epochs=2, verbose=0).history
    pred = model.predict(x, batch_size=100, verbose=0)
    ev = model.evaluate(x, y, batch_size=50, verbose=0)
    grads = model._compute_gradients(x, y)
    return model.get_weights(), hist, pred, ev, grads


def test_one_and_two_threads_bitwise_equal():
    w1, h1, p1, e1, g1 = run(1)
    w2, h2, p2, e2, g2 = run(2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert e1 == e2
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(h1["loss"]).all()


def test_forked_child_runs_single_threaded_instead_of_hanging():
    # GNU OpenMP's pool does not survive fork(); a child must still compute (on one thread).
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, numpy as np, densitron
        from densitron.layers import Dense, Input
        from densitron.models import Model
        densitron.set_num_threads(2)
        x = np.random.rand(2048, 784).astype(np.float32)
        i = Input(shape=(784,))
        m = Model(i, Dense(10)(Dense(256, activation="relu")(i)))
        ref = m.predict(x, verbose=0)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(m.predict(x, verbose=0), ref) and densitron.get_num_threads() == 1
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "child status 0" in out.stdout, out.stdout + out.stderr


def seed_run(threads, x, y, sw):
    densitron.set_num_threads(threads)
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(3)
    inputs = layers.Input(shape=(784,))
    h = layers.Dense(64, activation="relu")(inputs)
    h = layers.Dense(64, activation="relu")(h)
    model = Model(inputs, layers.Dense(10, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=2, sample_weight=sw, verbose=0).history
    # inference takes whole rows through the cut first kernel
    pred = model.predict(x, batch_size=64, verbose=0)
    return model.get_weights() + [pred], hist


def test_shuffled_seed_model_gathers_ahead_bitwise_equal():
    # At batch 32 the output layer and the loss run on thread 0 alone; meanwhile the other
    # thread copies the next shuffled batch's rows (inputs, targets, sample weights) ahead.
    rng = np.random.default_rng(4)
    rows = 32 * 23 + 7  # a short last batch
    x = rng.random((rows, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, rows)]
    sw = rng.uniform(0.5, 2.0, rows).astype(np.float32)
    w1, h1 = seed_run(1, x, y, sw)
    w2, h2 = seed_run(2, x, y, sw)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2
    assert h1["loss"][1] < h1["loss"][0]


def pixels(seed, rows):
    """rows × 784 uniform floats and one-hot labels of 10 classes."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 784), dtype=np.float32)
    return x, np.eye(10, dtype=np.float32)[rng.integers(0, 10, rows)]


def narrow_run(threads, hidden, batch, x, y, profile=False):
    densitron.set_num_threads(threads)
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(7)
    inputs = layers.Input(shape=(784,))
    h = inputs
    for units in hidden:
        h = layers.Dense(units, activation="relu")(h)
    model = Model(inputs, layers.Dense(10, activation="softmax")(h))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=batch, epochs=2, verbose=0, profile=profile)
    return model, hist


def assert_same_training(m1, h1, m2, h2):
    """Two runs' weights and logs agree bit for bit."""
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history


@needs_threads
def test_steps_of_half_a_million_multiply_adds_take_two_threads():
    # Two threads from ~0.5M multiply-adds a step (forward and backward); the profile lists the
    # barrier waits of each thread only when the step was split.
    x, y = pixels(8, 200)
    split = {}
    for hidden, batch in [((16,), 16), ((32, 32), 32), ((64, 64), 4), ((16,), 8), ((32, 32), 2)]:
        _, hist = narrow_run(2, hidden, batch, x, y, profile=True)
        split[(hidden, batch)] = len(hist.profile["barrier_waits"])
        # thread 0's waiting is its own row, then only
        assert (hist.profile["wait"] > 0.0) == (split[(hidden, batch)] > 0), (hidden, batch)
    assert split == {((16,), 16): 2, ((32, 32), 32): 2, ((64, 64), 4): 2, ((16,), 8): 0,
                     ((32, 32), 2): 0}


def test_large_embedding_tables_split_the_step_bitwise_equal():
    # Few multiply-adds but a large table to step: the update counts toward two threads. Each
    # thread owns a range of the table's rows for its gradient: alike on one and two threads,
    # with ids repeated within a batch and ids at the ends of the table.
    rng = np.random.default_rng(12)
    ids = rng.integers(0, 6000, (320, 20))
    ids[:, 0] = 0
    ids[:, 1] = 5999
    ids[::3, 2] = 17
    y = rng.integers(0, 2, (320, 1)).astype(np.float32)

    def build():
        inp = layers.Input(shape=(20,), dtype="int32")
        h = layers.GlobalAveragePooling1D()(layers.Embedding(6000, 24)(inp))
        model = Model(inp, layers.Dense(1, activation="sigmoid")(h))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, ids, y, batch_size=32, epochs=2)


def test_prelu_bitwise_equal():
    # Its alpha gradient summed per value over the batch in sample order, whatever thread
    # owns the value.
    rng = np.random.default_rng(13)
    x = rng.normal(size=(256, 200)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]

    def build():
        inp = layers.Input(shape=(200,))
        h = layers.Dense(160)(inp)
        h = layers.PReLU(alpha_initializer="random_uniform")(h)
        model = Model(inp, layers.Dense(10, activation="softmax")(h))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=64, epochs=2)


def test_narrow_models_small_batches_bitwise_equal():
    # Small steps that now split across two threads (first kernel cut or not, gather ahead
    # with a few rows a batch, a short last batch) give the one-thread results bit for bit.
    x, y = pixels(9, 16 * 12 + 5)
    for hidden, batch in [((16,), 16), ((32, 32), 8), ((64, 64), 4)]:
        m1, h1 = narrow_run(1, hidden, batch, x, y)
        m2, h2 = narrow_run(2, hidden, batch, x, y)
        assert_same_training(m1, h1, m2, h2)
        assert h1.history["loss"][1] < h1.history["loss"][0]


@needs_threads
def test_column_split_gather_bitwise_equal():
    # Without a solo op (batch 100) each thread gathers the feature columns of the first
    # kernel's row blocks it owns, requesting rows ahead of the copy; a short last batch too.
    x, y = pixels(10, 100 * 5 + 37)
    m1, h1 = narrow_run(1, (64, 64), 100, x, y)
    m2, h2 = narrow_run(2, (64, 64), 100, x, y, profile=True)
    assert len(h2.profile["barrier_waits"]) == 2  # the step was split
    assert_same_training(m1, h1, m2, h2)


def cut_run(threads, width, x, y):
    densitron.set_num_threads(threads)
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(12)
    inputs = layers.Input(shape=(width,))
    h = layers.Dense(48, activation="relu")(inputs)
    model = Model(inputs, layers.Dense(5, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    hist = model.fit(x, y, batch_size=256, epochs=2, verbose=0, profile=True)
    return model, hist


@needs_threads
def test_cut_kernel_partial_sums_bitwise_equal():
    # The partial products of a cut kernel add up in a fixed tree: a thread owning both blocks
    # of a pair adds them in its GEMM, other pairs are added in the final pass, so 1 to 4
    # threads (more than this machine's cores, fine for a test) agree bit for bit. 200 inputs:
    # three blocks; 784: four; 2100: four longer than the GEMM's k block, never added in the
    # GEMM. Two threads own a pair each of 784's blocks, three split its first pair. 11000: a
    # kernel too large to cut (over kMaxCutKernel values), whose products the threads share.
    rng = np.random.default_rng(11)
    for width in (200, 784, 2100, 11000):
        x = rng.normal(size=(256 * 2 + 9, width)).astype(np.float32)
        y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, len(x))]
        m1, h1 = cut_run(1, width, x, y)
        assert h1.history["loss"][1] < h1.history["loss"][0]
        for threads in (2, 3, 4):
            m, h = cut_run(threads, width, x, y)
            assert len(h.profile["barrier_waits"]) > 1  # the step was split
            assert_same_training(m1, h1, m, h)


@needs_threads
def test_cut_kernel_handing_off_to_solo_layers_bitwise_equal():
    # A cut first kernel whose next layer runs solo: thread 0 adds up the partial products of
    # every row itself and goes on, with no barrier after the layer, while the other threads
    # gather ahead at the solo chain's end. 32×32 Dense layers at batch 32 (1024 outputs) run
    # solo, so 784-32-32-10 meets at 5 barriers a step (8 before both): 1, 2 and 3 threads
    # agree bit for bit, over a shuffled epoch with a short last batch.
    x, y = pixels(14, 32 * 9 + 11)
    for hidden in ((32, 32), (32,), (32, 32, 32), (256,)):
        m1, h1 = narrow_run(1, hidden, 32, x, y)
        assert h1.history["loss"][1] < h1.history["loss"][0]
        for threads in (2, 3):
            m, h = narrow_run(threads, hidden, 32, x, y, profile=True)
            assert_same_training(m1, h1, m, h)
            if threads == 2 and hidden != (256,):
                assert h.profile["barriers"] == 5 * h.profile["steps"], hidden


@pytest.mark.parametrize("clip", [{"clipnorm": 0.05}, {"global_clipnorm": 0.05}])
def test_gradient_norm_clipping_bitwise_equal(clip):
    # The norms are summed in fixed blocks of the parameters, whatever the thread count.
    rng = np.random.default_rng(16)
    x = rng.normal(size=(300, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 300)]
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.clear_session()
        densitron.utils.set_random_seed(17)
        inputs = layers.Input(shape=(784,))
        h = layers.Dense(64, activation="relu")(inputs)
        model = Model(inputs, layers.Dense(10, activation="softmax")(h))
        model.compile(optimizer=densitron.optimizers.RMSprop(**clip),
                      loss="categorical_crossentropy")
        hist = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        results.append((model.get_weights(), hist.history))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a, b)
    assert results[0][1] == results[1][1]


def test_auc_counts_alike_on_one_and_two_threads():
    # An AUC's bucket counts are summed per loss block like every metric: the same logs on one
    # thread and on two, and through fit (history) as through evaluate.
    rng = np.random.default_rng(14)
    x = rng.normal(size=(1000, 20)).astype(np.float32)
    y = (x[:, :2] + rng.normal(size=(1000, 2)) > 0).astype(np.float32)
    logs = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(3)
        inp = densitron.layers.Input(shape=(20,))
        h = densitron.layers.Dense(512, activation="relu")(inp)
        model = densitron.models.Model(inp, densitron.layers.Dense(2, activation="sigmoid")(h))
        model.compile(optimizer="adam", loss="binary_crossentropy",
                      metrics=[densitron.metrics.AUC(name="auc"), "accuracy"])
        history = model.fit(x, y, batch_size=256, epochs=2, verbose=0)
        logs.append((history.history, model.evaluate(x, y, batch_size=500, verbose=0,
                                                     return_dict=True)))
    assert logs[0] == logs[1]
    assert logs[0][1]["auc"] > 0.8


def test_new_engine_ops_give_the_same_results_on_one_and_two_threads():
    # A batch's value in the model (x - mean(x)), an arg reduction and IoU/metric-ignore sums
    # in evaluate, RMSNormalization: bitwise the same for 1 and 2 threads.
    from densitron import ops

    rng = np.random.default_rng(31)
    x = rng.normal(size=(600, 48)).astype(np.float32)
    y = rng.integers(0, 4, 600)
    y[::7] = 3

    def build():
        inp = densitron.layers.Input((48,))
        h = densitron.layers.Dense(256, activation="relu")(inp)
        h = densitron.layers.Lambda(lambda t: t - ops.mean(t))(h)
        h = densitron.layers.RMSNormalization()(h)
        out = densitron.layers.Dense(4, activation="softmax")(h)
        model = densitron.models.Model(inp, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=[densitron.metrics.MeanIoU(4, sparse_y_pred=False),
                               densitron.metrics.SparseCategoricalCrossentropy(
                                   ignore_class=3),
                               lambda t, p: ops.cast(ops.equal(t, ops.argmax(p, -1)),
                                                     "float32")])
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=2, batch_size=100)
    logs = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(10)
        logs.append(build().evaluate(x, y, batch_size=100, verbose=0))
    densitron.set_num_threads(2)
    assert logs[0] == logs[1]
