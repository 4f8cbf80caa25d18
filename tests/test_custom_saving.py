"""Keras's "Save, serialize, and export models" and "Customizing saving and serialization"
guides: layers of the user's through from_config (custom_objects), clone_model,
layers.serialize / deserialize, save_assets / load_assets, and save's and load_weights'
keyword arguments."""

import copy
import json
import os
import zipfile

import densitron
import numpy as np
import pytest
from densitron import layers, ops


class ScaledDense(layers.Layer):
    """The functional guide's CustomDense: no name argument, get_config of its own only."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal")

    def call(self, inputs):
        return ops.matmul(inputs, self.w)

    def get_config(self):
        return {"units": self.units}


class WiderDense(layers.Dense):
    """A built-in layer's subclass, not registered."""


def test_sequential_from_config_takes_custom_objects():
    model = densitron.Sequential([layers.Input((4,)), WiderDense(3), layers.Dense(2)])
    config = model.get_config()
    with pytest.raises(ValueError, match="WiderDense"):
        densitron.Sequential.from_config(config)
    again = densitron.Sequential.from_config(config, custom_objects={"WiderDense": WiderDense})
    assert [type(layer) for layer in again.layers] == [WiderDense, layers.Dense]
    assert type(layers.deserialize(layers.serialize(WiderDense(2)),
                                   custom_objects={"WiderDense": WiderDense})) is WiderDense
    inputs = layers.Input((4,))  # a functional model's from_config too
    functional = densitron.Model(inputs, layers.Dense(2)(WiderDense(3)(inputs)))
    with pytest.raises(ValueError, match="WiderDense"):
        densitron.Model.from_config(functional.get_config())
    again = densitron.Model.from_config(functional.get_config(),
                                        custom_objects={"WiderDense": WiderDense})
    assert [type(layer) for layer in again.layers[1:]] == [WiderDense, layers.Dense]


def test_a_layer_without_a_name_argument_clones_and_comes_from_config(tmp_path, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))

    @densitron.saving.register_keras_serializable(package="MyLayers")
    class CustomLayer(layers.Layer):  # the saving guide's: get_config without name
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    inputs = layers.Input((4,))
    model = densitron.Model(inputs, layers.Dense(1)(CustomLayer(0.5)(inputs)))
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    path = str(tmp_path / "custom.keras")
    model.save(path)
    clone = densitron.models.clone_model(model)
    rebuilt = densitron.Model.from_config(model.get_config())
    # (as in Keras, a layer built without a name gets a new one)
    assert clone.layers[1].name == "custom_layer_1" and rebuilt.layers[1].name == \
        "custom_layer_2"
    for again in (clone, rebuilt, densitron.models.load_model(path)):
        assert [type(layer) for layer in again.layers[1:]] == [CustomLayer, layers.Dense]
        assert again.layers[1].factor == 0.5
        again.set_weights(model.get_weights())
        np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(TypeError, match="name"):  # a layer of its own: the name is its config's
        layers.deserialize({"class_name": "CustomLayer",
                            "config": {"factor": 0.5, "name": "c"}})


def test_serialize_writes_nested_objects_and_the_registered_name(monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))

    @densitron.saving.register_keras_serializable(package="MyLayers", name="KernelMult")
    class MyDense(layers.Layer):  # the saving guide's appendix
        def __init__(self, units, *, kernel_regularizer=None, kernel_initializer=None,
                     nested_model=None, **kwargs):
            super().__init__(**kwargs)
            self.hidden_units = units
            self.kernel_regularizer = kernel_regularizer
            self.kernel_initializer = kernel_initializer
            self.nested_model = nested_model

        def get_config(self):
            return {**super().get_config(), "units": self.hidden_units,
                    "kernel_regularizer": self.kernel_regularizer,
                    "kernel_initializer": self.kernel_initializer,
                    "nested_model": self.nested_model}

        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel",
                                          shape=(input_shape[-1], self.hidden_units),
                                          regularizer=self.kernel_regularizer,
                                          initializer=self.kernel_initializer)

        def call(self, inputs):
            return ops.matmul(inputs, self.kernel)

    inner = MyDense(16, kernel_regularizer=densitron.regularizers.L1L2(l1=1e-5, l2=1e-4),
                    kernel_initializer="ones", name="inner")
    config = layers.serialize(inner)
    # (Keras's serialize_keras_object: the class's module, None for __main__'s)
    assert config["module"] == __name__ and config["class_name"] == "MyDense"
    assert config["registered_name"] == "MyLayers>KernelMult"
    assert config["config"]["kernel_regularizer"] == {
        "module": "keras.regularizers", "class_name": "L1L2",
        "config": {"l1": pytest.approx(1e-5), "l2": pytest.approx(1e-4)},
        "registered_name": None}
    assert "build_config" not in config
    outer = layers.serialize(MyDense(64, nested_model=inner, name="outer"))
    assert outer["config"]["nested_model"] == config
    outer = json.loads(json.dumps(outer))
    again = layers.deserialize(outer)
    # (as Keras, the nested objects reach from_config serialized: its own from_config would
    # deserialize them)
    assert type(again) is MyDense and again.name == "outer" and again.hidden_units == 64
    assert again.nested_model == json.loads(json.dumps(config))
    assert densitron.saving.deserialize_keras_object(outer).name == "outer"
    # a built layer keeps its input shape, and comes back built (Keras's build_config)
    inner.build((None, 4))
    config = json.loads(json.dumps(layers.serialize(inner)))
    assert config["build_config"] == {"input_shape": [None, 4]}
    again = layers.deserialize(config)
    assert again.built and tuple(again.kernel.shape) == (4, 16)
    np.testing.assert_array_equal(again.kernel.numpy(), np.ones((4, 16)))
    with pytest.raises(ValueError, match="Received: config=3"):
        layers.deserialize(3)


def test_a_layer_given_layers_comes_from_config_and_through_save(tmp_path, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))

    @densitron.saving.register_keras_serializable(package="ComplexModels")
    class CustomModel(layers.Layer):  # the saving guide's: get_config returns the layers
        def __init__(self, first_layer, second_layer=None, **kwargs):
            super().__init__(**kwargs)
            self.first_layer = first_layer
            self.second_layer = second_layer if second_layer is not None else \
                layers.Dense(8)

        def get_config(self):
            return {**super().get_config(), "first_layer": self.first_layer,
                    "second_layer": self.second_layer}

        @classmethod
        def from_config(cls, config):
            config["first_layer"] = layers.deserialize(config["first_layer"])
            config["second_layer"] = densitron.saving.deserialize_keras_object(
                config["second_layer"])
            return cls(**config)

        def call(self, inputs):
            return self.first_layer(self.second_layer(inputs))

    inputs = layers.Input((32,))
    block = CustomModel(first_layer=layers.Dense(16))
    model = densitron.Model(inputs, block(inputs))
    x = np.random.default_rng(0).random((3, 32)).astype(np.float32)
    rebuilt = densitron.Model.from_config(model.get_config())
    again = rebuilt.layers[1]
    assert type(again) is CustomModel and again.first_layer is not block.first_layer
    assert again.first_layer.units == 16 and again.second_layer.units == 8
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))
    path = tmp_path / "block.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        entry = json.loads(z.read("config.json"))["config"]["layers"][1]
    assert entry["registered_name"] == "ComplexModels>CustomModel"
    assert {k: entry["config"]["first_layer"][k] for k in ("module", "class_name")} == {
        "module": "keras.layers", "class_name": "Dense"}
    loaded = densitron.models.load_model(path)
    assert type(loaded.layers[1]) is CustomModel
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _assets_layer(base, register):
    @register(package="my_custom_package", name="LayerWithCustomAssets")
    class LayerWithCustomAssets(base):  # the customizing-saving guide's
        def __init__(self, vocab=None, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.vocab = vocab

        def save_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt"), "w") as f:
                f.write(self.vocab)

        def load_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt")) as f:
                self.vocab = f.read().replace("<unk>", "little")

    return LayerWithCustomAssets


def test_save_assets_and_load_assets_go_through_keras_files(tmp_path, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))
    with_assets = _assets_layer(layers.Dense, densitron.saving.register_keras_serializable)
    seen = []

    @densitron.saving.register_keras_serializable(package="my_custom_package")
    class Block(layers.Layer):  # a layer of layers, asked for assets it did not write
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = layers.Dense(2)

        def call(self, x):
            return self.inner(x)

        def save_assets(self, inner_path):
            seen.append(("save", inner_path.replace(os.sep, "/").split("/")[-2:]))

        def load_assets(self, inner_path):
            seen.append(("load", inner_path))

    model = densitron.Sequential([layers.Input((10,)),
                                  with_assets(vocab="Mary had a <unk> lamb.", units=5)])
    path = str(tmp_path / "assets.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        assert "assets/layers/layer_with_custom_assets/vocabulary.txt" in z.namelist()
    restored = densitron.models.load_model(path)
    assert restored.layers[0].vocab == "Mary had a little lamb."
    assert copy.deepcopy(model).layers[0].vocab == "Mary had a little lamb."
    inputs = layers.Input((10,))
    model = densitron.Model(inputs, Block()(with_assets(vocab="a <unk>", units=5)(inputs)))
    model.save(path)
    assert seen == [("save", ["layers", "block"])]
    restored = densitron.models.load_model(path)
    assert restored.layers[1].vocab == "a little" and seen[1:] == [("load", None)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_assets_files_cross_with_keras(tmp_path, keras, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))
    ours = _assets_layer(layers.Dense, densitron.saving.register_keras_serializable)
    theirs = _assets_layer(keras.layers.Dense, keras.saving.register_keras_serializable)
    path = str(tmp_path / "keras.keras")
    keras.Sequential([keras.Input((10,)), theirs(vocab="a <unk> lamb", units=5)]).save(path)
    assert type(densitron.models.load_model(path).layers[0]) is ours
    assert densitron.models.load_model(path).layers[0].vocab == "a little lamb"
    path = str(tmp_path / "densitron.keras")
    densitron.Sequential([layers.Input((10,)), ours(vocab="the <unk> lamb", units=5)]).save(path)
    assert keras.models.load_model(path).layers[0].vocab == "the little lamb"


def test_save_model_unzipped_writes_a_directory_load_model_reads(tmp_path, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))
    with_assets = _assets_layer(layers.Dense, densitron.saving.register_keras_serializable)
    model = densitron.Sequential([layers.Input((10,)), with_assets(vocab="a <unk>", units=4),
                                  layers.Dense(2)])
    model.compile("adam", "mse")
    x, y = np.random.default_rng(0).random((8, 10)), np.zeros((8, 2))
    model.fit(x, y, verbose=0)
    path = str(tmp_path / "unzipped")
    densitron.saving.save_model(model, path, zipped=False)
    assert sorted(os.listdir(path)) == ["assets", "config.json", "metadata.json",
                                        "model.weights.h5"]
    assert os.path.exists(os.path.join(path, "assets/layers/layer_with_custom_assets/"
                                             "vocabulary.txt"))
    loaded = densitron.models.load_model(path)
    assert loaded.layers[0].vocab == "a little"
    assert int(np.asarray(loaded.optimizer.iterations)) == 1
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(path, zipped=False)  # (overwrite=True: replaced; the model's method too)
    with pytest.raises(FileExistsError, match="Received: filepath="):
        densitron.saving.save_model(model, path, overwrite=False, zipped=False)
    with pytest.raises(ValueError, match="should not end in `.keras`. Received: filepath="):
        densitron.saving.save_model(model, str(tmp_path / "m.keras"), zipped=False)
    with pytest.raises(ValueError, match="Received: zipped='no'"):
        densitron.saving.save_model(model, path, zipped="no")
    densitron.saving.save_model(model, str(tmp_path / "m.keras"), zipped=True)
    assert zipfile.is_zipfile(tmp_path / "m.keras")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_unzipped_model_directories_cross_with_keras(tmp_path, keras):
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh")])
    theirs.save(str(tmp_path / "k"), zipped=False)
    np.testing.assert_allclose(densitron.models.load_model(str(tmp_path / "k")).predict(
        x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6)
    ours = densitron.Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh")])
    densitron.saving.save_model(ours, str(tmp_path / "d"), zipped=False)
    np.testing.assert_allclose(keras.models.load_model(str(tmp_path / "d")).predict(
        x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("ext", [".weights.h5", ".weights.npz", ".keras"])
def test_load_weights_skip_mismatch(tmp_path, ext):
    saved = densitron.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(2)])
    path = str(tmp_path / f"m{ext}")
    if ext == ".keras":
        saved.save(path)
    else:
        saved.save_weights(path)
    model = densitron.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(5)])
    before = model.get_weights()
    with pytest.raises(ValueError, match="Received: "):
        densitron.saving.load_weights(model, path)
    for got, want in zip(model.get_weights(), before):  # (nothing loaded)
        np.testing.assert_array_equal(got, want)
    with pytest.warns(UserWarning, match="could not be loaded"):
        model.load_weights(path, skip_mismatch=True)  # (the model's method passes it on)
    after = model.get_weights()
    for k in (0, 1):  # the first Dense loaded, the second keeps its own
        np.testing.assert_array_equal(after[k], saved.get_weights()[k])
        np.testing.assert_array_equal(after[k + 2], before[k + 2])
    with pytest.raises(ValueError, match="Received: "):
        densitron.saving.load_weights(model, path, by_name=True)


def test_build_from_config_of_a_layer_built_with_more_than_its_input_shape(tmp_path,
                                                                          monkeypatch):
    # The saving guide's LayerWithCustomBuild: build(input_shape, layer_init) called by hand,
    # get_build_config/build_from_config overridden; files keep its build_config and loading
    # builds it through build_from_config (its first call would build it without layer_init);
    # a Sequential model of registered layers of the user's stays a Sequential model
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))

    @densitron.saving.register_keras_serializable(package="tests_build")
    class LayerWithCustomBuild(layers.Layer):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape, layer_init):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer=layer_init)
            self.layer_init, self._shape = layer_init, list(input_shape)

        def call(self, inputs):
            return ops.matmul(inputs, self.w)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

        def get_build_config(self):
            return {"input_shape": self._shape, "layer_init": self.layer_init}

        def build_from_config(self, config):
            self.build(config["input_shape"], config["layer_init"])

    custom = LayerWithCustomBuild()
    custom.build(input_shape=(None, 3), layer_init="random_normal")
    model = densitron.Sequential([layers.Input((3,)), custom, layers.Dense(1)])
    path = str(tmp_path / "build.keras")
    model.save(path)
    back = densitron.models.load_model(path)
    assert isinstance(back, densitron.Sequential)
    assert type(back.layers[0]) is LayerWithCustomBuild
    assert back.layers[0].layer_init == "random_normal"
    x = np.random.default_rng(1).random((4, 3)).astype(np.float32)
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
