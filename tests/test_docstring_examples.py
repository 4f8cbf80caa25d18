"""Keras's own docstring examples (keras/src, Keras 3.15), run with densitron in Keras's place:
the values, shapes and dtypes its docstrings print. Where the docstring shows no value, or to
check more cases than it shows, Keras itself computes the expected values (the `keras`
fixture of conftest.py: its numpy backend, the test skipped without it)."""

import densitron
import numpy as np
import pytest
from densitron import ops

# Keras's own Variable.__array__ predates NumPy 2's `copy` keyword (keras/src/backend/common/
# variables.py); NumPy warns each time Keras converts a variable. Ignored for Keras's modules only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras")


# --- losses ------------------------------------------------------------------------------------

def test_dice_docstring_example_on_lists():
    # keras/src/losses/losses.py, dice: nested lists, summed over axis (1, 2, 3) or everything
    y_true = [[[[1.0], [1.0]], [[0.0], [0.0]]],
              [[[1.0], [1.0]], [[0.0], [0.0]]]]
    y_pred = [[[[0.0], [1.0]], [[0.0], [1.0]]],
              [[[0.4], [0.0]], [[0.0], [0.9]]]]
    loss = densitron.losses.dice(y_true, y_pred, axis=(1, 2, 3))
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, [0.5, 0.75757575], rtol=1e-6)
    loss = densitron.losses.dice(y_true, y_pred)
    assert np.shape(loss) == ()
    np.testing.assert_allclose(loss, 0.6164384, rtol=1e-6)


def test_tversky_and_generalized_cross_entropy_take_lists(keras):
    y_true = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    y_pred = [[0.9, 0.2, 0.6], [0.1, 0.7, 0.4]]
    np.testing.assert_allclose(densitron.losses.tversky(y_true, y_pred, 0.3, 0.7),
                               keras.losses.tversky(y_true, y_pred, 0.3, 0.7), rtol=1e-6)
    probs = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    np.testing.assert_allclose(
        densitron.losses.categorical_generalized_cross_entropy([0, 2], probs, 0.5),
        keras.losses.categorical_generalized_cross_entropy([0, 2], np.array(probs), 0.5),
        rtol=1e-6)


# --- metrics -----------------------------------------------------------------------------------

def test_r2score_per_output_scores(keras):
    # class_aggregation=None: Keras's result is one score per column (float32)
    y_true = np.array([[1, 2], [4, 1], [3, 3]], dtype=np.float32)
    y_pred = np.array([[2, 2], [4, 0], [4, 3.5]], dtype=np.float32)
    for aggregation in (None, "uniform_average", "variance_weighted_average"):
        for num_regressors in (0, 1):
            results = []
            for fw in (keras, densitron):
                m = fw.metrics.R2Score(class_aggregation=aggregation,
                                       num_regressors=num_regressors)
                m.update_state(y_true, y_pred)
                # (the adjusted score counts the values, not the sample weights)
                m.update_state(y_true[:2], y_pred[:2], sample_weight=np.array([0.5, 2.0]))
                results.append(np.asarray(m.result()))
            want, got = results
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Keras's docstring example (uniform_average)
    m = densitron.metrics.R2Score()
    m.update_state(np.array([[1], [4], [3]], np.float32), np.array([[2], [4], [4]], np.float32))
    np.testing.assert_allclose(m.result(), 0.57142854, rtol=1e-6)


def test_r2score_per_output_scores_in_fit_logs():
    model = densitron.Sequential([densitron.layers.Input((3,)), densitron.layers.Dense(2)])
    model.compile(loss="mse", metrics=[densitron.metrics.R2Score(class_aggregation=None)])
    x = np.random.default_rng(0).random((20, 3)).astype("float32")
    y = np.random.default_rng(1).random((20, 2)).astype("float32")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.shape(logs["r2_score"]) == (2,)
    m = densitron.metrics.R2Score(class_aggregation=None)
    m.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs["r2_score"], m.result(), rtol=1e-4, atol=1e-5)


def test_r2score_rejects_unknown_aggregation():
    with pytest.raises(ValueError, match="Received: class_aggregation='mean'"):
        densitron.metrics.R2Score(class_aggregation="mean")


def test_cosine_similarity_metric_docstring_example():
    # keras/src/metrics/regression_metrics.py: axis=1 of a 2-D input (its last axis)
    m = densitron.metrics.CosineSimilarity(axis=1)
    m.update_state([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]])
    np.testing.assert_allclose(m.result(), 0.49999997, rtol=1e-6)
    m.reset_state()
    m.update_state([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]], sample_weight=[0.3, 0.7])
    np.testing.assert_allclose(m.result(), 0.6999999, rtol=1e-6)


def test_cosine_similarity_metric_over_other_axes(keras):
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(3, 4, 5)).astype("float32")
    y_pred = rng.normal(size=(3, 4, 5)).astype("float32")
    weights = rng.random((3, 5)).astype("float32")
    # (axis 0 of a 3-D input: Keras's numpy backend cannot normalize over it)
    for axis, sample_weight in ((-1, None), (2, None), (1, None), (1, weights)):
        results = []
        for fw in (keras, densitron):
            m = fw.metrics.CosineSimilarity(axis=axis)
            m.update_state(y_true, y_pred, sample_weight=sample_weight)
            results.append(float(m.result()))
        np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_cosine_similarity_metric_in_a_model_needs_the_last_axis():
    model = densitron.Sequential([densitron.layers.Input((4, 3)), densitron.layers.Dense(2)])
    model.compile(loss="mse", metrics=[densitron.metrics.CosineSimilarity(axis=1)])
    with pytest.raises(ValueError, match="Received: axis=1"):
        model.evaluate(np.ones((2, 4, 3)), np.ones((2, 4, 2)), verbose=0)


# --- preprocessing layers ----------------------------------------------------------------------

def test_category_encoding_docstring_examples():
    # keras/src/layers/preprocessing/category_encoding.py
    layer = densitron.layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")
    np.testing.assert_array_equal(layer([3, 2, 0, 1]), [[0., 0., 0., 1.], [0., 0., 1., 0.],
                                                        [1., 0., 0., 0.], [0., 1., 0., 0.]])
    layer = densitron.layers.CategoryEncoding(num_tokens=4, output_mode="multi_hot")
    np.testing.assert_array_equal(layer([[0, 1], [0, 0], [1, 2], [3, 1]]),
                                  [[1., 1., 0., 0.], [1., 0., 0., 0.], [0., 1., 1., 0.],
                                   [0., 1., 0., 1.]])
    layer = densitron.layers.CategoryEncoding(num_tokens=4, output_mode="count")
    count_weights = np.array([[.1, .2], [.1, .1], [.2, .3], [.4, .2]])
    out = layer([[0, 1], [0, 0], [1, 2], [3, 1]], count_weights=count_weights)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.1, 0.2, 0., 0.], [0.2, 0., 0., 0.], [0., 0.2, 0.3, 0.],
                                     [0., 0.2, 0., 0.4]], rtol=1e-6)


def test_category_encoding_one_dimensional_ids_as_keras(keras):
    # Keras encodes 1-D ids as one sample in "multi_hot" and "count" (one row per id in
    # "one_hot"); count_weights of the ids' shape, in "count" only
    ids = [3, 2, 0, 1, 1]
    for mode in ("one_hot", "multi_hot", "count"):
        want = np.asarray(keras.layers.CategoryEncoding(4, output_mode=mode)(np.array(ids)))
        got = densitron.layers.CategoryEncoding(4, output_mode=mode)(ids)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    weights = np.array([0.5, 0.2, 0.1, 0.3, 0.4])
    want = keras.layers.CategoryEncoding(4, output_mode="count")(np.array(ids),
                                                                  count_weights=weights)
    got = densitron.layers.CategoryEncoding(4, output_mode="count")(
        ids, count_weights=weights)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6)
    with pytest.raises(ValueError, match="`count_weights` is not used"):
        densitron.layers.CategoryEncoding(4, output_mode="multi_hot")(
            ids, count_weights=weights)


def test_discretization_docstring_examples():
    # keras/src/layers/preprocessing/discretization.py: "int" ids are int32 (its output_dtype)
    data = np.array([[-1.5, 1.0, 3.4, .5], [0.0, 3.0, 1.3, 0.0]])
    layer = densitron.layers.Discretization(bin_boundaries=[0., 1., 2.])
    out = layer(data)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 2, 3, 1], [1, 3, 2, 1]])
    layer = densitron.layers.Discretization(num_bins=4, epsilon=0.01)
    layer.adapt(data)
    np.testing.assert_array_equal(layer(data), [[0, 2, 3, 2], [1, 3, 3, 1]])
    one_hot = densitron.layers.Discretization(bin_boundaries=[0., 1., 2.], output_mode="one_hot")
    assert one_hot(data).dtype == np.float32


# --- reshaping and merging layers --------------------------------------------------------------

def test_reshaping_layers_keep_integer_dtype():
    # keras/src/layers/reshaping/zero_padding1d.py: np.arange input prints integers back
    x = np.arange(12).reshape((2, 2, 3))
    y = densitron.layers.ZeroPadding1D(padding=2)(x)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y[0], [[0, 0, 0], [0, 0, 0], [0, 1, 2], [3, 4, 5],
                                         [0, 0, 0], [0, 0, 0]])
    layers = densitron.layers
    for layer in (layers.Cropping1D(cropping=(1, 0)), layers.UpSampling1D(size=2),
                  layers.Flatten(), layers.Reshape((6,)), layers.Permute((2, 1))):
        assert layer(x).dtype == x.dtype, layer
    # keras/src/layers/merging/concatenate.py
    x = np.arange(20).reshape(2, 2, 5)
    y = np.arange(20, 30).reshape(2, 1, 5)
    out = densitron.layers.Concatenate(axis=1)([x, y])
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, np.concatenate([x, y], axis=1))
    assert densitron.layers.Concatenate(axis=1)([x, y.astype("float32")]).dtype == np.float32


# --- schedules and initializers ----------------------------------------------------------------

def test_piecewise_constant_decay_docstring_example():
    # keras/src/optimizers/schedules/learning_rate_schedule.py: the step as a tensor
    learning_rate_fn = densitron.optimizers.schedules.PiecewiseConstantDecay(
        [100000, 110000], [1.0, 0.5, 0.1])
    rate = learning_rate_fn(ops.array(0))
    assert rate.dtype == np.float32 and rate == 1.0
    rates = learning_rate_fn(np.array([0, 100000, 100001, 200000]))
    np.testing.assert_allclose(rates, [1.0, 1.0, 0.5, 0.1], rtol=1e-7)
    assert learning_rate_fn(110001.0) == np.float32(0.1)
    with pytest.raises(ValueError, match="Received: step=2.5"):
        learning_rate_fn(2.5)


def test_schedules_match_keras_on_step_tensors(keras):
    steps = np.array([0, 3, 12, 40])
    for make in (lambda s: s.ExponentialDecay(0.1, 10, 0.9),
                 lambda s: s.PiecewiseConstantDecay([5, 20], [1.0, 0.5, 0.1]),
                 lambda s: s.CosineDecay(0.1, 100, warmup_target=1.0, warmup_steps=10)):
        schedule = make(keras.optimizers.schedules)
        want = [np.asarray(schedule(keras.ops.convert_to_tensor(s))) for s in steps]
        got = make(densitron.optimizers.schedules)(steps)
        assert got.dtype == np.float32 and got.shape == steps.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert make(densitron.optimizers.schedules)(ops.array(12)) == got[2]


def test_initializers_get_of_a_tensor():
    # keras/src/initializers/__init__.py, get: an array gives a function of (shape, dtype)
    tensor = ops.ones(shape=(5, 5))
    initialize_fn = densitron.initializers.get(tensor)
    assert callable(initialize_fn)
    value = initialize_fn((5, 5))
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, np.ones((5, 5)))
    with pytest.raises(ValueError, match=r"Received shape=\(5, 4\)"):
        initialize_fn((5, 4))
    weights = np.arange(6.0).reshape(3, 2)
    layer = densitron.layers.Dense(2, kernel_initializer=weights, bias_initializer="zeros")
    model = densitron.Sequential([densitron.layers.Input((3,)), layer])
    np.testing.assert_allclose(model.predict(np.ones((1, 3)), verbose=0), [[6.0, 9.0]])
    assert layer.get_config()["kernel_initializer"]["class_name"] == "function"


def test_activation_layers_on_a_vector(keras):
    # Keras's Softmax, Activation, ReLU... examples call the layer on a 1-D array: the
    # vector's own values (a softmax over it), not a batch of one value a sample
    x = np.array([1.0, -2.0, 3.0, 0.5], np.float32)
    for ours, theirs in [(densitron.layers.Softmax(), keras.layers.Softmax()),
                         (densitron.layers.Activation("softmax"),
                          keras.layers.Activation("softmax")),
                         (densitron.layers.ReLU(max_value=2.0), keras.layers.ReLU(max_value=2.0)),
                         (densitron.layers.LeakyReLU(), keras.layers.LeakyReLU()),
                         (densitron.layers.ELU(), keras.layers.ELU())]:
        got = ours(x)
        assert got.shape == (4,)
        np.testing.assert_allclose(got, np.asarray(theirs(x)), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="min_ndim=2"):  # (as Keras: Dense needs features)
        densitron.layers.Dense(2)(x)


def test_precision_and_recall_top_k_on_vectors():
    # Keras's Precision(top_k=2) example: a 1-D y_pred is one row of classes for top_k (the
    # first two of four tied scores are the top 2), not four one-value samples. The values
    # after a second update are Keras 3.15's on JAX (its numpy backend breaks top_k's ties
    # otherwise).
    m = densitron.metrics.Precision(top_k=2)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert float(m.result()) == 0.0
    keras_jax = {("Precision", 2): 0.5, ("Recall", 2): 0.5, ("Precision", 1): 0.5,
                 ("Recall", 1): 0.25, ("Precision", None): 0.5, ("Recall", None): 2 / 3}
    for (name, k), want in keras_jax.items():
        metric = getattr(densitron.metrics, name)(top_k=k)
        metric.update_state([0, 0, 1, 1], [1, 1, 1, 1])
        metric.update_state([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1],
                            sample_weight=None if k else [1, 0, 1, 1])
        assert float(metric.result()) == pytest.approx(want), (name, k)
    with pytest.raises(ValueError, match=r"When class_id is provided, y_pred must be a 2D"):
        densitron.metrics.Precision(class_id=1).update_state([0, 1], [0.3, 0.6])
