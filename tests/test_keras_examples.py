"""keras.io's guides and examples, condensed, run with densitron in place of Keras (only the
imports changed): what they print and return (summary(), history keys, logged values) as Keras
3.15 gives it for the same program. Each test writes the program once for either framework."""
import re

import densitron
import numpy as np
import pytest
from test_gradients_fd import fd_check


def _summary(model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    out = []
    model.summary(print_fn=out.append)
    return re.sub(r"\s+\n", "\n", out[0]).strip()


def _shared_embedding_model(K):
    """The functional API guide: one Embedding read by two inputs."""
    shared = K.layers.Embedding(1000, 8, name="shared")
    a = K.Input(shape=(7,), dtype="int32", name="a")
    b = K.Input(shape=(7,), dtype="int32", name="b")
    ea = K.layers.GlobalAveragePooling1D(name="pool_a")(shared(a))
    eb = K.layers.GlobalAveragePooling1D(name="pool_b")(shared(b))
    out = K.layers.Dense(1, name="out")(K.layers.concatenate([ea, eb], name="cat"))
    return K.Model([a, b], out, name="shared")


def _ticket_model(K):
    """The functional API guide's ticket classifier: three inputs, two branches of different
    depths, two named outputs."""
    title = K.Input(shape=(10,), name="title")
    body = K.Input(shape=(12,), name="body")
    tags = K.Input(shape=(12,), name="tags")
    t = K.layers.Dense(8, name="t2")(K.layers.Embedding(50, 4, name="t1")(title))
    b = K.layers.Dense(4, name="b2")(K.layers.Embedding(50, 4, name="b1")(body))
    x = K.layers.concatenate([K.layers.Flatten(name="tf")(t), K.layers.Flatten(name="bf")(b),
                              tags], name="cat")
    return K.Model([title, body, tags], {"priority": K.layers.Dense(1, name="priority")(x),
                                         "department": K.layers.Dense(4, name="department")(x)},
                   name="tickets")


@pytest.mark.parametrize("build", [_shared_embedding_model, _ticket_model])
def test_functional_summary_has_a_row_a_layer_in_keras_order(build, keras, monkeypatch):
    # Keras: one row per layer (a shared layer's row lists every call's inputs), ordered by
    # depth from the outputs, deepest first; densitron listed each call in graph order
    mine = build(densitron)
    theirs = build(keras)
    assert [layer.name for layer in mine.layers] == [layer.name for layer in theirs.layers]
    assert _summary(mine, monkeypatch) == _summary(theirs, monkeypatch)


def test_reduce_lr_on_plateau_logs_keras_float32_rates(capsys):
    # Keras's rate is a float32 variable: float() of it, the new rate ReduceLROnPlateau prints
    # and the logged learning_rate are float32 values read as Python floats
    model = densitron.Sequential([densitron.Input((3,)), densitron.layers.Dense(1)])
    model.compile(densitron.optimizers.RMSprop(0.001), "mse")
    x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
    cb = densitron.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                               min_delta=10.0, verbose=1)
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb])
    assert float(model.optimizer.learning_rate) == float(np.float32(0.00025))
    # (Keras logs the rate of the epoch, then reduces it)
    assert h.history["learning_rate"] == [float(np.float32(v)) for v in (0.001, 0.001, 0.0005)]
    # (Keras: old_lr = float(variable) = 0.0010000000474974513; new_lr = old_lr * factor)
    assert "reducing learning rate to 0.0005000000237487257." in capsys.readouterr().out


def _scaling_layer_class(K):
    class CustomLayer(K.layers.Layer):  # the serialization guide's, not registered
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return CustomLayer


def test_model_from_json_takes_custom_objects(keras):
    # the serialization guide: a model of an unregistered layer comes back from its JSON (its
    # own or Keras's) given custom_objects; densitron refused any custom_objects
    def build(K):
        inputs = K.Input(shape=(3,))
        outputs = K.layers.Dense(2)(_scaling_layer_class(K)(2.0, name="scale")(inputs))
        return K.Model(inputs, outputs)

    cls = _scaling_layer_class(densitron)
    with np.errstate(all="ignore"):  # (Keras's NumPy backend traces call() on np.empty)
        keras_json = build(keras).to_json()
    # (densitron's own JSON keeps an unregistered layer as the layers its call made)
    for text in (keras_json, build(densitron).to_json()):
        model = densitron.models.model_from_json(text, custom_objects={"CustomLayer": cls})
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        kernel, bias = model.layers[-1].get_weights()
        np.testing.assert_allclose(model.predict(x, verbose=0), 2 * x @ kernel + bias, rtol=1e-5)
    scale = densitron.models.model_from_json(keras_json, custom_objects={
        "CustomLayer": cls}).get_layer("scale")
    assert type(scale) is cls and scale.factor == 2.0
    with pytest.raises(TypeError, match="custom_objects"):
        densitron.models.model_from_json(text, custom_objects=[cls])


def _eager_layer_classes(K):
    """The subclassing guide's ComputeSum (a variable assigned in call()) and the functional
    API guide's CustomRNN (a loop over the steps of its input, from a state of the batch's
    size), which Keras runs eagerly on arrays."""
    ops = K.ops

    class ComputeSum(K.layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,),
                                         trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    class CustomRNN(K.layers.Layer):
        def __init__(self, units, classifier):
            super().__init__()
            self.units = units
            self.projection_1 = K.layers.Dense(units=units, activation="tanh")
            self.projection_2 = K.layers.Dense(units=units, activation="tanh")
            self.classifier = classifier

        def call(self, inputs):
            outputs = []
            state = ops.zeros(shape=(inputs.shape[0], self.units))
            for t in range(inputs.shape[1]):
                x = inputs[:, t, :]
                h = self.projection_1(x)
                y = h + self.projection_2(state)
                state = y
                outputs.append(y)
            features = ops.stack(outputs, axis=1)
            return self.classifier(features)

    return ComputeSum, CustomRNN


def test_layers_that_do_not_trace_run_on_arrays_as_keras(keras):
    # densitron traces a layer's call() on symbolic tensors; a call() that cannot be traced
    # (the batch size read, a middle axis indexed, a variable assigned) failed on arrays,
    # where Keras runs it eagerly: it runs on the arrays now, with Keras's values
    ComputeSum = _eager_layer_classes(densitron)[0]
    my_sum = ComputeSum(2)
    np.testing.assert_array_equal(my_sum(np.ones((2, 2))), [2.0, 2.0])
    np.testing.assert_array_equal(my_sum(np.ones((3, 2))), [5.0, 5.0])
    assert my_sum.non_trainable_weights == [my_sum.total] and not my_sum.trainable_weights

    def rnn(K, steps=5, units=4):
        inputs = K.Input((steps, units))
        x = K.layers.GlobalAveragePooling1D()(inputs)
        return _eager_layer_classes(K)[1](units, K.Model(inputs, K.layers.Dense(1)(x)))

    x = np.random.default_rng(3).normal(size=(3, 5, 2)).astype(np.float32)
    mine, theirs = rnn(densitron), rnn(keras)
    theirs(x)
    mine(x)
    mine.set_weights([np.asarray(w.value) for w in theirs.weights])
    assert [w.shape for w in mine.weights] == [tuple(w.shape) for w in theirs.weights]
    np.testing.assert_allclose(mine(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-6)
    assert mine(x[:1]).shape == (1, 1)
    # a layer that neither traces nor runs on arrays: the tracing's error, as before
    class Broken(densitron.layers.Layer):
        def call(self, inputs):
            return densitron.ops.reshape(inputs, (7, 7))
    with pytest.raises((TypeError, ValueError)) as err:
        Broken()(np.ones((2, 3)))
    assert "Received" in str(err.value)


def test_subclassed_model_summary_lists_its_layers_as_keras(monkeypatch):
    # Keras: a subclassed model's rows are the layers it holds, no Input row, no "Connected
    # to" column; the optimizer's bytes count its int32 step as Keras on JAX does
    L = densitron.layers

    class Block(L.Layer):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, x):
            return self.d(x) * 2.0

    class M(densitron.Model):
        def __init__(self):
            super().__init__(name="m")
            self.a = L.Dense(5, name="a")
            self.b = Block()
            self.c = L.Dense(1, name="c")

        def call(self, x):
            return self.c(self.b(self.a(x)))

    model = M()
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    text = _summary(model, monkeypatch)
    names = re.findall(r"^│ (\S+ \(\w+\))", text, flags=re.MULTILINE)
    assert names == ["a (Dense)", "block (Block)", "c (Dense)"]
    assert "Connected to" not in text and "InputLayer" not in text
    # (Keras: 49 weights + 100 optimizer values, 4 bytes each)
    assert " Total params: 149 (596.00 B)" in text
    assert " Optimizer params: 100 (400.00 B)" in text


_ALL = slice(None)
_KEYS = [(_ALL, 0), (_ALL, 1, _ALL, 2), (_ALL, slice(None, None, -1), slice(1, None)),
         (Ellipsis, None, 0), (_ALL, None, 2, slice(None, None, 2)), (Ellipsis, 1, _ALL)]


def _indexed_model(K):
    inputs = K.Input((5, 4, 3))
    return K.Model(inputs, [K.layers.Dense(2)(inputs[key]) for key in _KEYS] + [inputs[:, 3]])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_symbolic_tensors_take_numpy_basic_indexing_past_the_batch_axis(keras, tmp_path):
    # x[:, t, :] (the functional API guide's CustomRNN), x[:, 0] (a transformer's first
    # token): densitron indexed the last axis only
    x = np.random.default_rng(5).normal(size=(2, 5, 4, 3)).astype(np.float32)
    inputs = densitron.Input((5, 4, 3))
    model = densitron.Model(inputs, [inputs[key] for key in _KEYS])
    for key, y in zip(_KEYS, model.predict(x, verbose=0)):
        np.testing.assert_array_equal(y, x[key])
    for bad in (0, (0, slice(None)), (0, Ellipsis)):  # (the batch axis indexed)
        with pytest.raises(TypeError, match="batch axis.*Received: key="):
            inputs[bad]
    with pytest.raises(ValueError, match="does not fit.*Received"):
        inputs[:, 7]
    # Keras's values, a Dense after each pick
    mine = _indexed_model(densitron)
    theirs = _indexed_model(keras)
    theirs.set_weights([np.asarray(w.value) for w in theirs.weights])
    mine.set_weights([np.asarray(w.value) for w in theirs.weights])
    with np.errstate(all="ignore"):
        expected = [np.asarray(t) for t in theirs.predict(x, verbose=0)]
    for a, b in zip(mine.predict(x, verbose=0), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # files both ways: Keras's GetItem nodes
    mine.save(tmp_path / "mine.keras")
    with np.errstate(all="ignore"):
        loaded = keras.models.load_model(tmp_path / "mine.keras")
        for a, b in zip(loaded.predict(x, verbose=0), expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        theirs.save(tmp_path / "theirs.keras")
    back = densitron.models.load_model(tmp_path / "theirs.keras")
    for a, b in zip(back.predict(x, verbose=0), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    again = densitron.Model.from_config(mine.get_config())
    assert [tuple(t.shape) for t in again.outputs] == [tuple(t.shape) for t in mine.outputs]


def test_gradients_through_an_index_past_the_batch_axis():
    rng = np.random.default_rng(2)
    inputs = densitron.Input((3, 5))
    h = densitron.layers.Dense(4)(inputs)
    picked = densitron.layers.Concatenate()([h[:, 1], h[:, ::-2, 1:3][:, 0]])
    out = densitron.layers.Dense(2)(picked)
    fd_check(densitron.Model(inputs, out), rng.normal(size=(6, 3, 5)), rng.normal(size=(6, 2)),
             "mse")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_from_config_reads_keras_s_configs(keras):
    # the functional API guide's `Model.from_config(model.get_config())`, given the config
    # Keras's model wrote (its entries carry module and registered_name; its Sequential lists
    # an InputLayer first)
    x = [np.random.default_rng(1).integers(0, 50, size=(3, n)).astype(np.float32)
         for n in (10, 12, 12)]
    for theirs, cls in ((_ticket_model(keras), densitron.Model),
                        (keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                                           keras.layers.Dense(1, name="e")], name="s"),
                         densitron.Sequential)):
        mine = cls.from_config(theirs.get_config())
        assert type(mine) is cls and mine.name == theirs.name
        assert [layer.name for layer in mine.layers] == [layer.name for layer in theirs.layers]
        mine.set_weights([np.asarray(w.value) for w in theirs.weights])
        data = x if cls is densitron.Model else x[0][:, :4]
        with np.errstate(all="ignore"):
            expected = theirs.predict(data, verbose=0)
        got = mine.predict(data, verbose=0)
        if not isinstance(expected, dict):
            got, expected = {"": got}, {"": expected}
        assert sorted(got) == sorted(expected)
        for k, v in got.items():
            np.testing.assert_allclose(v, np.asarray(expected[k]), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_a_keras_file_s_loss_function_loads_as_the_function(keras, tmp_path):
    # the serialization guide: a model compiled with a loss function (Keras's or a registered
    # one of the user's) comes back compiled with that function, as Keras's load_model gives
    # it (densitron gave its name)
    @densitron.saving.register_keras_serializable(package="ex", name="sq_loss")
    def sq_loss(y_true, y_pred):
        return densitron.ops.mean(densitron.ops.square(y_true - y_pred), axis=-1)

    @keras.saving.register_keras_serializable(package="ex", name="sq_loss")
    def keras_sq_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    for loss, expected in ((keras.losses.mean_squared_error, densitron.losses.mean_squared_error),
                           (keras_sq_loss, sq_loss)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("adam", loss)
        model.save(tmp_path / "m.keras")
        loaded = densitron.models.load_model(tmp_path / "m.keras")
        assert loaded.loss is expected
        if expected is sq_loss:  # (densitron's own file: the registered function too)
            loaded.save(tmp_path / "again.keras")
            assert densitron.models.load_model(tmp_path / "again.keras").loss is sq_loss
        x, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
        pred = loaded.predict(x, verbose=0)
        np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), np.mean(pred ** 2),
                                   rtol=1e-5)


def test_keras_utils_without_tf_data_are_refused_by_name(keras):
    # the examples' image_dataset_from_directory, text_dataset_from_directory, load_img, ...:
    # named with what to do instead; img_to_array as Keras's on arrays
    for name in ("image_dataset_from_directory", "text_dataset_from_directory", "split_dataset",
                 "load_img", "FeatureSpace"):
        with pytest.raises(AttributeError, match=f"has no {name}.*Received: utils.{name}"):
            getattr(densitron.utils, name)
    assert not hasattr(densitron.utils, "no_such_util")
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for img in (gray, np.stack([gray] * 3, -1)):
        mine = densitron.utils.img_to_array(img)
        theirs = keras.utils.img_to_array(img)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="Received"):
        densitron.utils.img_to_array(np.zeros((2, 3, 4, 5)))


def test_masks_of_eager_calls_and_compute_mask_as_keras(keras):
    # the masking guide: Embedding(mask_zero=True) and Masking called on arrays give outputs
    # that carry Keras's _keras_mask (the eager Embedding call failed: its mask reached the
    # wrapper model's output), and compute_mask of arrays is Keras's boolean mask (was None)
    padded = densitron.utils.pad_sequences([[711, 632, 71], [73, 8, 3215, 55, 927],
                                            [83, 91, 1, 645, 1253, 927]], padding="post")
    steps = np.repeat(padded[..., None], 5, axis=-1).astype(np.float32)
    steps[1, 2] = 0.0
    for make in (lambda K: K.layers.Embedding(5000, 4, mask_zero=True),
                 lambda K: K.layers.Masking(mask_value=0.0)):
        mine, theirs = make(densitron), make(keras)
        data = padded if isinstance(mine, densitron.layers.Embedding) else steps
        expected = np.asarray(theirs.compute_mask(data))
        assert expected.dtype == bool
        np.testing.assert_array_equal(mine.compute_mask(data), expected)
        out = mine(data)
        np.testing.assert_array_equal(out._keras_mask, expected)  # (Keras on JAX: the same)
    assert densitron.layers.Embedding(10, 2).compute_mask(padded) is None
    plain = densitron.layers.Dense(2)(np.ones((2, 3)))
    assert not hasattr(plain, "_keras_mask")


def _custom_variable_layer(K):
    """The custom saving guide's Dense with state of its own in save_own_variables."""

    @K.saving.register_keras_serializable(package="examples_guide")
    class LayerWithCustomVariable(K.layers.Dense):
        def __init__(self, units, **kwargs):
            super().__init__(units, **kwargs)
            self.my_variable = K.Variable(np.zeros((units,)), name="my_variable",
                                          dtype="float32")

        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["variables"] = self.my_variable.numpy()

        def load_own_variables(self, store):
            self.my_variable.assign(store["variables"])
            super().load_own_variables(store)

    return LayerWithCustomVariable


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_a_layer_s_own_save_and_load_of_its_variables(keras, tmp_path):
    # the custom saving guide: model.save keeps what a layer's save_own_variables writes and
    # load_model hands it to its load_own_variables (densitron wrote the weights alone), in
    # files both ways with Keras
    x = np.random.default_rng(4).normal(size=(5, 10)).astype(np.float32)
    state = np.array([0.25, -2.0], np.float32)
    mine = densitron.Sequential([densitron.Input((10,)), _custom_variable_layer(densitron)(2)])
    mine.layers[0].my_variable.assign(state)
    mine.save(tmp_path / "mine.keras")
    back = densitron.models.load_model(tmp_path / "mine.keras")
    np.testing.assert_array_equal(back.layers[0].my_variable.numpy(), state)
    np.testing.assert_array_equal(back.predict(x, verbose=0), mine.predict(x, verbose=0))
    _custom_variable_layer(keras)
    with np.errstate(all="ignore"):
        theirs = keras.models.load_model(tmp_path / "mine.keras")
        np.testing.assert_array_equal(np.asarray(theirs.layers[0].my_variable.value), state)
        np.testing.assert_allclose(theirs.predict(x, verbose=0), mine.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
        theirs.layers[0].my_variable.assign(-state)
        theirs.save(tmp_path / "theirs.keras")
    back = densitron.models.load_model(tmp_path / "theirs.keras")
    np.testing.assert_array_equal(back.layers[0].my_variable.numpy(), -state)
    np.testing.assert_allclose(back.predict(x, verbose=0), mine.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    # the default pair: the weights as "0", "1", ...; a wrong count refused as Keras does
    dense = densitron.layers.Dense(3)
    dense.build((None, 2))
    store = {}
    dense.save_own_variables(store)
    assert sorted(store) == ["0", "1"]
    dense.load_own_variables({"0": store["0"] * 2, "1": store["1"] + 1})
    np.testing.assert_array_equal(dense.get_weights()[0], store["0"] * 2)
    with pytest.raises(ValueError, match="expected 2 variables, but received 1"):
        dense.load_own_variables({"0": store["0"]})


def _complex_model_class(K):
    """The custom saving guide's CustomModel: a subclassed model of two layers given to its
    constructor, registered, used inside a functional model."""

    @K.saving.register_keras_serializable(package="examples_guide")
    class CustomModel(K.Model):
        def __init__(self, first_layer, second_layer=None, **kwargs):
            super().__init__(**kwargs)
            self.first_layer = first_layer
            self.second_layer = second_layer if second_layer is not None else \
                K.layers.Dense(8)

        def get_config(self):
            config = super().get_config()
            config.update({"first_layer": self.first_layer, "second_layer": self.second_layer})
            return config

        @classmethod
        def from_config(cls, config):
            config["first_layer"] = K.layers.deserialize(config["first_layer"])
            config["second_layer"] = K.layers.deserialize(config["second_layer"])
            return cls(**config)

        def call(self, inputs):
            return self.first_layer(self.second_layer(inputs))

    return CustomModel


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_a_subclassed_model_inside_a_functional_one_saves_and_loads(keras, tmp_path):
    # densitron wrote the inner model's weights at its class's name and read them at
    # "functional" (its trace's model): its own files did not load; Keras's files keep the
    # inner model by its attributes
    x = np.random.default_rng(6).normal(size=(3, 6)).astype(np.float32)

    def build(K):
        inputs = K.Input((6,))
        return K.Model(inputs, _complex_model_class(K)(first_layer=K.layers.Dense(4))(inputs))

    mine = build(densitron)
    mine.save(tmp_path / "mine.keras")
    back = densitron.models.load_model(tmp_path / "mine.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), mine.predict(x, verbose=0), rtol=1e-6)
    with np.errstate(all="ignore"):
        theirs = keras.models.load_model(tmp_path / "mine.keras")
        np.testing.assert_allclose(theirs.predict(x, verbose=0), mine.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
        original = build(keras)
        expected = original.predict(x, verbose=0)
        original.save(tmp_path / "theirs.keras")
    loaded = densitron.models.load_model(tmp_path / "theirs.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
