"""Bad input raises a ValueError or TypeError naming the argument and what was received;
unusual but valid arrays (float64, int, Fortran order, strided, read-only) just work."""

import numpy as np
import pytest

import densitron
from densitron import layers, optimizers
from densitron.layers import Dense, Input
from densitron.models import Model, Sequential


def seed_model(compile=True, width=20):
    inputs = Input(shape=(width,))
    x = Dense(8, activation="relu")(inputs)
    model = Model(inputs, Dense(3, activation="softmax")(x))
    if compile:
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def data(rows=40, width=20, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, width)).astype(np.float32),
            np.eye(3, dtype=np.float32)[rng.integers(0, 3, rows)])


def raises(exc, *fragments):
    """pytest.raises that also checks the message names the argument and what was received."""
    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *a):
            handled = self.ctx.__exit__(*a)
            msg = str(self.info.value)
            assert "Received" in msg, msg
            for f in fragments:
                assert f in msg, (f, msg)
            return handled

    return _Ctx()


def test_mismatched_rows():
    x, y = data()
    with raises(ValueError, "cardinality", "40", "39"):
        seed_model().fit(x, y[:39], verbose=0)


def test_feature_count_mismatch():
    x, y = data(width=21)
    with raises(ValueError, "(None, 20)", "(40, 21)"):
        seed_model().fit(x, y, verbose=0)
    with raises(ValueError, "(40, 21)"):
        seed_model().predict(x, verbose=0)


def test_wrong_rank():
    x, y = data()
    with raises(ValueError, "shape (40, 4, 5)"):
        seed_model().fit(x.reshape(40, 4, 5), y, verbose=0)
    with raises(ValueError, "shape (20,)"):
        seed_model().predict(x[0], verbose=0)
    with raises(ValueError, "target", "(40, 3, 1)"):
        seed_model().fit(x, y[:, :, None], verbose=0)


def test_non_numeric_dtype():
    x, y = data()
    with raises(TypeError, "x", "dtype"):
        seed_model().fit(x.astype(str), y, verbose=0)
    with raises(TypeError, "x", "dtype"):
        seed_model().fit(x.astype(object), y, verbose=0)
    with raises(TypeError, "y", "dtype"):
        seed_model().fit(x, y.astype("U3"), verbose=0)
    with raises(TypeError, "x"):
        seed_model().fit("not an array", y, verbose=0)


def test_empty_x():
    x, y = data()
    with raises(ValueError, "at least one sample", "(0, 20)"):
        seed_model().fit(x[:0], y[:0], verbose=0)
    with raises(ValueError, "at least one sample", "(0, 20)"):
        seed_model().evaluate(x[:0], y[:0], verbose=0)


def test_predict_of_no_rows_gives_outputs_of_no_rows():
    # Keras's model(x) and predict_on_batch of no rows give (0, units) (refused before: found
    # by fuzzing); its predict fails on its own bug (UnboundLocalError), densitron's gives
    # the same as model(x). Inputs of other rows beside them are refused.
    x, _ = data()
    model = seed_model()
    for got in (model(x[:0]), model.predict_on_batch(x[:0]), model.predict(x[:0], verbose=0),
                model.predict(x[:0].astype(np.float64), verbose=0, batch_size=4),
                model(x[:0], training=True)):
        assert np.asarray(got).shape == (0, 3) and np.asarray(got).dtype == np.float32
    a, b = Input((3, 2)), Input((5,))
    two = Model([a, b], {"p": layers.Dense(4)(layers.Flatten()(a)),
                         "q": layers.Concatenate()([layers.Flatten()(a), b])})
    out = two.predict([np.zeros((0, 3, 2)), np.zeros((0, 5))], verbose=0)
    assert {k: v.shape for k, v in out.items()} == {"p": (0, 4), "q": (0, 11)}
    with raises(ValueError, "cardinality", "0, 2"):
        two.predict([np.zeros((0, 3, 2)), np.zeros((2, 5))], verbose=0)
    assert Sequential([Dense(2)]).predict(np.zeros((0, 7)), verbose=0).shape == (0, 2)


def test_nan_is_an_error_in_training_and_evaluation_but_passes_through_predict():
    x, y = data()
    x[5, 3] = np.nan
    with raises(ValueError, "NaN", "row 5"):
        seed_model().fit(x, y, verbose=0)
    with raises(ValueError, "NaN", "row 5"):
        seed_model().evaluate(x, y, verbose=0)
    p = seed_model().predict(x, verbose=0)
    assert np.isnan(p[5]).all() and np.isfinite(np.delete(p, 5, axis=0)).all()
    y2 = y.copy()
    y2[7, 0] = np.nan
    with raises(ValueError, "NaN"):
        seed_model().fit(data()[0], y2, verbose=0)
    with raises(ValueError, "NaN", "row 5"):  # met in the first batch when not shuffled
        seed_model().fit(x, y, shuffle=False, verbose=0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shuffle", [True, False])
def test_nan_met_while_gathering_stops_before_its_batch(threads, shuffle):
    # Training checks rows as the engine gathers them (in order when not shuffled): fit stops
    # before the batch holding the NaN, and the weights and the optimizer's state go back to
    # what they were before fit's first step: a refused fit leaves the model as it was.
    rng = np.random.default_rng(5)
    densitron.set_num_threads(threads)
    x = rng.random((32 * 40, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    x[1000, 700] = np.nan
    inp = Input(shape=(784,))
    h = Dense(64, activation="relu")(Dense(64, activation="relu")(inp))
    model = Model(inp, Dense(10, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)  # (an optimizer state to keep)
    w0, (steps0, slots0) = model.get_weights(), model._optimizer_slots()
    with raises(ValueError, "`x` contains NaN", "row 1000"):
        model.fit(x, y, batch_size=32, epochs=3, shuffle=shuffle, verbose=0)
    w1, (steps1, slots1) = model.get_weights(), model._optimizer_slots()
    assert steps1 == steps0 == 2 and int(model.optimizer.iterations) == 2
    for a, b in zip(w0 + slots0, w1 + slots1):
        np.testing.assert_array_equal(a, b)
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)  # and it trains on from there
    assert int(model.optimizer.iterations) == 4


def test_nan_in_a_second_input_or_the_validation_split_is_named():
    rng = np.random.default_rng(6)
    a, b = Input(shape=(3,)), Input(shape=(4,))
    model = Model([a, b], Dense(1)(layers.Concatenate()([a, b])))
    model.compile(optimizer="sgd", loss="mse")
    xa, xb, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 4)), rng.normal(size=(50, 1))
    xb[17, 2] = np.nan
    with raises(ValueError, "`x[1]` contains NaN", "row 17"):
        model.fit([xa, xb], y, batch_size=8, verbose=0)
    # evaluate checks the rows as the engine gathers them, in passes of many batches
    with raises(ValueError, "`x[1]` contains NaN", "row 17"):
        model.evaluate([xa, xb], y, batch_size=8, verbose=0)
    xb[17, 2] = 0.0
    xa[45, 0] = np.nan  # in the last 20% that validation_split holds out
    with raises(ValueError, "`x[0]` contains NaN", "row 45"):
        model.fit([xa, xb], y, validation_split=0.2, verbose=0)


def test_unknown_names():
    with raises(ValueError, "optimizer='adamax2'"):
        seed_model(compile=False).compile(optimizer="adamax2", loss="mse")
    with raises(ValueError, "loss='crossentropy_typo'"):
        seed_model(compile=False).compile(optimizer="sgd", loss="crossentropy_typo")
    with raises(ValueError, "activation='rellu'"):
        Dense(3, activation="rellu")
    with raises(ValueError, "activation='rellu'"):
        layers.Activation("rellu")
    x, y = data()
    model = seed_model(compile=False)
    model.compile(loss="categorical_crossentropy", metrics=["accuracyy"])
    with raises(ValueError, "metric='accuracyy'"):
        model.fit(x, y, verbose=0)
    for bad, expect in ((object(), "metric=<object"),
                        ({"class_name": "Perplexity", "config": {}}, "class_name='Perplexity'"),
                        ({"class_name": "IoU", "config": {}},
                         "config={'class_name': 'IoU', 'config': {}}")):
        model.compile(loss="categorical_crossentropy", metrics=[bad])
        with raises(ValueError, expect):
            model.fit(x, y, verbose=0)
    # A metric that reads a target per predicted value, given class ids (one per row): the
    # engine would read past the targets. ("accuracy" resolves to the sparse one.)
    sparse_y = np.argmax(y, axis=1)
    for metric in ("mse", "binary_accuracy", densitron.metrics.Precision(name="p")):
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy", metric])
        with raises(ValueError, "same shape", f"y with shape {sparse_y.shape}"):
            model.evaluate(x, sparse_y, verbose=0)
    # The other way: a metric that reads a class id per row, given one-hot targets (the top-k
    # one would read a prediction at whatever value it took for the id). Keras raises too.
    for metric in ("sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
                   densitron.metrics.SparseCategoricalCrossentropy()):
        model.compile(loss="categorical_crossentropy", metrics=[metric])
        with raises(ValueError, "one integer class id per row", f"y with shape {y.shape}"):
            model.evaluate(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy",
                  metrics=[densitron.metrics.Precision(class_id=y.shape[1])])
    with raises(ValueError, f"class_id={y.shape[1]}"):
        model.evaluate(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy",
                  metrics=[densitron.metrics.PrecisionAtRecall(0.5, class_id=y.shape[1])])
    with raises(ValueError, f"class_id={y.shape[1]}"):
        model.evaluate(x, y, verbose=0)
    with raises(ValueError, "class_id=3"):
        densitron.metrics.RecallAtPrecision(0.5, class_id=3).update_state(y[:, :3], y[:, :3])
    with raises(ValueError, "RecallAtPrecision"):  # a class uninstantiated has no value
        model.compile(loss="categorical_crossentropy",
                      metrics=[densitron.metrics.RecallAtPrecision])
    with raises(ValueError, "label_smoothing=0.1"):
        densitron.metrics.CategoricalCrossentropy(label_smoothing=0.1)
    with raises(TypeError, "threshold='high'"):
        densitron.metrics.BinaryAccuracy(threshold="high")
    with raises(ValueError, "initializer='glorot'"):
        Dense(3, kernel_initializer="glorot")


def test_fit_or_evaluate_before_compile():
    x, y = data()
    with raises(ValueError, "compile()"):
        seed_model(compile=False).fit(x, y, verbose=0)
    with raises(ValueError, "compile()"):
        seed_model(compile=False).evaluate(x, y, verbose=0)
    with raises(ValueError, "compile()"):
        seed_model(compile=False).train_on_batch(x, y)
    # predict needs no compile
    assert seed_model(compile=False).predict(x, verbose=0).shape == (40, 3)


def test_bad_batch_size_and_arguments():
    x, y = data()
    with raises(ValueError, "batch_size=0"):
        seed_model().fit(x, y, batch_size=0, verbose=0)
    with raises(TypeError, "validation_batch_size='8'"):  # checked with no validation data too
        seed_model().fit(x, y, validation_batch_size="8", verbose=0)
    with raises(ValueError, "batch_size=-3"):
        seed_model().predict(x, batch_size=-3, verbose=0)
    with raises(TypeError, "batch_size=2.5"):
        seed_model().evaluate(x, y, batch_size=2.5, verbose=0)
    with raises(ValueError, "epochs=-1"):
        seed_model().fit(x, y, epochs=-1, verbose=0)
    with raises(ValueError, "verbose=3"):
        seed_model().fit(x, y, verbose=3)
    with raises(ValueError, "validation_split=1.5"):
        seed_model().fit(x, y, validation_split=1.5, verbose=0)
    with raises(ValueError, "units=0"):
        Dense(0)
    with raises(ValueError, "units='8'"):
        Dense("8")
    with raises(ValueError, "learning_rate=-0.1"):
        optimizers.RMSprop(learning_rate=-0.1)
    with raises(ValueError, "shape=(0,)"):
        Input(shape=(0,))
    with raises(ValueError, "shape=None"):
        Input()


def test_layer_called_on_non_tensor():
    with raises(TypeError, "inputs="):
        Dense(3)("hello")
    with raises(TypeError, "inputs="):
        Dense(3)(Dense(2))
    with raises(TypeError, "inputs="):
        Dense(3)(None)


def test_outputs_that_do_not_depend_on_the_inputs():
    a, b = Input(shape=(4,)), Input(shape=(4,))
    out = Dense(2)(b)
    with raises(ValueError, "Graph disconnected"):
        Model(inputs=a, outputs=out)
    assert len(Model(inputs=[a, b], outputs=out).inputs) == 2  # kept unused, as Keras
    with raises(ValueError, "output"):
        Model(inputs=a, outputs=a)
    with raises(TypeError, "outputs"):
        Model(inputs=a, outputs=np.zeros((2, 2)))
    with raises(TypeError, "inputs"):
        Model(inputs="x", outputs=out)


def test_layer_wrong_width_or_rank_at_graph_build_time():
    d = Dense(3)
    d(Input(shape=(4,)))
    with raises(ValueError, "dense", "expected axis -1", "(None, 5)"):
        d(Input(shape=(5,)))
    with raises(ValueError, "(None, 4)", "(None, 5)"):
        layers.Add()([Input(shape=(4,)), Input(shape=(5,))])


def test_sparse_labels_validated():
    inputs = Input(shape=(20,))
    model = Model(inputs, Dense(3, activation="softmax")(inputs))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, _ = data()
    with raises(ValueError, "[0, 3)", "to 3"):
        model.fit(x, np.arange(40) % 4, verbose=0)
    with raises(ValueError, "integers"):
        model.fit(x, np.full(40, 0.5), verbose=0)
    h = model.fit(x, np.arange(40) % 3, verbose=0)
    assert "accuracy" in h.history
    # integer ids of any width, as a column or not, and in generator batches (the fast path's
    # cases); bad ones there raise as from arrays
    with raises(ValueError, "[0, 3)", "from -1"):
        model.fit(x, np.arange(40) % 3 - 1, verbose=0)
    ids = np.arange(40) % 3
    weights = model.get_weights()
    results = []
    for y in (ids, ids.astype(np.uint8).reshape(-1, 1), ids.astype(np.int16)):
        model.set_weights(weights)
        results.append(model.evaluate(x, y, verbose=0))
    assert results[0] == results[1] == results[2]

    def batches(y):
        for i in range(0, 40, 10):
            yield x[i:i + 10], y[i:i + 10]

    with raises(ValueError, "[0, 3)", "to 7"):
        model.fit(batches(np.where(np.arange(40) == 25, 7, ids)), verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):  # (Keras warns at a generator's end)
        model.fit(batches(ids), verbose=0)


def test_sequential_bad_add():
    model = Sequential()
    with raises(ValueError, "layer="):  # (as Keras)
        model.add("dense")
    model.add(Dense(2, name="d"))
    with raises(ValueError, "unique names"):
        model.add(Dense(2, name="d"))


@pytest.mark.parametrize("variant", ["float64", "int", "fortran", "strided", "readonly", "list"])
def test_unusual_arrays_just_work(variant):
    x, y = data()
    ref_model = seed_model()
    weights = ref_model.get_weights()
    expected = ref_model.predict(x, verbose=0)
    if variant == "float64":
        xv = x.astype(np.float64)
    elif variant == "int":
        x = np.round(x * 3).astype(np.float32)
        expected = ref_model.predict(x, verbose=0)
        xv = x.astype(np.int32)
    elif variant == "fortran":
        xv = np.asfortranarray(x)
    elif variant == "strided":
        big = np.zeros((80, 40), np.float32)
        big[::2, ::2] = x
        xv = big[::2, ::2]
    elif variant == "readonly":
        xv = x.copy()
        xv.setflags(write=False)
    else:
        xv = x.tolist()
    np.testing.assert_allclose(ref_model.predict(xv, verbose=0), expected, rtol=1e-6, atol=1e-7)
    ref_model.fit(xv, y, epochs=1, verbose=0)
    ref_model.set_weights(weights)
    assert np.isfinite(ref_model.evaluate(xv, y, verbose=0)[0])


def test_set_weights_checks_shapes_and_keeps_old_values():
    model = seed_model()
    old = model.get_weights()
    bad = [w.copy() for w in old]
    bad[2] = np.zeros((3, 8))
    with raises(ValueError, "(3, 8)"):
        model.set_weights(bad)
    with raises(ValueError, "length 2"):
        model.set_weights(old[:2])
    for a, b in zip(model.get_weights(), old):
        assert np.array_equal(a, b)


def test_callbacks_must_be_callbacks():
    x, y = data()
    with raises(TypeError, "callbacks"):
        seed_model().fit(x, y, callbacks=[5], verbose=0)


@pytest.mark.parametrize("make", [
    lambda: Dense(3, activation=5),
    lambda: Dense(3, kernel_initializer=7),
    lambda: Dense(3, kernel_regularizer="l3"),
    lambda: Dense(3, kernel_constraint=lambda w: w),
    lambda: layers.Concatenate(axis=0)([Input(shape=(2,)), Input(shape=(2,))]),
    lambda: layers.Reshape((-1, -1)),
    lambda: layers.Embedding(0, 3),
    lambda: layers.BatchNormalization(momentum="x"),
    lambda: layers.BatchNormalization(epsilon=-1),
    lambda: layers.LayerNormalization(epsilon="e"),
    lambda: layers.Dropout(1.5),
    lambda: layers.AlphaDropout(1.0),
    lambda: layers.GaussianNoise(-1),
    lambda: layers.GaussianDropout(1.0),
    lambda: layers.ActivityRegularization(l1=-1.0),
    lambda: Input(shape=(3, 0)),
    lambda: Input(shape="3"),
    lambda: Input(shape=(3,), dtype="complex64"),
    lambda: layers.Add()([Input(shape=(2,)), "x"]),
    lambda: layers.Softmax(axis=0)(Input(shape=(3,))),
    lambda: layers.Softmax(axis=5)(Input(shape=(3,))),
    lambda: layers.ReLU(max_value=-1),
    lambda: optimizers.SGD(momentum=2),
    lambda: optimizers.Adam(beta_1="x"),
    lambda: optimizers.RMSprop(clipnorm=-1.0),
    lambda: optimizers.SGD(clipvalue="1"),
    lambda: optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0),
    lambda: optimizers.Ftrl(learning_rate_power=0.5),
    lambda: optimizers.Ftrl(l1_regularization_strength=-1.0),
    lambda: optimizers.Ftrl(beta="0"),
    lambda: densitron.losses.CategoricalCrossentropy(label_smoothing=1.5),
    lambda: densitron.losses.BinaryCrossentropy(label_smoothing=-0.1),
    lambda: densitron.losses.CategoricalCrossentropy(label_smoothing="0.1"),
    lambda: densitron.losses.SparseCategoricalCrossentropy(label_smoothing=0.1),  # as Keras
    lambda: densitron.losses.Huber(delta=0.0),
    lambda: densitron.losses.Huber(delta=float("nan")),
    lambda: densitron.losses.Huber(delta="1"),
    lambda: densitron.losses.CosineSimilarity(axis=0),
    lambda: densitron.metrics.CosineSimilarity(axis="1"),
    lambda: densitron.metrics.TopKCategoricalAccuracy(k=0),
    lambda: densitron.metrics.TopKCategoricalAccuracy(k=2.5),
    lambda: densitron.metrics.SparseTopKCategoricalAccuracy(from_sorted_ids=True),
    lambda: densitron.metrics.AUC(num_thresholds=1),
    lambda: densitron.metrics.AUC(thresholds=[0.5, 0.2]),
    lambda: densitron.metrics.AUC(thresholds=[0.5, 1.5]),
    lambda: densitron.metrics.AUC(thresholds=["a"]),
    lambda: densitron.metrics.AUC(num_labels=3),
    lambda: densitron.metrics.AUC(label_weights=[-1.0, 1.0]),
    lambda: densitron.metrics.AUC(curve="XY"),
    lambda: densitron.metrics.AUC(summation_method="riemann"),
    lambda: densitron.metrics.R2Score(class_aggregation="median"),
    lambda: densitron.metrics.Precision(top_k=0),
    lambda: densitron.metrics.Recall(class_id=-1),
    lambda: densitron.metrics.Precision(thresholds=[0.5, 1.5]),
    lambda: densitron.metrics.Recall(thresholds=[]),
    lambda: densitron.metrics.R2Score(num_regressors=-1),
    lambda: densitron.metrics.F1Score(average="mean"),
    lambda: densitron.metrics.F1Score(threshold=1.5),
    lambda: densitron.metrics.FBetaScore(beta=2),
    lambda: densitron.metrics.SensitivityAtSpecificity(1.5),
    lambda: densitron.metrics.SpecificityAtSensitivity(-0.1),
    lambda: densitron.metrics.PrecisionAtRecall("0.5"),
    lambda: densitron.metrics.RecallAtPrecision(0.5, num_thresholds=0),
    lambda: densitron.metrics.RecallAtPrecision(0.5, num_thresholds=2.5),
    lambda: densitron.metrics.PrecisionAtRecall(0.5, class_id=-1),
    lambda: densitron.metrics.get("sensitivity_at_specificity"),
    lambda: densitron.metrics.get(densitron.metrics.PrecisionAtRecall),
    lambda: densitron.set_num_threads(-1),
    lambda: densitron.set_num_threads("2"),
    lambda: densitron.utils.set_random_seed(-5),
    lambda: densitron.utils.set_random_seed(1.5),
    lambda: densitron.datasets.digits.load_data(test_split=1.5),
])
def test_bad_arguments_raise_with_received(make):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert "Received" in str(info.value), str(info.value)


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu",
                                 "selu", "softplus", "leaky_relu", "relu6", "silu", "mish",
                                 "hard_sigmoid", "log_softmax", "exponential"])
def test_nan_propagates_through_every_activation_in_predict(act):
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    x[1, 2] = np.nan
    inp = Input(shape=(4,))
    p = Model(inp, Dense(5, activation=act)(inp)).predict(x, verbose=0)
    assert np.isnan(p[1]).all()  # as Keras: a NaN input never turns into a finite output
    assert np.isfinite(p[[0, 2]]).all()


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(beta_1="x"),
    lambda: optimizers.SGD(clipvalue="1"),
    lambda: optimizers.RMSprop(rho=None),
    lambda: optimizers.Ftrl(beta="0"),
    lambda: optimizers.schedules.ExponentialDecay("0.1", 100, 0.9),
    lambda: optimizers.schedules.CosineDecay(0.1, decay_steps=True),
])
def test_optimizer_and_schedule_arguments_that_are_not_numbers_raise_type_error(make):
    with pytest.raises(TypeError, match="must be a number. Received"):
        make()


def test_loss_weights_must_be_numbers():
    model = densitron.Sequential([layers.Input((3,)), layers.Dense(2)])
    for bad in (["accuracy"], {"dense": "high"}, [True]):
        with pytest.raises(ValueError, match=r"`loss_weights` must be numbers.*Received: "
                                             r"loss_weights="):
            model.compile("adam", "mse", bad)


def test_rms_normalization_arguments():
    with pytest.raises(ValueError, match=r"one axis. Received: axis=\[1, 2\]$"):
        layers.RMSNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match=r"Received: epsilon=-1"):
        layers.RMSNormalization(epsilon=-1)
    with pytest.raises(ValueError, match=r"Received: axis=0"):
        layers.RMSNormalization(axis=0)(layers.Input((3,)))
    assert layers.RMSNormalization(axis=[-1]).get_config()["axis"] == [-1]  # (Keras's, built)


def test_an_optimizer_subclass_with_its_own_update_step_is_refused_clearly():
    class MySGD(optimizers.Optimizer):
        def __init__(self, learning_rate=0.01, name="mysgd", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)

        def update_step(self, gradient, variable, learning_rate):
            variable.assign(variable - learning_rate * gradient)

    model = Sequential([Input((4,)), Dense(1)])
    model.compile(optimizer=MySGD(), loss="mse")
    with pytest.raises(ValueError, match=r"update_step in Python. Received: optimizer "
                                         r"MySGD\(name='mysgd'\)"):
        model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)


def test_a_regularizer_or_constraint_written_in_python_is_refused_not_ignored():
    # The engine computes l1/l2 penalties and its own constraints: a subclass computing in
    # __call__ would otherwise be silently skipped in training.
    from densitron import constraints, ops, regularizers

    class Penalty(regularizers.Regularizer):  # (an L2 norm, not squared: no l1/l2 form)
        def __call__(self, x):
            return 0.01 * ops.sqrt(ops.sum(ops.square(x)))

    class Clip(constraints.Constraint):
        def __call__(self, w):
            return ops.clip(w, -0.5, 0.5)

    class SetsL2(regularizers.Regularizer):  # (one that sets l1/l2 runs in the engine)
        l2 = 0.05

    with pytest.raises(ValueError, match=r"l1·sum\(\|x\|\) \+ l2·sum\(x²\).*Received: "
                                         r"regularizer 'Penalty'$"):
        Dense(2, kernel_regularizer=Penalty())
    with pytest.raises(ValueError, match=r"Received: constraint Clip$"):
        Dense(2, kernel_constraint=Clip())
    layer = Dense(2, kernel_regularizer=SetsL2())
    model = Sequential([Input((3,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    w = layer.get_weights()[0].astype(np.float64)
    x = np.zeros((4, 3), np.float32)
    np.testing.assert_allclose(model.evaluate(x, np.zeros((4, 2)), verbose=0),
                               0.05 * np.sum(w ** 2), rtol=1e-5)


def test_layer_arguments_of_the_wrong_kind_are_named():
    # found by fuzzing the layers' constructors: each used to fail deep inside with a bare
    # TypeError ('float' object is not iterable, '<' not supported, unhashable type)
    from densitron import layers

    for bad in (1.5, 3, True, "x", [1.5]):
        with pytest.raises(ValueError, match="Received: input_shape="):
            layers.Dense(2, input_shape=bad)
    with pytest.raises(ValueError, match="Received: input_dim=0"):
        layers.Dense(2, input_dim=0)
    assert layers.Dense(2, input_shape=[4])._input_shape_arg == (4,)
    for arg in ("max_value", "negative_slope", "threshold"):
        with pytest.raises(ValueError, match=f"Received: {arg}="):
            layers.ReLU(**{arg: {}})
    with pytest.raises(ValueError, match="Received: negative_slope=\\[\\]"):
        layers.LeakyReLU(negative_slope=[])
    with pytest.raises(ValueError, match="Received: output_mode=\\{\\}"):
        layers.CategoryEncoding(num_tokens=3, output_mode={})
    from densitron.layers.math_ops import Slice

    with pytest.raises(TypeError, match="Received: start=-0.5"):
        Slice(start=-0.5)
    with pytest.raises(ValueError, match="Received: step=0"):
        Slice(step=0)


def test_arguments_of_the_wrong_kind_named_across_the_api():
    # found by fuzzing the constructors of initializers, constraints, losses, metrics,
    # schedules and callbacks: each failed with a bare TypeError, a NumPy error or a pybind11
    # cast error
    from densitron import callbacks, constraints, initializers, losses, metrics, optimizers

    cases = [
        (lambda: initializers.RandomUniform(minval="x"), TypeError, "Received: minval='x'"),
        (lambda: initializers.RandomUniform(1.0, 0.0), ValueError, "Received: minval=1.0"),
        (lambda: initializers.RandomNormal(stddev=[]), TypeError, "Received: stddev=\\[\\]"),
        (lambda: initializers.GlorotUniform(seed="a"), ValueError, "Received: seed='a'"),
        (lambda: initializers.HeNormal(seed=-1), ValueError, "Received: seed=-1"),
        (lambda: initializers.Orthogonal(seed=0.5), ValueError, "Received: seed=0.5"),
        (lambda: initializers.VarianceScaling(scale={}), TypeError, "Received: scale=\\{\\}"),
        (lambda: initializers.VarianceScaling(mode=[]), ValueError, "Received: mode=\\[\\]"),
        (lambda: initializers.Constant("x"), TypeError, "Received: value='x'"),
        (lambda: initializers.Initializer()((2, 2)), NotImplementedError, "Received: shape="),
        (lambda: constraints.UnitNorm(axis=0.0), ValueError, "Received: axis=0.0"),
        (lambda: constraints.MaxNorm("auto"), TypeError, "Received: max_value='auto'"),
        (lambda: constraints.MinMaxNorm(max_value=None), TypeError, "Received: max_value"),
        (lambda: losses.Poisson(reduction=[1]), ValueError, "Received: reduction=\\[1\\]"),
        (lambda: losses.get(losses.Loss()), NotImplementedError, "Received: loss=Loss"),
        (lambda: optimizers.schedules.PiecewiseConstantDecay(1.5, [1, 2]), TypeError,
         "Received: boundaries=1.5"),
        (lambda: metrics.OneHotIoU(3, target_class_ids=1.5), ValueError,
         "Received: target_class_ids=1.5"),
        (lambda: callbacks.ReduceLROnPlateau(patience=1.5), TypeError, "Received: patience"),
        (lambda: callbacks.ReduceLROnPlateau(min_delta=[]), TypeError, "Received: min_delta"),
        (lambda: callbacks.ReduceLROnPlateau(factor=(2,)), TypeError, "Received: factor"),
        (lambda: callbacks.EarlyStopping(monitor=1.5), TypeError, "Received: monitor=1.5"),
        (lambda: callbacks.EarlyStopping(patience="x"), TypeError, "Received: patience='x'"),
        (lambda: callbacks.EarlyStopping(patience=np.inf), TypeError, "Received: patience=inf"),
        (lambda: metrics.AUC(label_weights="relu"), ValueError,
         "Received: label_weights='relu'"),
        (lambda: callbacks.TensorBoard(log_dir=3), TypeError, "Received: log_dir=3"),
        (lambda: callbacks.CSVLogger(3), TypeError, "Received: filename=3"),
        (lambda: callbacks.ModelCheckpoint(None), TypeError, "Received: filepath=None"),
        (lambda: callbacks.LambdaCallback(on_train_begin=1), TypeError,
         "Received: on_train_begin=1"),
    ]
    for make, error, match in cases:
        with pytest.raises(error, match=match):
            make()
    assert metrics.Metric().name == "metric"  # Keras's default name, not None
    assert callbacks.EarlyStopping(patience=np.int64(3)).patience == 3
    assert constraints.UnitNorm(axis=np.int64(0)).axis == 0


def test_model_methods_with_arguments_of_the_wrong_kind(tmp_path):
    # found by fuzzing the model's methods
    from densitron import Input, layers
    from densitron.models import Model

    inp = Input((4,))
    model = Model(inp, layers.Dense(1, name="only")(inp))
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)
    for bad in (1.5, True, None, "abc"):
        with pytest.raises(TypeError, match="Received: weights="):
            model.set_weights(bad)
        with pytest.raises(TypeError, match="Received: weights="):
            model.layers[1].set_weights(bad)
    for call in (model.save, model.save_weights, model.load_weights):
        with pytest.raises(TypeError, match="Received: filepath=1.5"):
            call(1.5)
    with pytest.raises(TypeError, match="Received: filepath=None"):
        densitron.models.load_model(None)
    with pytest.raises(TypeError, match="Received: print_fn=3"):
        model.summary(print_fn=3)
    with pytest.raises(TypeError, match="Received: index=\\(2,\\)"):
        model.get_layer(index=(2,))
    for bad in (np.ones(3), None, 3.5):
        with pytest.raises(ValueError, match="Received: name="):
            model.get_layer(bad)
    assert model.get_layer("only") is model.layers[1]
    with pytest.raises(TypeError, match="Received: validation_batch_size=array"):
        model.fit(x, y, validation_split=0.5, validation_batch_size=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="Received: class_weight\\[0\\]='x'"):
        model.fit(x, y, class_weight={0: "x"}, verbose=0)
    for call in (lambda **k: model.fit(x, y, **k), lambda **k: model.evaluate(x, y, **k),
                 lambda **k: model.predict(x, **k)):
        for bad in (3, np.nan, True, np.ones(3)):
            with pytest.raises(TypeError, match="Received: callbacks="):
                call(callbacks=bad, verbose=0)
        for bad in (np.ones(3), {}, "loud", 1.5, None):
            with pytest.raises(ValueError, match="Received: verbose="):
                call(verbose=bad)


def test_keras_layers_densitron_does_not_provide_say_so():
    for name, kind in (("RandomHue", "image or audio preprocessing"),
                       ("TorchModuleWrapper", "wrapper"),
                       ("ReversibleEmbedding", "layer ReversibleEmbedding"),
                       ("Cropping3D", "volumetric"),
                       ("SpectralNormalization", "layer SpectralNormalization")):
        with pytest.raises(AttributeError, match=f"Keras's {kind}.*Received: densitron"):
            getattr(densitron.layers, name)
        assert not hasattr(densitron.layers, name)
    with pytest.raises(AttributeError, match="^module 'densitron.layers' has no attribute "
                                             "'Dens'$"):
        densitron.layers.Dens  # noqa: B018


def test_arguments_keras_refuses_at_construction():
    # found by fuzzing: each was accepted, to fail late (a NaN loss, a (-1, 3) shape, an .h5
    # file that cannot be written, a .keras file Keras cannot read)
    with raises(ValueError, "Invalid value for argument l2", "Received: l2=nan"):
        densitron.regularizers.L2(float("nan"))
    with raises(ValueError, "negative dimensions", "Received: batch_size=-1"):
        Input((3,), batch_size=-1)
    with raises(ValueError, "cannot contain character `/`", "Received: name=a/b"):
        Dense(2, name="a/b")
    with raises(ValueError, "cannot contain character `/`", "Received: name=s/x"):
        Sequential(name="s/x")
    with raises(ValueError, "should be a positive integer", "Received: n=0"):
        layers.RepeatVector(0)


def test_a_metric_that_cannot_be_traced_is_named_a_metric():
    # (the message called it a loss and ended "Received: loss=...")
    model = Sequential([Input((4,)), Dense(1)])
    model.compile("sgd", "mse", metrics=[lambda a, b: np.asarray(a).sum()])
    with raises(ValueError, "densitron runs the metric", "Received: metric='<lambda>'"):
        model.fit(np.ones((4, 4)), np.ones((4, 1)), verbose=0)


def test_batch_sizes_beyond_the_rows_are_one_batch():
    # found by fuzzing: a batch size near 2**63 overflowed the engine's row arithmetic:
    # predict returned its output unwritten, evaluate divided by zero, fit's 2**63 was refused
    # with pybind's message. Keras runs them as one batch.
    inp = Input((4,))
    m = Model(inp, Dense(3, kernel_initializer="zeros", bias_initializer="ones")(inp))
    m.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((1000, 4), np.float32), np.full((1000, 3), 2.0, np.float32)
    for bs in (2**63 - 1, 2**63, 2**62 + 5, 10**30):
        np.testing.assert_array_equal(m.predict(x, batch_size=bs, verbose=0), 1.0)
        assert m.evaluate(x, y, batch_size=bs, verbose=0) == pytest.approx(1.0)
    before = [w.copy() for w in m.get_weights()]
    m.fit(x, y, batch_size=2**63, epochs=1, verbose=0, shuffle=False)
    one = Model.from_config(m.get_config())
    one.set_weights(before)
    one.compile(optimizer="sgd", loss="mse")
    one.fit(x, y, batch_size=1000, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), one.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bools_where_keras_takes_integers_are_the_integers():
    # Keras takes fit's, evaluate's and predict's integer arguments as Python's bools are
    # ints: verbose=True is 1, epochs=True one epoch, batch_size=True batches of one row
    # (refused before: found by fuzzing). A False where 0 is refused stays refused by name.
    x, y = data(rows=8)
    model = seed_model()
    weights = model.get_weights()
    history = model.fit(x, y, verbose=False, epochs=True, batch_size=True, shuffle=False,
                        initial_epoch=False, steps_per_epoch=None, validation_freq=True)
    assert len(history.history["loss"]) == 1 and int(model.optimizer.iterations) == 8
    ones = seed_model()
    ones.set_weights(weights)
    ones.fit(x, y, verbose=0, epochs=1, batch_size=1, shuffle=False)
    for a, b in zip(model.get_weights(), ones.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.fit(x, y, verbose=0, epochs=False).history == {}
    assert model.fit(x, y, verbose=np.True_, epochs=1, steps_per_epoch=True,
                     validation_data=(x, y), validation_steps=True,
                     validation_batch_size=True).epoch == [0]
    assert model.evaluate(x, y, verbose=True, batch_size=True, steps=True) == \
        model.evaluate(x[:1], y[:1], verbose=0)
    assert model.predict(x, verbose=True, batch_size=True, steps=True).shape == (1, 3)
    for call in (lambda: model.fit(x, y, batch_size=False, verbose=0),
                 lambda: model.predict(x, batch_size=False, verbose=0)):
        with raises(TypeError, "Received: batch_size=False"):
            call()
    with raises(ValueError, "Received: steps=False"):
        model.evaluate(x, y, steps=False, verbose=0)


def test_a_single_callback_is_a_list_of_it():
    # Keras's CallbackList flattens callbacks=SomeCallback() to [it] (refused before: found by
    # fuzzing)
    x, y = data(rows=8)
    seen = []

    class Record(densitron.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch", epoch))

        def on_test_end(self, logs=None):
            seen.append("test")

        def on_predict_end(self, logs=None):
            seen.append("predict")

    model = seed_model()
    history = densitron.callbacks.History()
    assert model.fit(x, y, epochs=2, verbose=0, callbacks=history) is history
    model.fit(x, y, epochs=2, verbose=0, callbacks=Record())
    model.evaluate(x, y, verbose=0, callbacks=Record())
    model.predict(x, verbose=0, callbacks=Record())
    assert seen == [("epoch", 0), ("epoch", 1), "test", "predict"]


def test_targets_of_an_output_without_a_loss_are_not_read():
    # compile(loss=["mse", None]): Keras reads no targets of the second output: any shape,
    # NaN or labels train and evaluate as None there (densitron checked their shape: found by
    # fuzzing); their rows must still match. With a metric on that output they are read.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=(16, 1))

    def two_outputs(metrics=None):
        densitron.utils.set_random_seed(1)
        inp = Input((4,))
        model = Model(inp, [Dense(1)(inp), Dense(3)(inp)])
        model.compile(optimizer="sgd", loss=["mse", None], metrics=metrics)
        return model

    plain = two_outputs()
    want = plain.evaluate(x, [y, None], verbose=0)
    trained = plain.fit(x, [y, None], verbose=0, shuffle=False).history
    for other in (np.zeros((16, 7)), rng.integers(0, 3, 16), np.full((16, 3), np.nan)):
        model = two_outputs()
        assert model.evaluate(x, [y, other], verbose=0) == want
        assert model.test_on_batch(x, [y, other]) == want
        assert model.fit(x, [y, other], verbose=0, shuffle=False).history == trained
    with raises(ValueError, "cardinality", "16, 10"):
        two_outputs().fit(x, [y, np.zeros((10, 3))], verbose=0)
    with raises(ValueError, "same shape", "(16, 7)"):
        two_outputs([None, ["mae"]]).evaluate(x, [y, np.zeros((16, 7))], verbose=0)


def test_arguments_keras_refuses_or_fails_on_are_refused_clearly():
    # found by fuzzing: Keras refuses trainable="x" (ValueError); Adam(loss_scale_factor=0)
    # trains Keras's weights to NaN (the loss times 0, the gradients divided by 0)
    for bad in ("x", 1, None, np.True_):
        with raises(ValueError, "Expected `trainable` to be a boolean", f"trainable={bad}"):
            Dense(3, trainable=bad)
    for bad in (0, 0.0, float("inf"), float("nan"), False):
        with raises(ValueError, "loss_scale_factor", f"loss_scale_factor={bad!r}"):
            optimizers.Adam(loss_scale_factor=bad)
    with raises(TypeError, "loss_scale_factor='x'"):
        optimizers.SGD(loss_scale_factor="x")
    for fine in (None, 8.0, -2, True):
        optimizers.Adam(loss_scale_factor=fine)


def test_numbers_too_large_are_refused_by_name():
    # found by fuzzing: pybind's "incompatible function arguments" and NumPy's "Maximum
    # allowed dimension exceeded" named no argument
    for n in (2**31, 2**40):
        with raises(ValueError, f"`n` must be a positive integer below 2**31", f"n={n}"):
            densitron.set_num_threads(n)
    for units in (2**61, 10**30):
        with raises(ValueError, "`units`", f"units={units}"):
            Dense(units)
    with raises(ValueError, "weight `kernel` of shape (4, 576460752303423488)"):
        Dense(2**59)(Input((4,)))
