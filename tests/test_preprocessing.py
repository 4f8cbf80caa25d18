"""Normalization (adapt, the standardize op forward and backward) and Rescaling against NumPy;
Keras's own numbers are compared in test_keras_parity."""

import os

import numpy as np
import pytest
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

import densitron
from densitron import layers
from densitron.models import Model, Sequential


def _data(rows=300, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, 4)) * [1, 10, 100, 0.1] + [0, 5, -50, 1]).astype(np.float32)


def _standardized(x, mean, var):
    return (x - mean) / np.maximum(np.sqrt(var), np.float32(1e-7))


def test_adapt_on_an_array_gives_numpy_moments_and_outputs():
    x = _data()
    norm = layers.Normalization()
    norm.adapt(x)
    # Keras's mean and variance in the inputs' broadcast shape, its weights per feature
    np.testing.assert_array_equal(norm.mean, np.mean(x, axis=0)[None, :])
    np.testing.assert_array_equal(norm.variance, np.var(x, axis=0)[None, :])
    np.testing.assert_array_equal(norm.adapt_mean.numpy(), np.mean(x, axis=0))
    assert [w.name for w in norm.weights] == ["mean", "variance", "count"]
    assert [w.shape for w in norm.weights] == [(x.shape[1],), (x.shape[1],), ()]
    assert not norm.trainable_weights
    np.testing.assert_array_equal(norm(x), _standardized(x, np.mean(x, 0), np.var(x, 0)))
    # one mean and variance for every value
    scalar = layers.Normalization(axis=None)
    scalar.adapt(x)
    assert scalar.mean.shape == (1, 1) and scalar.adapt_mean.shape == ()
    np.testing.assert_allclose(scalar(x), (x - x.mean()) / x.std(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["list", "generator", "tuples", "pydataset"])
def test_adapt_over_batches_combines_their_moments(kind):
    x = _data(rows=250)
    batches = [x[i:i + 64] for i in range(0, 250, 64)]
    if kind == "generator":
        data = (b for b in batches)
    elif kind == "tuples":
        data = [(b, np.zeros(len(b))) for b in batches]
    elif kind == "pydataset":
        class Batches(densitron.utils.PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, i):
                return batches[i], np.zeros(len(batches[i]))

        data = Batches()
    else:
        data = batches
    norm = layers.Normalization()
    norm.adapt(data)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(norm.mean[0], x64.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.variance[0], x64.var(axis=0), rtol=1e-5)


def test_rank3_inputs_keep_statistics_for_the_last_axis():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(50, 6, 3)) * [1, 2, 3] + [4, 5, 6]).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    np.testing.assert_array_equal(norm.mean, np.mean(x, axis=(0, 1))[None, None, :])
    inp = layers.Input(shape=(6, 3))
    model = Model(inp, norm(inp))
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  _standardized(x, np.mean(x, (0, 1)), np.var(x, (0, 1))))


@pytest.mark.parametrize("kwargs", [{}, {"invert": True}, {"axis": None},
                                    {"mean": [1.0, -2.0, 0.5, 3.0],
                                     "variance": [4.0, 0.25, 9.0, 1.0]},
                                    {"mean": [1.0, -2.0, 0.5, 3.0],
                                     "variance": [4.0, 0.25, 9.0, 1.0], "invert": True}],
                         ids=str)
def test_normalization_backward_between_dense_layers(kwargs):
    # The input gradient is dy / b (dy·b inverted), checked by finite differences of the loss.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 5))
    inp = layers.Input(shape=(5,))
    h = layers.Dense(4, activation="tanh", bias_initializer="random_normal")(inp)
    norm = layers.Normalization(**kwargs)
    if "mean" not in kwargs:
        norm.adapt(rng.normal(size=(40, 4)).astype(np.float32) * 0.3 + 0.1)
    out = layers.Dense(2)(norm(h))
    fd_check(Model(inp, out), x, rng.normal(size=(7, 2)), "mse")


def test_rescaling_backward_between_dense_layers():
    rng = np.random.default_rng(3)
    inp = layers.Input(shape=(5,))
    h = layers.Dense(4, activation="tanh")(inp)
    out = layers.Dense(2)(layers.Rescaling([0.5, -2.0, 3.0, 1.0], offset=0.3)(h))
    fd_check(Model(inp, out), rng.normal(size=(6, 5)), rng.normal(size=(6, 2)), "mse")


def test_fit_leaves_the_statistics_alone_and_threads_agree():
    x = _data(rows=512)
    y = (x[:, :1] > 0).astype(np.float32)

    def build():
        norm = layers.Normalization()
        norm.adapt(x)
        model = Sequential([layers.Input(shape=(4,)), norm, layers.Dense(512, activation="relu"),
                            layers.Dense(256, activation="relu"),
                            layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model

    model = build()
    before = [w.numpy() for w in model.layers[0].weights]
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    for w, b in zip(model.layers[0].weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    assert history.history["accuracy"][-1] > 0.9  # standardized inputs train
    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=128, epochs=2)


def test_set_weights_after_compile_reaches_the_engine():
    x = _data(rows=20)
    norm = layers.Normalization()
    model = Sequential([layers.Input(shape=(4,)), norm])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # not adapted: identity
    norm.adapt(x)
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  _standardized(x, np.mean(x, 0), np.var(x, 0)))
    model.set_weights([np.full(4, 2.0), np.full(4, 4.0), np.zeros(())])
    np.testing.assert_array_equal(model.predict(x, verbose=0), (x - 2.0) / 2.0)


def test_config_round_trip():
    for layer in (layers.Normalization(axis=None, invert=True),
                  layers.Normalization(mean=[1.0, 2.0], variance=[3.0, 4.0]),
                  layers.Rescaling(0.5, offset=[1.0, 2.0])):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Normalization(mean=1.0), "both `mean` and `variance`"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0]), "same shape"),
    (lambda: layers.Normalization(mean=[1.0], variance=[-1.0]), "must not be negative"),
    (lambda: layers.Normalization(mean="a", variance="b"), "finite number"),
    (lambda: layers.Normalization(axis="last"), "axis='last'"),
    (lambda: layers.Normalization(axis=(1, 2))(layers.Input(shape=(3, 4))), "axis=(1, 2)"),
    (lambda: layers.Normalization(axis=0)(layers.Input(shape=(3, 4))), "axis=(0,)"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(
        layers.Input(shape=(3,))), "mean of shape (2,)"),
    (lambda: layers.Normalization(mean=1.0, variance=1.0).adapt(np.ones((3, 2))),
     "nothing to adapt"),
    (lambda: layers.Normalization().adapt(np.array([[1.0, np.nan]])), "no NaN"),
    (lambda: layers.Normalization().adapt(np.zeros((0, 3))), "at least one sample"),
    (lambda: layers.Normalization().adapt([]), "empty iterable"),
    (lambda: layers.Normalization().adapt(5), "data of type int"),
    (lambda: layers.Rescaling("big"), "scale='big'"),
    (lambda: layers.Rescaling([1.0, 2.0])(layers.Input(shape=(3,))), "scale of shape (2,)"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match.replace("(", r"\(").replace(
            ")", r"\)").replace("[", r"\[")) as info:
        make()
    assert "Received" in str(info.value)


def test_adapt_with_another_feature_count_raises():
    norm = layers.Normalization()
    norm.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"Received: data.shape=\(4, 2\)"):
        norm.adapt(np.ones((4, 2)))


def _keras_bin_boundaries(batches, num_bins, epsilon):
    """Keras 3.15's adapt() steps (its module's summarize, merge and compress functions, pure
    NumPy: Keras's own adapt() needs TensorFlow for its dataset check)."""
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # (not TensorFlow, absent here)
    kd = pytest.importorskip("keras.src.layers.preprocessing.discretization")
    summary = np.array([[], []], dtype="float32")
    for b in batches:
        summary = kd.merge_summaries(kd.summarize(np.array(b).astype("float32"), epsilon),
                                     summary, epsilon)
    return kd.get_bin_boundaries(summary, num_bins).tolist()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_discretization_adapt_learns_kerass_quantile_boundaries(tmp_path):
    rng = np.random.default_rng(40)
    cases = [(rng.normal(size=(1000, 3)), 4, 0.01), (rng.normal(size=50), 5, 0.01),
             (rng.exponential(size=(20000, 2)), 10, 0.001),
             ([rng.normal(size=300), rng.normal(size=700) + 1.0], 6, 0.01),
             (rng.integers(0, 5, 500).astype(float), 3, 0.01)]
    for data, num_bins, epsilon in cases:
        want = _keras_bin_boundaries([data] if isinstance(data, np.ndarray) else data,
                                     num_bins, epsilon)
        disc = layers.Discretization(num_bins=num_bins, epsilon=epsilon)
        disc.adapt(data)
        np.testing.assert_array_equal(np.float32(disc.bin_boundaries), np.float32(want))
    # `steps` batches only; then the layer in a model, one-hot, saved and loaded
    batches = [rng.normal(size=(100, 2)) for _ in range(5)]
    disc = layers.Discretization(num_bins=4, output_mode="one_hot")
    disc.adapt(batches, steps=2)
    np.testing.assert_array_equal(np.float32(disc.bin_boundaries),
                                  np.float32(_keras_bin_boundaries(batches[:2], 4, 0.01)))
    inp = layers.Input((1,))
    model = Model(inp, disc(inp))
    x = rng.normal(size=(30, 1)).astype(np.float32)
    want = np.eye(4)[np.searchsorted(np.float32(disc.bin_boundaries), x[:, 0], side="right")]
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    model.save(tmp_path / "d.keras")
    back = densitron.models.load_model(tmp_path / "d.keras")
    np.testing.assert_array_equal(back.predict(x, verbose=0), want)
    assert back.layers[1].get_config()["num_bins"] == 4
    with pytest.raises(ValueError, match="before calling it on tensors"):
        disc.adapt(x)
    with pytest.raises(ValueError, match="use `num_bins` instead"):
        layers.Discretization(bin_boundaries=[0.0]).adapt(x)
    with pytest.raises(ValueError, match=r"call adapt\(\) on it before building"):
        Model(inp, layers.Discretization(num_bins=3)(inp))
    with pytest.raises(TypeError, match="adapt\\(\\) takes numbers"):
        layers.Discretization(num_bins=3).adapt([["a", "b"]])


def test_discretization_on_one_dimensional_values_as_keras():
    # Keras 3.15's eager results on [-1, .5, 2] with boundaries [0, 1]: one_hot a row per
    # value, multi_hot and count the values as one sample; a single value, one value.
    values = np.array([-1.0, 0.5, 2.0])
    layer = lambda mode: layers.Discretization(bin_boundaries=[0.0, 1.0], output_mode=mode)
    assert layer("int")(values).tolist() == [0, 1, 2]
    np.testing.assert_array_equal(layer("one_hot")(values), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(layer("multi_hot")(values), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(layer("count")([0.5, 0.7, 2.0]), [0.0, 2.0, 1.0])
    np.testing.assert_array_equal(layer("one_hot")(np.array(0.5)), [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(layer("multi_hot")(np.array(0.5)), [0.0, 1.0, 0.0])
    assert layer("int")(np.array(0.5)) == 1
    # in a model, an Input of shape () is one value a sample
    inp = densitron.Input(())
    m = densitron.Model(inp, layer("one_hot")(inp))
    np.testing.assert_array_equal(m.predict(values, verbose=0), np.eye(3, dtype=np.float32))


def test_discretization_without_boundaries_is_one_bin():
    # found by fuzzing: no boundaries (given, or adapted with num_bins=1) gave -1 for values
    # other than 0 (the engine took the values as ids); Keras's single bin is id 0.
    x = np.array([[-5.0, 0.0, 1.5, 100.0]])
    assert layers.Discretization(bin_boundaries=[])(x).tolist() == [[0, 0, 0, 0]]
    np.testing.assert_array_equal(
        layers.Discretization(bin_boundaries=[], output_mode="one_hot")(x[:, :3]),
        np.ones((1, 3, 1), np.float32))
    adapted = layers.Discretization(num_bins=1)
    adapted.adapt(np.arange(10.0))
    assert adapted.bin_boundaries == [] and adapted(x).tolist() == [[0, 0, 0, 0]]
