"""Layer behaviour beyond gradients: training vs inference, randomness, moving statistics,
constraints, nested models, graph-build errors, configs."""

import numpy as np
import pytest

import densitron
from densitron import constraints, layers
from densitron.models import Model, Sequential


def _training_loss(model, x, y):
    """The training-mode loss (Dropout and noise active), without an update."""
    return model._compute_gradients(x, y, return_loss=True)[1]


def test_dropout_keeps_expected_fraction_and_scale_only_in_training():
    x = np.ones((50, 400), np.float32)
    zeros = np.zeros_like(x)

    def model_for(seed, loss):
        inp = layers.Input(shape=(400,))
        m = Model(inp, layers.Dropout(0.25, seed=seed)(inp))
        m.compile(optimizer="sgd", loss=loss)
        return m

    m = model_for(3, "mse")
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)  # inference: identity
    # With all-ones input the training output is s on a kept fraction f, else 0:
    # mean |out| = f·s and mean out² = f·s², so f = mae²/mse and s = mse/mae.
    mse = _training_loss(m, x, zeros)
    mae = _training_loss(model_for(3, "mae"), x, zeros)
    kept, scale = mae**2 / mse, mse / mae
    assert kept == pytest.approx(0.75, abs=0.02)
    assert scale == pytest.approx(1 / 0.75, rel=1e-5)
    # the same seed draws the same mask; another seed another
    assert _training_loss(model_for(3, "mse"), x, zeros) == mse
    assert _training_loss(model_for(4, "mse"), x, zeros) != mse


def _dropout_mask(noise_shape, x, seed=5):
    """The training-mode mask of a Dropout on x (rows of 1), read off the kernel gradient of a
    Dense after it: with targets far below the outputs every residual has the same sign, so a
    weight's gradient is zero exactly where every row dropped its input."""
    inp = layers.Input(shape=x.shape[1:])
    h = layers.Flatten()(layers.Dropout(0.5, noise_shape=noise_shape, seed=seed)(inp))
    m = Model(inp, layers.Dense(1, use_bias=False, kernel_initializer="ones")(h))
    m.compile(optimizer="sgd", loss="mse")
    return m._compute_gradients(x, np.full((len(x), 1), -1e3, np.float32))[0][:, 0]


@pytest.mark.parametrize("threads", [1, 2])
def test_dropout_noise_shape_shares_the_mask(threads):
    densitron.set_num_threads(threads)
    one = np.ones((1, 5, 64), np.float32)
    # one sample: (None, 1, 64) drops whole features at every step, (None, 5, 64) anywhere
    shared = (_dropout_mask((None, 1, 64), one) != 0).reshape(5, 64)
    assert all(np.array_equal(row, shared[0]) for row in shared)
    assert 16 < shared[0].sum() < 48
    free = (_dropout_mask((None, 5, 64), one) != 0).reshape(5, 64)
    assert not all(np.array_equal(row, free[0]) for row in free)
    # (1, None, 64): every sample the same mask, so each weight's gradient sums all rows' equal
    # residuals or none: one distinct non-zero value; per-sample masks give several
    three = np.ones((3, 2, 64), np.float32)
    assert len(set(np.round(_dropout_mask((1, None, 64), three), 3)) - {0.0}) == 1
    assert len(set(np.round(_dropout_mask((None, None, 64), three), 3)) - {0.0}) > 1
    with pytest.raises(ValueError, match="Received: noise_shape="):
        _dropout_mask((None, 2, 64), one)
    with pytest.raises(ValueError, match="Received: noise_shape="):
        layers.Dropout(0.5, noise_shape=(None, 0))


def test_gaussian_noise_stddev_in_training_only():
    inp = layers.Input(shape=(500,))
    m = Model(inp, layers.GaussianNoise(0.5, seed=2)(inp))
    x = np.zeros((40, 500), np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    m.compile(optimizer="sgd", loss="mse")
    assert _training_loss(m, x, x) == pytest.approx(0.25, rel=0.03)  # E[noise²] = stddev²


def _spatial_mask(layer, x):
    """The training-mode mask of a spatial dropout on x (ones), read off a Dense's kernel
    gradient as _dropout_mask does."""
    inp = layers.Input(shape=x.shape[1:])
    h = layers.Flatten()(layer(inp))
    m = Model(inp, layers.Dense(1, use_bias=False, kernel_initializer="ones")(h))
    m.compile(optimizer="sgd", loss="mse")
    return m._compute_gradients(x, np.full((len(x), 1), -1e3, np.float32))[0][:, 0]


@pytest.mark.parametrize("threads", [1, 2])
def test_spatial_dropout_drops_whole_channels(threads):
    densitron.set_num_threads(threads)
    one = np.ones((1, 6, 64), np.float32)
    mask = _spatial_mask(layers.SpatialDropout1D(0.5, seed=4), one).reshape(6, 64) != 0
    assert (mask == mask[0]).all() and 10 < mask[0].sum() < 54  # a channel at every step
    two = np.ones((1, 3, 4, 32), np.float32)
    mask = _spatial_mask(layers.SpatialDropout2D(0.5, seed=4), two).reshape(12, 32) != 0
    assert (mask == mask[0]).all() and 4 < mask[0].sum() < 28
    first = np.ones((1, 32, 3, 4), np.float32)
    mask = _spatial_mask(layers.SpatialDropout2D(0.5, data_format="channels_first", seed=4),
                         first).reshape(32, 12) != 0
    assert (mask == mask[:, :1]).all() and 4 < mask[:, 0].sum() < 28
    mask = _spatial_mask(layers.SpatialDropout3D(0.5, seed=4),
                         np.ones((1, 2, 2, 2, 32), np.float32)).reshape(8, 32) != 0
    assert (mask == mask[0]).all()
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layers.SpatialDropout1D(0.5)(layers.Input(shape=(4,)))


@pytest.mark.parametrize("make", [lambda: layers.Dropout(1.0),
                                  lambda: layers.Dropout(1, noise_shape=(None, 1, None)),
                                  lambda: layers.SpatialDropout1D(1.0)])
def test_dropout_of_rate_1_drops_every_value_as_keras(make):
    # Keras takes rate 1.0 (refused before): zeros in training, a NaN or infinity too (no
    # value is scaled by 1/0), the input as is in inference; no gradient reaches the layers
    # before it, and the model trains its last bias alone, as Keras's (found by fuzzing).
    # AlphaDropout's and GaussianDropout's 1 stay refused (Keras's call fails on them).
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3) - 5
    x[0, 0, :2] = np.nan, np.inf
    layer = make()
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), np.zeros_like(x))
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    inp = layers.Input((4, 3))
    m = Model(inp, layers.Dense(1)(make()(layers.Dense(5)(inp))))
    m.compile(optimizer="sgd", loss="mse")
    before = m.get_weights()
    history = m.fit(np.ones((8, 4, 3)), np.ones((8, 4, 1)), verbose=0)
    assert history.history["loss"] == [pytest.approx(1.0)]
    after = m.get_weights()
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_array_equal(a, b)
    assert after[3][0] == pytest.approx(0.02)  # (SGD 0.01 of the bias's gradient -2)
    for bad in (lambda: layers.AlphaDropout(1.0), lambda: layers.GaussianDropout(1.0)):
        with pytest.raises(ValueError, match="1 excluded.*Received: rate=1.0"):
            bad()


def test_alpha_dropout_keeps_mean_and_variance_in_training_only():
    # Keras's AlphaDropout on x = 0: kept values give b, dropped ones a·alpha' + b; the mean
    # of y² over many values matches that mixture, and inference passes x unchanged.
    rate = 0.2
    inp = layers.Input(shape=(1000,))
    m = Model(inp, layers.AlphaDropout(rate, seed=2)(inp))
    x = np.zeros((40, 1000), np.float32)
    np.testing.assert_array_equal(m.predict(x + 1, verbose=0), x + 1)
    m.compile(optimizer="sgd", loss="mse")
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    want = (1 - rate) * b ** 2 + rate * (a * alpha_p + b) ** 2
    assert _training_loss(m, x, x) == pytest.approx(want, rel=0.03)


def test_alpha_dropout_values_are_exactly_kept_or_dropped():
    # every value of a training call is a·x + b (kept) or a·alpha' + b (dropped), in float32,
    # whatever x holds (zeros of both signs, NaN and infinities kept or dropped alike)
    rate = 0.3
    inp = layers.Input(shape=(997,))
    m = Model(inp, layers.AlphaDropout(rate, seed=5)(inp))
    x = np.random.default_rng(0).normal(size=(7, 997)).astype(np.float32)
    x[0, :4] = [0.0, -0.0, np.inf, np.nan]
    y = np.asarray(m(x, training=True))
    alpha_p = np.float32(-1.6732632423543772848170429916717 * 1.0507009873554804934193349852946)
    a = np.float32(((1 - rate) * (1 + rate * float(alpha_p) ** 2)) ** -0.5)
    b = np.float32(-a * alpha_p * rate)
    kept_value, dropped_value = a * x + b, a * alpha_p + b
    kept = (y == kept_value) | (np.isnan(y) & np.isnan(kept_value))
    dropped = y == dropped_value
    assert (kept | dropped).all()
    assert abs(kept.mean() - (1 - rate)) < 0.02


def test_gaussian_dropout_multiplies_by_noise_in_training_only():
    # Keras's GaussianDropout: x·n with n ~ N(1, rate / (1 - rate)) in training, x otherwise.
    inp = layers.Input(shape=(500,))
    m = Model(inp, layers.GaussianDropout(0.2, seed=2)(inp))
    x = np.full((40, 500), 2.0, np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    m.compile(optimizer="sgd", loss="mse")
    # E[(x·n - x)²] = x²·Var(n) = 4 · 0.25
    assert _training_loss(m, x, x) == pytest.approx(1.0, rel=0.03)
    assert _training_loss(m, x, np.zeros_like(x)) == pytest.approx(4.0 * 1.25, rel=0.03)


def test_activity_regularization_adds_its_penalty_and_passes_values():
    inp = layers.Input(shape=(3,))
    m = Model(inp, layers.ActivityRegularization(l1=0.1, l2=0.5)(inp))
    x = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    m.compile(optimizer="sgd", loss="mse")
    penalty = (0.1 * np.abs(x).sum() + 0.5 * (x ** 2).sum()) / 2  # over the batch size
    assert _training_loss(m, x, x) == pytest.approx(penalty, rel=1e-6)
    assert layers.ActivityRegularization(l1=0.1).get_config()["l1"] == 0.1


def test_batch_normalization_training_vs_inference():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]).astype(np.float32)
    inp = layers.Input(shape=(3,))
    bn = layers.BatchNormalization(momentum=0.9)
    model = Model(inp, bn(inp))
    assert [w.name for w in model.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(model.trainable_weights) == 2
    # inference with fresh statistics (mean 0, var 1): y = x / sqrt(1 + eps)
    np.testing.assert_allclose(model.predict(x, verbose=0), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros_like(x), batch_size=64, epochs=1, shuffle=False, verbose=0)
    gamma, beta, mm, mv = model.get_weights()
    np.testing.assert_allclose(mm, 0.1 * x.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mv, 0.9 + 0.1 * x.var(0), rtol=1e-4)
    # training mode uses the batch statistics: the normalized batch has mean 0, variance ~1
    loss = _training_loss(model, x, np.zeros_like(x))
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    expected = np.mean((gamma * xhat + beta) ** 2)
    assert loss == pytest.approx(expected, rel=1e-4)
    # inference uses the moving statistics
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               gamma * (x - mm) / np.sqrt(mv + 1e-3) + beta, rtol=1e-4,
                               atol=1e-5)


def test_layer_normalization_forward():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)).astype(np.float32) * 3 + 1
    inp = layers.Input(shape=(5,))
    model = Model(inp, layers.LayerNormalization()(inp))
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), (x - mean) / np.sqrt(var + 1e-3),
                               rtol=1e-5, atol=1e-5)


def test_merges_forward():
    rng = np.random.default_rng(2)
    a, b, c = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    ia, ib, ic = (layers.Input(shape=(3,)) for _ in range(3))
    for cls, ref in ((layers.Add, a + b + c), (layers.Multiply, a * b * c),
                     (layers.Average, (a + b + c) / 3),
                     (layers.Maximum, np.maximum(np.maximum(a, b), c)),
                     (layers.Minimum, np.minimum(np.minimum(a, b), c)),
                     (layers.Concatenate, np.concatenate([a, b, c], axis=1))):
        m = Model([ia, ib, ic], cls()([ia, ib, ic]))
        np.testing.assert_allclose(m.predict([a, b, c], verbose=0), ref, rtol=1e-6)
    m = Model([ia, ib], layers.Subtract()([ia, ib]))
    np.testing.assert_allclose(m.predict([a, b], verbose=0), a - b)


def test_embedding_forward_and_bad_ids():
    inp = layers.Input(shape=(4,), dtype="int32")
    emb = layers.Embedding(10, 3)
    model = Model(inp, emb(inp))
    ids = np.array([[0, 1, 9, 3], [2, 2, 2, 2]])
    table = emb.embeddings.numpy()
    np.testing.assert_array_equal(model.predict(ids, verbose=0).reshape(2, 4, 3), table[ids])
    assert model.outputs[0].shape == (None, 4, 3)
    with pytest.raises(ValueError, match="input_dim=10"):
        model.predict(np.array([[0, 1, 10, 3]]), verbose=0)
    with pytest.raises(ValueError, match="input_dim=10"):
        model.predict(np.array([[0, 1, -1, 3]]), verbose=0)


def test_constraints_hold_after_updates():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 5)) * 10, rng.normal(size=(32, 4)) * 10
    inp = layers.Input(shape=(5,))
    cases = [constraints.MaxNorm(0.5), constraints.NonNeg(), constraints.UnitNorm(),
             constraints.MinMaxNorm(0.2, 0.3), constraints.UnitNorm(axis=1)]
    for c in cases:
        d = layers.Dense(4, kernel_constraint=c)
        model = Model(inp, d(inp))
        model.compile(optimizer=densitron.optimizers.SGD(learning_rate=0.1), loss="mse")
        model.fit(x, y, epochs=2, verbose=0)
        k = d.kernel.numpy()
        axis = getattr(c, "axis", 0)
        norms = np.sqrt((k ** 2).sum(axis=axis))
        if isinstance(c, constraints.MaxNorm):
            assert norms.max() <= 0.5 + 1e-5
        elif isinstance(c, constraints.NonNeg):
            assert k.min() >= 0
        elif isinstance(c, constraints.UnitNorm):
            np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
        else:
            assert norms.min() >= 0.2 - 1e-5 and norms.max() <= 0.3 + 1e-5


def test_nested_model_as_layer_shares_weights_and_freezes():
    rng = np.random.default_rng(4)
    inner_in = layers.Input(shape=(3,))
    inner = Model(inner_in, layers.Dense(4, activation="tanh", name="inner_dense")(inner_in),
                  name="encoder")
    outer_in = layers.Input(shape=(3,))
    out = layers.Dense(2, name="head")(inner(outer_in))
    model = Model(outer_in, out)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Functional", "Dense"]
    assert len(model.get_weights()) == 4
    x = rng.normal(size=(5, 3)).astype(np.float32)
    k, b = inner.get_weights()
    hk, hb = model.get_layer("head").get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.tanh(x @ k + b) @ hk + hb,
                               rtol=1e-5, atol=1e-6)
    inner.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, rng.normal(size=(5, 2)), epochs=3, verbose=0)
    np.testing.assert_array_equal(inner.get_weights()[0], k)  # frozen through the outer model
    assert not np.array_equal(model.get_layer("head").get_weights()[0], hk)
    inner.trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, rng.normal(size=(5, 2)), epochs=3, verbose=0)
    assert not np.array_equal(inner.get_weights()[0], k)  # the inner model trained through it


def test_graph_build_errors_name_layers_and_shapes():
    a, b = layers.Input(shape=(4,)), layers.Input(shape=(5,))
    with pytest.raises(ValueError, match=r"Received: input shapes \[\(None, 4\), \(None, 5\)\]"):
        layers.Multiply()([a, b])
    with pytest.raises(ValueError, match="Concatenate"):
        layers.Concatenate(axis=1)([layers.Input(shape=(2, 3)), layers.Input(shape=(2, 4))])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Add()([a])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="used 2 times"):
        Model(a, layers.Dense(2, name="same")(layers.Dense(2, name="same")(a)))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        layers.Reshape((3, 3))(a)
    with pytest.raises(ValueError, match="batch axis.*Received: axis=0"):
        layers.BatchNormalization(axis=0)(a)
    with pytest.raises(ValueError, match="Received: axis=3"):
        layers.LayerNormalization(axis=3)(a)
    with pytest.raises(ValueError, match="one axis.*Received"):
        layers.BatchNormalization(axis=[1, 2])  # (LayerNormalization takes several)


def test_sequential_with_new_layers_trains():
    rng = np.random.default_rng(5)
    model = Sequential([layers.Input(shape=(8,)), layers.Dense(16, activation="relu"),
                        layers.BatchNormalization(), layers.Dropout(0.2),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=densitron.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    h = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert h.history["accuracy"][-1] > 0.8
    assert model.evaluate(x, y, verbose=0)[1] > 0.85


def test_embedding_must_read_an_input():
    inp = layers.Input(shape=(3,))
    with pytest.raises(ValueError, match="must read integer ids straight from an `Input`"):
        Model(inp, layers.Embedding(5, 2)(layers.Dense(3)(inp)))


def test_activation_layers_and_to_categorical():
    x = np.linspace(-3, 8, 23, dtype=np.float32).reshape(1, 23)
    inp = layers.Input(shape=(23,))
    for layer, ref in ((layers.ReLU(max_value=6.0), np.clip(x, 0, 6)),
                       (layers.ReLU(negative_slope=0.1), np.where(x > 0, x, 0.1 * x)),
                       (layers.LeakyReLU(), np.where(x > 0, x, 0.3 * x)),
                       (layers.ELU(alpha=0.5), np.where(x > 0, x, 0.5 * (np.exp(x) - 1)))):
        out = Model(inp, layer(inp)).predict(x, verbose=0)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    np.testing.assert_array_equal(densitron.utils.to_categorical([0, 2, 1], 4),
                                  np.eye(4, dtype=np.float32)[[0, 2, 1]])
    assert densitron.utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)
    with pytest.raises(ValueError, match="num_classes=2"):
        densitron.utils.to_categorical([0, 2], 2)


def test_an_mlp_mixer_trains_alike_on_one_and_two_threads():
    from test_threads import assert_trains_alike_on_one_and_two_threads

    rng = np.random.default_rng(3)
    x = rng.normal(size=(512, 16, 12)).astype(np.float32)  # 16 patches of 12 values
    y = (x[:, :4, :3].mean(axis=(1, 2)) > 0).astype(np.float32)

    def build():
        inputs = layers.Input((16, 12))
        h = layers.Dense(32, activation="gelu")(inputs)
        for _ in range(2):
            t = layers.Permute((2, 1))(layers.LayerNormalization()(h))
            t = layers.Permute((2, 1))(layers.Dense(16, activation="gelu")(t))
            h = layers.Add()([h, t])
            c = layers.Dense(32, activation="gelu")(layers.LayerNormalization()(h))
            h = layers.Add()([h, c])
        out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(h))
        m = Model(inputs, out)
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return m

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=3, batch_size=64)
    densitron.utils.set_random_seed(10)
    m = build()
    h = m.fit(x, y, epochs=6, batch_size=64, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_index_map_layers_refuse_bad_arguments():
    for make, exc in ((lambda: layers.Permute((1, 3)), ValueError),
                      (lambda: layers.Permute("ab"), TypeError),
                      (lambda: layers.RepeatVector(0), ValueError),  # (as Keras)
                      (lambda: layers.Cropping1D((-1, 0)), ValueError),
                      (lambda: layers.ZeroPadding1D("x"), TypeError),
                      (lambda: layers.ZeroPadding1D(1, data_format="channels_first"),
                       ValueError),
                      (lambda: layers.Cropping2D("a"), TypeError),
                      (lambda: layers.ZeroPadding2D(((1, 2), (-1, 0))), ValueError),
                      (lambda: layers.UpSampling1D(0), ValueError),
                      (lambda: layers.UpSampling2D((2, 2), interpolation="bilinear"),
                       ValueError),
                      (lambda: layers.UpSampling2D((2, 2, 2)), ValueError)):
        with pytest.raises(exc, match="Received"):
            make()
    for layer, shape in ((layers.Permute((2, 1)), (3,)), (layers.RepeatVector(2), (3, 4)),
                         (layers.Cropping1D((2, 2)), (4, 3)), (layers.ZeroPadding1D(1), (3,)),
                         (layers.Cropping2D(((2, 1), (0, 0))), (3, 3, 1)),
                         (layers.ZeroPadding2D(1), (3, 3)), (layers.UpSampling1D(2), (3,)),
                         (layers.UpSampling2D(2), (3, 3))):
        with pytest.raises(ValueError, match="Received"):
            layer(layers.Input(shape))


def test_categorize_layers_ids_and_bad_arguments():
    inputs = layers.Input((4,))
    enc = Model(inputs, layers.CategoryEncoding(3, output_mode="count")(inputs))
    # ids truncated as Keras casts them; ids outside [0, 3) (and NaN) set nothing
    out = enc.predict(np.array([[0.0, 2.7, 2.0, 3.0], [-1.0, np.nan, 1.0, -0.5]]), verbose=0)
    np.testing.assert_array_equal(out, [[1, 0, 2], [1, 1, 0]])
    cfg = layers.CategoryEncoding(3, output_mode="binary").get_config()
    assert cfg["output_mode"] == "multi_hot"
    back = layers.Discretization.from_config(
        layers.Discretization(bin_boundaries=[0, 1], output_mode="one_hot").get_config())
    assert back.bin_boundaries == [0.0, 1.0] and back.output_mode == "one_hot"
    for make, exc in ((lambda: layers.CategoryEncoding(0), ValueError),
                      (lambda: layers.CategoryEncoding(3, output_mode="tf_idf"), ValueError),
                      (lambda: layers.CategoryEncoding(3, sparse=True), ValueError),
                      (lambda: layers.Discretization(), ValueError),
                      (lambda: layers.Discretization(num_bins=4, bin_boundaries=[0.0]),
                       ValueError),
                      (lambda: layers.Discretization(num_bins=0), ValueError),
                      (lambda: layers.Discretization(num_bins=3, epsilon=2.0), ValueError),
                      (lambda: layers.Discretization(bin_boundaries=[1, 0]), ValueError),
                      (lambda: layers.Discretization(bin_boundaries=["a"]), TypeError),
                      (lambda: layers.Discretization([0.0], output_mode="tf_idf"), ValueError)):
        with pytest.raises(exc, match="Received"):
            make()


def test_functional_forms_of_the_merge_layers():
    a, b = layers.Input((3,)), layers.Input((3,))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    cases = {"add": x + z, "subtract": x - z, "multiply": x * z, "average": (x + z) / 2,
             "maximum": np.maximum(x, z), "minimum": np.minimum(x, z),
             "concatenate": np.concatenate([x, z], axis=-1),
             "dot": (x * z).sum(-1, keepdims=True)}
    for name, expected in cases.items():
        out = getattr(layers, name)([a, b], name=f"merged_{name}")
        m = Model([a, b], out)
        assert m.layers[-1].name == f"merged_{name}"
        np.testing.assert_allclose(m.predict([x, z], verbose=0), expected, rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_embedding_with_pretrained_weights():
    table = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    for weights in ([table], table):
        e = layers.Embedding(20, 4, weights=weights, trainable=False)
        np.testing.assert_array_equal(e.get_weights()[0], table)
    inputs = layers.Input((5,))
    m = Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(e(inputs))))
    m.compile("sgd", "mse")
    m.fit(np.random.default_rng(1).integers(0, 20, (8, 5)), np.ones(8), verbose=0)
    np.testing.assert_array_equal(e.get_weights()[0], table)  # frozen, as given
    with pytest.raises(ValueError, match="Received"):
        layers.Embedding(20, 4, weights=np.ones((3, 4)))


def test_keras_arguments_at_their_off_values_are_taken():
    layers.Dense(2, lora_rank=None, lora_alpha=None, quantization_config=None, autocast=False)
    layers.Embedding(3, 2, lora_rank=None)
    with pytest.raises(TypeError, match="Received: kwargs=.*lora_rank"):
        layers.Dense(2, lora_rank=4)


def test_prelu_refuses_alpha_shared_over_a_trailing_axis():
    # Keras's alpha of shape (3, 1) (shared over the last axis) is not one densitron runs: a
    # clear error when the layer is called, and bad shared_axes values at construction.
    inp = layers.Input(shape=(3, 4))
    with pytest.raises(ValueError, match="shares alpha over leading axes only.*Received: "
                                         "shared_axes=\\[2\\]"):
        layers.PReLU(shared_axes=[2])(inp)
    with pytest.raises(ValueError, match="shares axis 3 of an input of rank 3.*Received: "
                                         "shared_axes=\\[3\\]"):
        layers.PReLU(shared_axes=3)(inp)
    with pytest.raises(ValueError, match="Received: shared_axes=0"):
        layers.PReLU(shared_axes=0)
    m = Model(inp, layers.PReLU(alpha_initializer="ones", shared_axes=[1, 2])(inp))
    assert m.layers[1].alpha.shape == (1, 1)
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)  # alpha 1: the identity


def test_keras_2_spellings_keras_3_still_takes():
    # LeakyReLU(alpha=...) (with Keras's deprecation warning) and keras.preprocessing.sequence
    import densitron.preprocessing.sequence as sequence
    from densitron.layers import LeakyReLU

    with pytest.warns(UserWarning, match="`alpha` is deprecated"):
        layer = LeakyReLU(alpha=0.2)
    assert layer.negative_slope == 0.2 and layer.get_config()["negative_slope"] == 0.2
    np.testing.assert_allclose(layer(np.array([[-1.0, 2.0]], np.float32)), [[-0.2, 2.0]])
    np.testing.assert_array_equal(sequence.pad_sequences([[1, 2], [3]]), [[1, 2], [0, 3]])
    assert densitron.preprocessing.timeseries_dataset_from_array is \
        densitron.utils.timeseries_dataset_from_array


def test_keras_layer_and_model_attributes():
    # the dtype, masking and bookkeeping attributes Keras code reads off layers and models
    dense, embed = layers.Dense(2), layers.Embedding(5, 3, mask_zero=True)
    assert (dense.dtype, dense.compute_dtype, dense.variable_dtype) == ("float32",) * 3
    assert dense.dtype_policy.name == "float32" and dense.input_spec is None
    assert dense.supports_masking and not layers.Flatten().supports_masking
    custom = layers.Layer()
    custom.supports_masking = True
    assert custom.supports_masking and custom.compute_mask(None, "m") == "m"
    assert layers.Flatten().compute_mask(None, "m") is None
    assert dense.metrics == [] and dense.path == dense.name and embed.dtype == "float32"
    model = Sequential([layers.Input((3,)), dense])
    assert (model.run_eagerly, model.jit_compile) == (False, True)
    model.compile("sgd", "mse", run_eagerly=True, jit_compile=False)
    assert (model.run_eagerly, model.jit_compile) == (True, False)


def test_a_noise_layer_called_on_arrays_with_training():
    # Keras's Dropout docstring: layer(data, training=True) drops and rescales, False passes
    data = np.ones((200, 10), np.float32)
    dropped = layers.Dropout(0.5, seed=1)(data, training=True)
    assert set(np.unique(dropped)) == {0.0, 2.0} and 0.4 < np.mean(dropped == 0) < 0.6
    np.testing.assert_array_equal(layers.Dropout(0.5)(data, training=False), data)
    noisy = layers.GaussianNoise(1.0, seed=2)(data, training=True)
    assert noisy.shape == data.shape and 0.8 < np.std(noisy) < 1.2
