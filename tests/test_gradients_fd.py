"""Every backward against central finite differences of the engine's own training-mode loss:
each activation, each loss, every merge, Dropout, GaussianNoise, the normalizations, reshapes,
Embedding, regularizers, and a layer shared by two branches (its gradients summed)."""

import numpy as np
import pytest

import densitron
from densitron import initializers, layers, optimizers
from densitron.models import Model
from test_threads import assert_trains_alike_on_one_and_two_threads


def fd_check(model, x, y, loss, h=1e-3, rtol=2e-2, atol=2e-3):
    """Analytic gradients against central differences of the training-mode loss."""
    model.compile(optimizer=optimizers.SGD(), loss=loss)
    grads = model._compute_gradients(x, y)
    weights = model.get_weights()
    trainable = {id(v) for v in model.trainable_weights}
    for wi, w in enumerate(weights):
        if id(model.weights[wi]) not in trainable:
            assert not np.any(grads[wi]), "frozen weights get no gradient"
            continue
        numeric = np.zeros(w.shape)
        for idx in np.ndindex(w.shape):
            vals = []
            for sign in (1, -1):
                pert = [v.copy() for v in weights]
                pert[wi][idx] = np.float32(w[idx] + sign * h)
                model.set_weights(pert)
                vals.append(model._compute_gradients(x, y, return_loss=True)[1])
            step = float(np.float32(w[idx] + h)) - float(np.float32(w[idx] - h))
            numeric[idx] = (vals[0] - vals[1]) / step
        model.set_weights(weights)
        np.testing.assert_allclose(grads[wi], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"weight {wi} ({model.weights[wi].path})")


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "softmax", "celu",
                                 "hard_shrink", "hard_tanh", "log_sigmoid", "soft_shrink",
                                 "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink"])
def test_activation_backward(act):
    rng = np.random.default_rng(1)
    inp = layers.Input(shape=(4,))
    x = layers.Dense(6, activation=act, bias_initializer="random_normal")(inp)
    out = layers.Dense(3)(x)
    model = Model(inp, out)
    fd_check(model, rng.normal(size=(5, 4)), rng.normal(size=(5, 3)), "mse")


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation_layer_backward(act):
    rng = np.random.default_rng(2)
    inp = layers.Input(shape=(4,))
    x = layers.Activation(act)(layers.Dense(5, bias_initializer="random_normal")(inp))
    out = layers.Dense(2)(x)
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


@pytest.mark.parametrize("loss,out_act,width", [
    ("categorical_crossentropy", "softmax", 4),
    ("sparse_categorical_crossentropy", "softmax", 4),
    ("binary_crossentropy", "sigmoid", 3),
    ("categorical_crossentropy", "sigmoid", 4),   # not fused: the general path
    ("binary_crossentropy", "tanh_to_unit", 3),
    ("mean_squared_error", "linear", 3),
    ("mean_absolute_error", "linear", 3),
    ("mean_absolute_percentage_error", "linear", 3),
    ("mean_squared_logarithmic_error", "softplus", 3),
    ("cosine_similarity", "linear", 4),
    (densitron.losses.Huber(delta=0.3), "linear", 3),
    ("log_cosh", "linear", 3),
    ("hinge", "linear", 3),
    ("squared_hinge", "tanh", 3),
    ("categorical_hinge", "linear", 4),
    ("kl_divergence", "softmax", 4),
    ("poisson", "softplus", 3),
], ids=str)
def test_loss_backward(loss, out_act, width):
    rng = np.random.default_rng(3)
    inp = layers.Input(shape=(5,))
    h = layers.Dense(6, activation="tanh")(inp)
    if out_act == "tanh_to_unit":  # sigmoid through a separate layer: the unfused BCE path
        out = layers.Activation("sigmoid")(layers.Dense(width)(h))
        out = layers.Activation("linear")(out)
    else:
        out = layers.Dense(width, activation=out_act)(h)
    rows = 7
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, width, rows)
    elif loss in ("categorical_crossentropy",):
        y = np.eye(width)[rng.integers(0, width, rows)]
    elif loss in ("binary_crossentropy", "hinge", "squared_hinge"):
        y = rng.integers(0, 2, (rows, width)).astype(float)
    elif loss == "categorical_hinge":
        y = np.eye(width)[rng.integers(0, width, rows)]
    elif loss == "kl_divergence":
        y = rng.dirichlet(np.ones(width), rows)
    elif loss in ("mean_squared_logarithmic_error", "poisson"):
        y = rng.uniform(0, 3, (rows, width))
    else:
        y = rng.normal(size=(rows, width))
    fd_check(Model(inp, out), rng.normal(size=(rows, 5)), y, loss)


def test_dag_with_merges_and_shared_layer():
    rng = np.random.default_rng(4)
    inp = layers.Input(shape=(5,))
    a = layers.Dense(4, activation="tanh")(inp)
    b = layers.Dense(4, activation="sigmoid")(inp)
    shared = layers.Dense(4, activation="tanh", bias_initializer="random_normal")
    sa, sb = shared(a), shared(b)  # one layer, two calls: gradients add up
    merged = layers.Add()([sa, sb])
    cat = layers.Concatenate()([merged, a])
    out = layers.Dense(2)(cat)
    model = Model(inp, out)
    assert len(model.get_weights()) == 8  # shared weights counted once
    fd_check(model, rng.normal(size=(6, 5)), rng.normal(size=(6, 2)), "mse")


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                   "Minimum", "Concatenate"])
def test_merge_backward(merge):
    rng = np.random.default_rng(5)
    inp = layers.Input(shape=(3,))
    a = layers.Dense(4, activation="tanh", bias_initializer="random_normal")(inp)
    b = layers.Dense(4, bias_initializer="random_normal")(inp)
    c = layers.Dense(4, activation="sigmoid")(inp)
    ins = [a, b] if merge == "Subtract" else [a, b, c]
    out = layers.Dense(2)(getattr(layers, merge)()(ins))
    fd_check(Model(inp, out), rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), "mse")


@pytest.mark.parametrize("layer", [
    lambda: layers.Dropout(0.4, seed=3),
    lambda: layers.Dropout(0.4, noise_shape=(1, 5), seed=3),
    lambda: layers.GaussianNoise(0.3, seed=3),
    lambda: layers.GaussianDropout(0.3, seed=3),
    lambda: layers.AlphaDropout(0.3, seed=3),
    lambda: layers.ActivityRegularization(l1=0.01, l2=0.02),
    lambda: layers.BatchNormalization(),
    lambda: layers.BatchNormalization(center=False),
    lambda: layers.LayerNormalization(),
    lambda: layers.LayerNormalization(scale=False),
    lambda: layers.RMSNormalization(epsilon=1e-3),
    lambda: layers.Identity(),
])
def test_single_input_layer_backward(layer):
    rng = np.random.default_rng(6)
    inp = layers.Input(shape=(4,))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    lay = layer()
    h = lay(h)
    out = layers.Dense(3)(h)
    model = Model(inp, out)
    if isinstance(lay, (layers.BatchNormalization, layers.LayerNormalization,
                        layers.RMSNormalization)):
        w = model.get_weights()  # non-trivial gamma, beta and scale
        for i, v in enumerate(model.weights):
            if v.name in ("gamma", "beta", "scale"):
                w[i] = rng.normal(size=v.shape).astype(np.float32)
        model.set_weights(w)
    fd_check(model, rng.normal(size=(7, 4)), rng.normal(size=(7, 3)), "mse")


@pytest.mark.parametrize("shape, shared_axes", [((5,), None), ((2, 3), None), ((2, 3), [1])])
def test_prelu_backward(shape, shared_axes):
    # Gradients of x and of alpha (non-zero, of both signs) on inputs of both signs.
    rng = np.random.default_rng(9)
    inp = layers.Input(shape=(4,))
    h = layers.Dense(int(np.prod(shape)), bias_initializer="random_normal")(inp)
    h = layers.Reshape(shape)(h)
    h = layers.PReLU(alpha_initializer=initializers.RandomUniform(-0.5, 1.0),
                     shared_axes=shared_axes)(h)
    out = layers.Dense(3)(layers.Flatten()(h))
    fd_check(Model(inp, out), rng.normal(size=(7, 4)), rng.normal(size=(7, 3)), "mse")


def test_rank3_dense_reshape_flatten_concatenate_backward():
    inp = layers.Input(shape=(6,))
    h = layers.Reshape((3, 2))(layers.Dense(6, activation="tanh")(inp))
    h = layers.Dense(4, activation="relu", bias_initializer="random_normal")(h)  # on the last axis
    h2 = layers.Dense(2)(h)
    h = layers.Concatenate(axis=1)([h, layers.Dense(4)(h)])  # (6, 4): a middle axis
    h = layers.LayerNormalization()(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    model = Model(inp, [out, layers.Flatten()(h2)])
    assert model.outputs[1].shape == (None, 6)
    model.compile(optimizer="sgd", loss="mse")
    rng2 = np.random.default_rng(8)
    x = rng2.normal(size=(5, 6))
    ys = [rng2.normal(size=(5, 2)), rng2.normal(size=(5, 6))]
    grads = model._compute_gradients(x, ys)
    weights = model.get_weights()
    for wi in (0, 2, 4):
        w = weights[wi]
        numeric = np.zeros(w.shape)
        for idx in np.ndindex(w.shape):
            vals = []
            for sign in (1, -1):
                pert = [v.copy() for v in weights]
                pert[wi][idx] = np.float32(w[idx] + sign * 1e-3)
                model.set_weights(pert)
                vals.append(model._compute_gradients(x, ys, return_loss=True)[1])
            numeric[idx] = (vals[0] - vals[1]) / (float(np.float32(w[idx] + 1e-3))
                                                  - float(np.float32(w[idx] - 1e-3)))
        model.set_weights(weights)
        np.testing.assert_allclose(grads[wi], numeric, rtol=2e-2, atol=2e-3)


def test_embedding_backward():
    rng = np.random.default_rng(9)
    inp = layers.Input(shape=(3,), dtype="int32")
    h = layers.Flatten()(layers.Embedding(6, 2)(inp))
    out = layers.Dense(2, activation="tanh")(h)
    ids = rng.integers(0, 6, (5, 3))
    fd_check(Model(inp, out), ids, rng.normal(size=(5, 2)), "mse")


def test_regularizers_enter_loss_and_gradient():
    rng = np.random.default_rng(10)
    inp = layers.Input(shape=(3,))
    d = layers.Dense(2, kernel_regularizer=densitron.regularizers.L1L2(l1=0.01, l2=0.02),
                     bias_regularizer="l2", bias_initializer="random_normal")
    model = Model(inp, d(inp))
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    fd_check(model, x, y, "mse")
    k, b = model.get_weights()
    data_loss = np.mean((x @ k + b - y) ** 2)
    reg = 0.01 * np.abs(k).sum() + 0.02 * (k ** 2).sum() + 0.01 * (b ** 2).sum()
    model.compile(optimizer="sgd", loss="mse")
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data_loss + reg, rel=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_activity_regularizers_enter_loss_and_gradient(threads):
    # On a hidden Dense (relu: its gradient is then w.r.t. the output, not fused into the next
    # product), on a linear one, and on the softmax output (no longer fused with the loss).
    rng = np.random.default_rng(13)
    densitron.set_num_threads(threads)
    reg = densitron.regularizers
    inp = layers.Input(shape=(4,))
    h = layers.Dense(5, activation="relu", bias_initializer="random_normal",
                     activity_regularizer=reg.L1(0.05))(inp)
    h = layers.Dense(4, activity_regularizer=reg.L2(0.1))(h)
    out = layers.Dense(3, activation="softmax", activity_regularizer=reg.L1L2(0.01, 0.02))(h)
    y = np.eye(3)[rng.integers(0, 3, 6)]
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), y, "categorical_crossentropy")


@pytest.mark.parametrize("threads", [1, 2])
def test_activity_regularizers_on_every_kind_of_layer(threads):
    # Keras takes activity_regularizer on any layer: an Activation, a LayerNormalization, a
    # merge, a Reshape, a Dropout and the output softmax Activation (then not fused with the
    # loss); rows enough that two threads split the elementwise ops.
    rng = np.random.default_rng(16)
    densitron.set_num_threads(threads)
    reg = densitron.regularizers
    inp = layers.Input(shape=(6,))
    a = layers.Dense(8, bias_initializer="random_normal")(inp)
    a = layers.Activation("tanh", activity_regularizer=reg.L1(0.05))(a)
    b = layers.LayerNormalization(activity_regularizer=reg.L2(0.1))(layers.Dense(8)(inp))
    m = layers.Add(activity_regularizer=reg.L1L2(0.02, 0.03))([a, b])
    m = layers.Reshape((2, 4), activity_regularizer=reg.L2(0.04))(m)
    m = layers.Dropout(0.0, activity_regularizer=reg.L1(0.01))(layers.Flatten()(m))
    out = layers.Activation("softmax", activity_regularizer=reg.L2(0.2))(layers.Dense(3)(m))
    y = np.eye(3)[rng.integers(0, 3, 96)]
    fd_check(Model(inp, out), rng.normal(size=(96, 6)), y, "categorical_crossentropy")


def test_activity_regularizers_on_any_layer_split_across_threads_alike():
    # Large enough for steps on two threads (the finite-difference model above runs on one).
    rng = np.random.default_rng(18)
    x = rng.normal(size=(512, 64)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 512)]

    def build():
        reg = densitron.regularizers
        inp = layers.Input(shape=(64,))
        a = layers.Activation("tanh", activity_regularizer=reg.L1(0.05))(layers.Dense(256)(inp))
        b = layers.LayerNormalization(activity_regularizer=reg.L2(0.1))(layers.Dense(256)(inp))
        m = layers.Add(activity_regularizer=reg.L1L2(0.02, 0.03))([a, b])
        out = layers.Activation("softmax", activity_regularizer=reg.L2(0.2))(layers.Dense(10)(m))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=128, epochs=2)


def test_activity_regularization_of_any_layer_is_keras_formula():
    rng = np.random.default_rng(17)
    reg = densitron.regularizers
    inp = layers.Input(shape=(5,))
    h = layers.Activation("relu", activity_regularizer=reg.L1(0.03))(layers.Dense(6)(inp))
    out = layers.Dense(2, name="out")(h)
    model = Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(30, 5)).astype(np.float32)
    y = rng.normal(size=(30, 2)).astype(np.float32)
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    a1 = np.maximum(x @ k1 + b1, 0)
    want = ((a1 @ k2 + b2 - y) ** 2).mean() + 0.03 * np.abs(a1).sum() / 30
    assert model.evaluate(x, y, batch_size=8, verbose=0) == pytest.approx(want, rel=1e-5)
    config = model.layers[2].get_config()
    assert config["activity_regularizer"] == {"module": "keras.regularizers", "class_name": "L1",
                                              "config": {"l1": 0.03}, "registered_name": None}
    clone = Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.compile(optimizer="sgd", loss="mse")
    assert clone.evaluate(x, y, verbose=0) == pytest.approx(want, rel=1e-5)
    assert "activity_regularizer" not in model.get_layer("out").get_config()


def test_activity_regularization_loss_is_keras_formula():
    # Keras: each call adds reg(output) / batch size to its batch's loss, and evaluate's loss is
    # the batch-size-weighted mean, so the activity term is Σ reg over all rows / rows, however
    # the rows are batched. (Keras's own numpy backend cannot evaluate this: it sums a list.)
    rng = np.random.default_rng(14)
    reg = densitron.regularizers
    inp = layers.Input(shape=(6,))
    h = layers.Dense(8, activation="relu", activity_regularizer=reg.L1(0.01))(inp)
    model = Model(inp, layers.Dense(3, activation="softmax",
                                    activity_regularizer=reg.L2(0.05))(h))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    a1 = np.maximum(x @ k1 + b1, 0)
    z = a1 @ k2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    want = (-np.log(np.clip((y * p).sum(axis=1), 1e-7, 1)).mean()
            + (0.01 * np.abs(a1).sum() + 0.05 * (p ** 2).sum()) / 40)
    for batch_size in (40, 16):
        assert model.evaluate(x, y, batch_size=batch_size, verbose=0) == pytest.approx(
            want, rel=1e-5)
    assert model.get_layer(model.layers[1].name).get_config()["activity_regularizer"] == {
        "module": "keras.regularizers", "class_name": "L1", "config": {"l1": 0.01},
        "registered_name": None}


def test_nested_model_with_two_outputs_backward():
    # Both outputs of the nested model carry gradient: one through a Dense, one to a model
    # output directly.
    rng = np.random.default_rng(15)
    e_in = layers.Input(shape=(4,))
    enc = Model(e_in, [layers.Dense(3, activation="tanh")(e_in), layers.Dense(2)(e_in)])
    x = layers.Input(shape=(4,))
    p, q = enc(x)
    out = layers.Dense(2)(layers.Concatenate()([p, q]))
    model = Model(x, [out, q])
    fd_check(model, rng.normal(size=(5, 4)), [rng.normal(size=(5, 2)), rng.normal(size=(5, 2))],
             ["mse", "mse"])


def test_frozen_batch_normalization_backward():
    # trainable=False: inference mode in training too, normalized by the moving statistics
    rng = np.random.default_rng(16)
    inp = layers.Input(shape=(4,))
    bn = layers.BatchNormalization()
    out = layers.Dense(2)(bn(layers.Dense(3, bias_initializer="random_normal")(inp)))
    model = Model(inp, out)
    bn.set_weights([rng.uniform(0.5, 2.0, 3), rng.normal(size=3), rng.normal(size=3),
                    rng.uniform(0.5, 3.0, 3)])
    bn.trainable = False
    fd_check(model, rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


def test_frozen_layers_get_no_update():
    rng = np.random.default_rng(11)
    inp = layers.Input(shape=(3,))
    frozen = layers.Dense(4, trainable=False)
    out = layers.Dense(2)(frozen(inp))
    model = Model(inp, out)
    before = model.get_weights()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), epochs=2, verbose=0)
    after = model.get_weights()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


@pytest.mark.parametrize("log", [False, True])
def test_softmax_over_a_middle_axis_backward(log):
    import functools

    rng = np.random.default_rng(12)
    inp = layers.Input(shape=(5,))
    h = layers.Reshape((3, 4))(layers.Dense(12, bias_initializer="random_normal")(inp))
    if log:
        h = layers.Activation(functools.partial(densitron.activations.log_softmax, axis=1))(h)
    else:
        h = layers.Softmax(axis=1)(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    fd_check(Model(inp, out), rng.normal(size=(4, 5)), rng.normal(size=(4, 2)), "mse")


@pytest.mark.parametrize("loss", ["hinge", "cosine_similarity", "categorical_hinge"])
def test_row_and_batch_losses_train_alike_on_one_and_two_threads(loss):
    # The loss blocks of a batch split between threads: the hinge loss reads the whole batch's
    # targets in every block, the row losses (cosine, categorical hinge) whole rows.
    rng = np.random.default_rng(12)
    x = rng.normal(size=(512, 40)).astype(np.float32)
    y = rng.integers(0, 2, (512, 16)).astype(np.float32)
    y[300, 2] = -1.0  # one batch of the hinge's is not converted

    def build():
        inp = layers.Input(shape=(40,))
        h = layers.Dense(64, activation="relu")(inp)
        model = Model(inp, layers.Dense(16)(h))
        model.compile(optimizer="adam", loss=loss, metrics=["squared_hinge", "poisson"])
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=128, epochs=2)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("same_input", [False, True])
def test_dot_backward(normalize, same_input):
    # Both inputs get their gradient (summed when one tensor is dotted with itself).
    rng = np.random.default_rng(13)
    inp = layers.Input(shape=(4,))
    a = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    b = a if same_input else layers.Dense(5, bias_initializer="random_normal")(inp)
    out = layers.Dense(2)(layers.Dot(axes=1, normalize=normalize)([a, b]))
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


def test_unit_normalization_backward():
    rng = np.random.default_rng(14)
    inp = layers.Input(shape=(4,))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    out = layers.Dense(2)(layers.UnitNormalization()(h))
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


@pytest.mark.parametrize("threads", [1, 2])
def test_index_map_layers_backward(threads):
    # Permute, RepeatVector (one value read by several outputs: its gradient sums them),
    # Cropping1D (values nobody reads: zero gradient) and ZeroPadding1D
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(15)
    inp = layers.Input(shape=(4, 3))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    h = layers.ZeroPadding1D((1, 2))(layers.Cropping1D((1, 0))(layers.Permute((2, 1))(h)))
    r = layers.RepeatVector(2)(layers.Dense(3)(layers.Flatten()(h)))
    u = layers.UpSampling1D(2)(r)
    g = layers.Reshape((2, 2, 3))(u)
    g = layers.UpSampling2D((1, 2))(layers.ZeroPadding2D(1)(layers.Cropping2D(((0, 1), (1, 0)))(g)))
    out = layers.Dense(2)(layers.Flatten()(g))
    fd_check(Model(inp, out), rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 2)), "mse")


def test_categorize_layers_pass_no_gradient():
    # Discretization and CategoryEncoding are not differentiable (Keras gives no gradient):
    # the weights after them get theirs; a Dense before them gets zeros.
    rng = np.random.default_rng(16)
    inp = layers.Input(shape=(3,))
    before = layers.Dense(3, name="before")(inp)
    buckets = layers.Discretization(bin_boundaries=[-0.5, 0.5], output_mode="count")(before)
    ids = layers.CategoryEncoding(4, output_mode="one_hot")(
        layers.Discretization(bin_boundaries=[-1.0, 0.0, 1.0])(inp))
    h = layers.Concatenate()([buckets, layers.Flatten()(ids), inp])
    model = Model(inp, layers.Dense(2)(layers.Dense(5, activation="tanh")(h)))
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    fd_check(model, x, y, "mse")
    grads = model._compute_gradients(x, y)
    assert not np.any(grads[0]) and not np.any(grads[1])  # "before"'s kernel and bias


@pytest.mark.parametrize("threads", [1, 2])
def test_normalization_over_a_middle_axis_backward_and_moving_statistics(threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(17)
    inp = layers.Input(shape=(3, 4))
    h = layers.Dense(4, activation="tanh", bias_initializer="random_normal")(inp)
    bn = layers.BatchNormalization(axis=1, momentum=0.5, gamma_initializer="random_normal")
    h = layers.LayerNormalization(axis=1, beta_initializer="random_normal")(bn(h))
    model = Model(inp, layers.Dense(2)(layers.Flatten()(h)))
    x, y = rng.normal(size=(8, 3, 4)), rng.normal(size=(8, 2))
    fd_check(model, x, y, "mse")
    # one training step moves bn's statistics toward the batch's, per axis-1 channel
    # (over the batch and the other axis), as Keras does
    first = model.layers[1]
    pre = x.astype(np.float32) @ first.get_weights()[0] + first.get_weights()[1]
    pre = np.tanh(pre)
    mean, var = pre.mean(axis=(0, 2)), pre.var(axis=(0, 2))
    model.compile(optimizers.SGD(0.0), "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.5 + 0.5 * var, rtol=1e-4,
                               atol=1e-6)


def test_normalization_over_a_middle_axis_passes_gradients():
    rng = np.random.default_rng(18)
    inp = layers.Input(shape=(3, 4))
    h = layers.Dense(4, activation="tanh", bias_initializer="random_normal")(inp)
    norm = layers.Normalization(axis=1, mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0])
    out = layers.Dense(2)(layers.Flatten()(norm(h)))
    fd_check(Model(inp, out), rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 2)), "mse")


def test_rms_normalization_over_a_middle_axis():
    # RMSNormalization(axis=1) of (steps, features) inputs against its formula in float64,
    # and its gradients (the axis moved last and back by index maps).
    rng = np.random.default_rng(30)
    inp = layers.Input((3, 4))
    h = layers.Dense(4, bias_initializer="random_normal")(inp)
    rms = layers.RMSNormalization(axis=1, epsilon=1e-3)
    model = Model(inp, rms(h))
    inner = Model(inp, h)
    w = model.get_weights()
    w[-1] = rng.normal(size=3).astype(np.float32)  # the scale, one per step
    model.set_weights(w)
    x = rng.normal(size=(5, 3, 4)).astype(np.float32)
    v = inner.predict(x, verbose=0).astype(np.float64)
    want = v / np.sqrt(np.mean(v ** 2, axis=1, keepdims=True) + 1e-3) * w[-1][None, :, None]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    out = layers.Dense(2)(layers.Flatten()(rms(h)))
    fd_check(Model(inp, out), rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 2)), "mse")


def test_masking_into_average_pooling_backward_and_refusal():
    # Masked steps take no part in the mean (their gradient is 0); the weights' gradients
    # against finite differences; a Masking after a layer with weights is refused.
    rng = np.random.default_rng(32)
    x = rng.normal(size=(6, 4, 3))
    x[:, 2:, :] = 0.0
    x[1, 1:, :] = 0.0
    inp = layers.Input((4, 3))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(
        layers.Masking()(inp))
    out = layers.Dense(2)(layers.GlobalAveragePooling1D()(h))
    fd_check(Model(inp, out), x, rng.normal(size=(6, 2)), "mse")
    with pytest.raises(ValueError, match=r"must read an Input.*Received: an input computed by "):
        layers.Masking()(layers.Dense(3)(inp))
