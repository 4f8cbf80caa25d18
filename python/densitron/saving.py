"""Saving and loading whole models and weights.

`model.save("m.keras")` writes Keras's .keras zip: the model and compile configs in Keras's
serialized form (keras_format.py) and the weights in Keras's model.weights.h5 layout, so
`keras.models.load_model` reads it; `densitron.models.load_model` reads those files, Keras's
own, and densitron's first layout (its own config and a .npz of the weights).
`save_weights` / `load_weights` take ".weights.npz" or ".weights.h5" (Keras's layout). Every
file is written beside its target and moved into place only when complete, so a failed save
leaves the old file intact."""

import io
import json
import os
import tempfile
import time
import zipfile

import numpy as np

from densitron._checks import path_arg
from densitron.utils import deserialize_keras_object, naming, serialize_keras_object
from densitron.utils.serialization import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

# The Keras release whose .keras layout model.save writes (KERAS_SEMANTICS.md: Keras 3.15).
KERAS_FORMAT_VERSION = "3.15.1"


def _umask():
    """The process's umask (read from /proc where it can be, which leaves it unchanged for
    other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(filepath, write, overwrite):
    """Writes through write(f) into a temporary file beside the target, then renames it into
    place, so that a failed write leaves the old file whole. A symbolic link is written
    through (its target replaced, as a plain write would), and the file gets the mode a plain
    write would give: the old file's, or 0666 less the umask (mkstemp's is 0600)."""
    filepath = path_arg("filepath", filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False. "
                              f"Received: filepath={filepath!r}")
    target = os.path.realpath(filepath)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".densitron-", suffix=".tmp", dir=directory)
    except OSError as e:  # (named by the user's path, not the temporary's)
        raise type(e)(e.errno, f"{e.strerror}: cannot write a file in {directory!r}. "
                      f"Received: filepath={filepath!r}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomically(filepath, write):
    """Writes a file through write(f) into a temporary beside it, then moves it into place."""
    _atomic_write(filepath, write, True)


def save_state(model, filepath):
    """The weights and, when compiled, the optimizer's state, in Keras's .weights.h5 layout
    (the file BackupAndRestore keeps), replaced atomically."""
    weights = _keras_h5_bytes(model)
    _atomic_write(filepath, lambda f: f.write(weights), True)


def load_state(model, filepath):
    """The inverse of save_state: the weights, and the optimizer's state when the model is
    compiled and the file holds it."""
    with _h5py().File(filepath, "r") as h:
        _load_keras_h5(model, h, filepath)
        if model.compiled:
            _load_keras_optimizer(model, h, filepath)


def _npz_bytes(weights):
    buf = io.BytesIO()
    np.savez(buf, **{f"w{i:04d}": w for i, w in enumerate(weights)})
    return buf.getvalue()


def _npz_weights(data):
    with np.load(io.BytesIO(data)) as z:
        return [z[k] for k in sorted(z.files)]


def _compile_config(model):
    if not model.compiled:
        return None
    from densitron import losses, metrics

    opt = model.optimizer
    loss = model.loss
    if isinstance(loss, dict):
        loss = {k: losses.serialize(v) for k, v in loss.items()}
    elif isinstance(loss, (list, tuple)):
        loss = [losses.serialize(v) for v in loss]
    else:
        loss = losses.serialize(loss)
    return {
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "loss": loss,
        "loss_weights": model._pending_loss_weights,
        # metric objects in their {"class_name", "config"} form
        "metrics": metrics.map_structure(model._compile_metrics, metrics.serialize),
        "weighted_metrics": metrics.map_structure(
            getattr(model, "_compile_weighted_metrics", None), metrics.serialize),
    }


def save_model(model, filepath, overwrite=True, zipped=None):
    """Keras's save_model: a `.keras` zip, Keras's legacy `.h5`, or with `zipped=False` the
    `.keras` file's contents as a directory (not ending in `.keras`), which load_model
    reads as well."""
    filepath = path_arg("filepath", filepath)
    if zipped is not None and not isinstance(zipped, bool):
        raise ValueError(f"`zipped` must be True, False or None. Received: zipped={zipped!r}")
    if zipped is False:
        if filepath.endswith(".keras"):
            raise ValueError("When using `zipped=False`, the `filepath` argument should not "
                             f"end in `.keras`. Received: filepath={filepath!r}")
        _save_keras_dir(model, filepath, overwrite)
        return
    if filepath.endswith(".h5") and not filepath.endswith(".weights.h5"):
        _save_legacy_h5(model, filepath, overwrite)
        return
    if not filepath.endswith(".keras"):
        raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` "
                         "extension for the native Keras format (recommended) or a `.h5` "
                         f"extension. Received: filepath={filepath!r}")
    _atomic_write(filepath, _keras_zip_writer(model), overwrite)


def _keras_files(model):
    """{name: bytes} of a `.keras` file, in Keras's layout, which Keras's load_model reads:
    metadata.json, config.json (Keras's serialized form), model.weights.h5 (its weights
    layout) and the layers' assets."""
    from densitron import __version__, keras_format

    config = keras_format.to_keras_file(model, _graph_weight_paths(model))
    config["compile_config"] = keras_format.compile_to_keras(_compile_config(model)) or {}
    meta = json.dumps({"keras_version": KERAS_FORMAT_VERSION, "densitron_version": __version__,
                       "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")})
    return {"metadata.json": meta.encode(), "config.json": json.dumps(config).encode(),
            "model.weights.h5": _keras_h5_bytes(model), **_saved_assets(model)}


def _keras_zip_writer(model):
    """A function writing the model as a `.keras` zip into a binary file object. Everything is
    serialized before it returns, so a failure leaves the target untouched."""
    files = _keras_files(model)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                z.writestr(name, data)

    return write


def _save_keras_dir(model, dirpath, overwrite):
    """save(..., zipped=False): the `.keras` file's contents in the directory `dirpath`, each
    file replaced whole; other files there are left alone, as Keras leaves them (an assets/
    directory of the user's was deleted)."""
    files = _keras_files(model)
    if os.path.exists(dirpath) and not overwrite:
        raise FileExistsError(f"{dirpath} exists and overwrite=False. "
                              f"Received: filepath={dirpath!r}")
    if os.path.exists(dirpath) and not os.path.isdir(dirpath):
        raise ValueError("With `zipped=False` the model is saved as a directory; a file has "
                         f"that name. Received: filepath={dirpath!r}")
    os.makedirs(dirpath, exist_ok=True)
    for name, data in files.items():
        target = os.path.join(dirpath, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _atomic_write(target, lambda f, data=data: f.write(data), True)


# --- assets: the files layers write with save_assets(dir_path) ------------------------------
# Keras keeps them in the archive under assets/<the layer's path>/ (the path of its weights:
# layers/dense, ...; the model's own directly under assets/), and gives load_assets that
# directory (None when the layer wrote nothing) after the weights are loaded.

def _asset_owners(model):
    """(path, object) of the model and its layers, at the paths their assets are kept."""
    yield "", model
    for path, layer in _keras_layer_paths(model):
        if path:  # (a subclassed model's own weights: the model's, at "")
            yield path, layer.layer if isinstance(layer, _OwnWeights) else layer


def _saved_assets(model):
    """{archive name: bytes} of the files the model's layers write with save_assets."""
    owners = [(path, obj) for path, obj in _asset_owners(model) if hasattr(obj, "save_assets")]
    if not owners:
        return {}
    files = {}
    with tempfile.TemporaryDirectory(prefix="densitron-assets-") as root:
        for path, obj in owners:
            directory = os.path.join(root, path)
            os.makedirs(directory, exist_ok=True)
            obj.save_assets(directory)
        for here, _, names in os.walk(root):
            for name in sorted(names):
                full = os.path.join(here, name)
                with open(full, "rb") as f:
                    files["assets/" + os.path.relpath(full, root).replace(os.sep, "/")] = \
                        f.read()
    return files


def _load_assets(model, root):
    """Each load_assets of the model and its layers, given its directory below `root` (the
    assets directory), or None when it has none."""
    for path, obj in _asset_owners(model):
        if hasattr(obj, "load_assets"):
            directory = os.path.join(root, path) if path else root
            obj.load_assets(directory if os.path.isdir(directory) else None)


def _load_archived_assets(model, assets, filepath):
    """load_assets of the assets of a `.keras` archive ({archive name: bytes})."""
    with tempfile.TemporaryDirectory(prefix="densitron-assets-") as root:
        for name, data in assets.items():
            parts = name.split("/")[1:]
            if not parts or any(p in ("", ".", "..") for p in parts[:-1]) or \
                    parts[-1] in (".", ".."):
                raise ValueError(f"Invalid asset path in {filepath}: {name!r} escapes the "
                                 f"assets directory. Received: filepath={filepath!r}")
            if not parts[-1]:  # (a directory's own entry)
                continue
            target = os.path.join(root, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        _load_assets(model, root)


def model_to_bytes(model):
    """The model as the bytes of a `.keras` file (pickling and copying go through this)."""
    buf = io.BytesIO()
    _keras_zip_writer(model)(buf)
    return buf.getvalue()


def model_from_bytes(data, custom_objects=None):
    """The model of `model_to_bytes`' bytes, compiled, with its weights and optimizer state
    (`custom_objects`: the classes of your own it refers to, as for load_model)."""
    from densitron.utils import serialization

    with serialization.custom_object_scope(custom_objects):
        return _load_keras_zip(io.BytesIO(data), True, "a pickled model")


def _saved_loss(loss):
    """compile's `loss` from its saved form: names as they are, serialized objects rebuilt,
    in a list or per-output dict too."""
    from densitron import losses

    def one(v):
        if isinstance(v, str) and ">" in v:  # (a registered function of the user's, by name)
            from densitron.utils.serialization import get_registered_object

            found = get_registered_object(v)
            if callable(found) and not isinstance(found, type):
                return found
        return losses.deserialize(v) if isinstance(v, dict) else v

    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: one(v) for k, v in loss.items()}
    if isinstance(loss, list):
        return [one(v) for v in loss]
    return one(loss)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuilds a model saved with `model.save(...)` (or by Keras), with its weights and,
    when compiled, its optimizer's state. `custom_objects` ({name: class}) names classes of
    your own the file refers to (learning-rate schedules written in Python)."""
    from densitron.utils import serialization

    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("`custom_objects` must be a dict of names to classes. Received: "
                        f"custom_objects={custom_objects!r}")
    with serialization.custom_object_scope(custom_objects):
        return _load_model(filepath, compile)


def _load_model(filepath, compile):
    from densitron import keras_format, layers

    filepath = path_arg("filepath", filepath)
    if not os.path.exists(filepath):
        raise ValueError(f"File not found: filepath={filepath}. Please ensure the file is an "
                         f"accessible `.keras` zip file. Received: filepath={filepath!r}")
    if os.path.isdir(filepath) and os.path.exists(os.path.join(filepath, "config.json")):
        return _load_keras_dir(filepath, compile)  # (save(..., zipped=False)'s)
    if filepath.endswith(".h5") and not filepath.endswith(".weights.h5"):
        return _load_legacy_h5(filepath, compile)
    return _load_keras_zip(filepath, compile, filepath)


def _load_keras_dir(dirpath, compile):
    """load_model of a `.keras` file's contents in a directory (save(..., zipped=False))."""
    def read(name):
        with open(os.path.join(dirpath, name), "rb") as f:
            return f.read()

    try:
        config = json.loads(read("config.json"))
        has_h5 = os.path.exists(os.path.join(dirpath, "model.weights.h5"))
        h5 = read("model.weights.h5") if has_h5 else None
        weights = None if has_h5 else _npz_weights(read("model.weights.npz"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{dirpath} is not a Keras or densitron model directory ({e}). "
                         f"Received: filepath={dirpath!r}") from None
    model = _model_of_files(config, h5, weights, compile, dirpath)
    if os.path.isdir(os.path.join(dirpath, "assets")):
        _load_assets(model, os.path.join(dirpath, "assets"))
    return model


def _load_keras_zip(source, compile, filepath):
    """load_model of a `.keras` zip: a path or a binary file object (`filepath` names it)."""
    try:
        with zipfile.ZipFile(source) as z:
            config = json.loads(z.read("config.json"))
            names = z.namelist()
            # Keras's layout (Keras's files, and densitron's from 0.1) or densitron's first
            h5 = z.read("model.weights.h5") if "model.weights.h5" in names else None
            weights = None if h5 is not None else _npz_weights(z.read("model.weights.npz"))
            assets = {name: z.read(name) for name in names if name.startswith("assets/")}
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ValueError(f"{filepath} is not a Keras or densitron model file ({e}). "
                         f"Received: filepath={filepath!r}") from None
    model = _model_of_files(config, h5, weights, compile, filepath)
    if assets:
        _load_archived_assets(model, assets, filepath)
    return model


def _model_of_files(config, h5, weights, compile, filepath):
    """The model of a `.keras` file's config.json (parsed) and its weights: model.weights.h5's
    bytes, or else densitron's first layout's list of arrays; compiled when it was."""
    from densitron import keras_format

    keras_layout = "module" in config
    model, weight_paths = _model_of_config(config, keras_layout)
    cc = config.get("compile_config")
    if cc and keras_layout:
        cc = keras_format.compile_from_keras(cc)
    _compile_saved(model, cc, compile, filepath)
    if h5 is None:
        _set_graph_weights(model, weights)
    else:
        with _h5py().File(io.BytesIO(h5), "r") as h:
            if weight_paths is not None:  # (a subclassed model's trace, by where they are)
                _set_graph_weights(model, [h[path][()] for path in weight_paths])
            else:
                _load_keras_h5(model, h, filepath)
            if compile and cc:
                _load_keras_optimizer(model, h, filepath)
    return model


def _model_of_config(config, keras_layout):
    """(model, weight_paths) of a model file's config: the model, built as it was saved, and
    where the file keeps its graph's weights when that is not where its layers say (None).
    A subclassed model comes back as its class, as Keras's load_model rebuilds it: the
    class's from_config of its config, then build_from_config of its build_config, when the
    class is at hand (registered, in custom_objects or in a custom_object_scope); else the
    traced graph densitron's files keep beside it, as a functional model; else (Keras's
    files) Keras's error."""
    from densitron import keras_format, layers
    from densitron.models.functional import Functional
    from densitron.utils.keras_objects import _lookup

    if not keras_layout:
        return layers.deserialize(config), None
    if config.get("class_name") not in ("Functional", "Sequential", "Model"):
        cls = _lookup(config.get("class_name"), config.get("registered_name"),
                      config.get("module"), None)
        traced = config.get(keras_format.TRACED_KEY)
        if not (isinstance(cls, type) and issubclass(cls, Functional)):
            if traced is None:
                raise TypeError(
                    f"Could not locate class '{config.get('class_name')}'. Make sure custom "
                    "classes and functions are decorated with "
                    "`@keras.saving.register_keras_serializable()`. If they are already "
                    "decorated, make sure they are all imported so that the decorator is run "
                    "before trying to load them. Received: config with class_name="
                    f"{config.get('class_name')!r}, registered_name="
                    f"{config.get('registered_name')!r}")
            model = layers.deserialize(traced["config"])
            return model, traced.get("weight_paths")
    model = layers.deserialize(keras_format.from_keras(config))
    if not model.built and config.get("build_config"):
        model.build_from_config(config["build_config"])
    return model, None


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from `to_json`'s architecture, or Keras's."""
    from densitron import keras_format, layers
    from densitron.utils import serialization

    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("`custom_objects` must be a dict of names to classes. Received: "
                        f"custom_objects={custom_objects!r}")
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`json_string` must hold a model's JSON ({e}). Received: "
                         f"json_string={str(json_string)[:80]!r}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("`json_string` must hold a serialized model. Received: "
                         f"json_string={str(json_string)[:80]!r}")
    with serialization.custom_object_scope(custom_objects):
        return layers.deserialize(keras_format.from_keras(config) if "module" in config
                                  else config)


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """Keras's clone_model: the same architecture with new layers and freshly initialized
    weights (use `set_weights(model.get_weights())` to copy them); not compiled."""
    from densitron import layers

    if call_function is not None:
        raise ValueError("densitron's clone_model calls each layer as the model did (no "
                         f"`call_function` yet). Received: call_function={call_function!r}")
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments. Received: kwargs={kwargs}")
    if not hasattr(model, "get_config") or not hasattr(model, "_nodes"):
        raise ValueError(f"Expected `model` to be a densitron Model. Received: model={model!r}")
    if clone_function is not None and not callable(clone_function):
        raise ValueError("`clone_function` must be a function of a layer. Received: "
                         f"clone_function={clone_function!r}")
    # (a model of op calls is cloned call by call, as Keras's clone_model: the clone's op
    # calls are recorded as Keras's op nodes, as the model's, which its config does not hold)
    if clone_function is None and input_tensors is None and not _records_ops(model):
        if getattr(model, "_subclassed", False):  # (Keras's: its class again, from its entry)
            from densitron import keras_format
            from densitron.utils.serialization import custom_object_scope

            with custom_object_scope({type(model).__name__: type(model)}):
                return layers.deserialize(keras_format.to_keras_file(model))
        return layers.deserialize({"class_name": "Sequential" if type(model).__name__ ==
                                   "Sequential" else "Functional", "config": model.get_config()})
    return _clone_by_calls(model, input_tensors, clone_function or _fresh_layer)


def _fresh_layer(layer):
    """clone_model's default clone_function: a new layer of the same config."""
    return type(layer).from_config(layer.get_config())


def _clone_by_calls(model, input_tensors, clone_function):
    """clone_model with a clone_function or input_tensors, as Keras's: each of the model's
    Keras-level layers replaced by clone_function(layer) (once, however often it is called)
    and called as the model called it, on the model's new inputs (new Inputs of the same
    shapes, or `input_tensors`); the layers of ops are made again as they were."""
    from densitron import keras_format
    from densitron.layers import Input, InputLayer, KerasTensor
    from densitron.models import Model, Sequential
    from densitron.models.functional import _structured, keras_calls

    model._ensure_built()
    inputs = list(model.inputs)
    if input_tensors is None:
        new_inputs = [Input(shape=t.shape[1:], name=t._node.layer.name) for t in inputs]
    else:
        new_inputs = (list(input_tensors.values()) if isinstance(input_tensors, dict) else
                      list(input_tensors) if isinstance(input_tensors, (list, tuple))
                      else [input_tensors])
        if len(new_inputs) != len(inputs) or not all(
                isinstance(t, KerasTensor) and tuple(t.shape) == tuple(o.shape)
                for t, o in zip(new_inputs, inputs)):
            raise ValueError(
                "`input_tensors` must be symbolic tensors (Input()) of the model's input "
                f"shapes {[tuple(t.shape) for t in inputs]}. Received: "
                f"input_tensors={input_tensors!r}")
    if isinstance(model, Sequential) and model._layers and not any(
            len(layer._inbound_nodes) > 1 for layer in model._layers):
        clones = [clone_function(layer) for layer in model._layers]
        return Sequential([new_inputs[0]._node.layer, *clones], name=model.name)
    tensors = {id(old): new for old, new in zip(inputs, new_inputs)}
    clones = {}
    for call in keras_calls(model._nodes):
        layer = call.layer
        if isinstance(layer, InputLayer):
            continue
        if id(layer) not in clones:
            if layer._op_layer:  # (an op's layer: made again as an op's)
                clones[id(layer)] = _fresh_layer(layer)
                clones[id(layer)]._op_layer = True
            else:
                clones[id(layer)] = clone_function(layer)
        args = [tensors[id(t)] for t in call.inputs]
        keys = getattr(call, "keys", None)
        if keys is not None:
            out = clones[id(layer)](dict(zip(keys, args)))
        elif getattr(call, "positional", False):
            out = clones[id(layer)](*args)
        elif getattr(call, "is_list", False):
            out = clones[id(layer)](args)
        else:
            out = clones[id(layer)](args[0])
        outs = (list(out.values()) if isinstance(out, dict)
                else list(out) if isinstance(out, (list, tuple)) else [out])
        for old, new in zip(call.outputs, outs):
            tensors[id(old)] = new
            record = getattr(old, "_keras_op", None)
            if record is not None:  # (the op, on the clone's tensors)
                new._keras_op = keras_format.OpCall(
                    record.module, record.class_name, record.config,
                    _mapped(record.args, lambda t: tensors.get(id(t), t)))
    outputs = [tensors[id(t)] for t in model.outputs]
    return Model(_structured(model._input_keys, new_inputs),
                 _structured(model._output_keys, outputs), name=model.name)


def _records_ops(model):
    """Whether a functional model's graph holds op calls recorded as Keras's op nodes (a
    Lambda's are saved as its layers)."""
    from densitron.layers.core import Lambda

    return any(getattr(t, "_keras_op", None) is not None and
               not any(isinstance(r.layer, Lambda) for r in node.within)
               for node in getattr(model, "_nodes", ()) for t in node.outputs)


def _mapped(value, fn):
    """An op's arguments with fn applied to each value in its lists and tuples."""
    if isinstance(value, (list, tuple)):
        return type(value)(_mapped(v, fn) for v in value)
    return fn(value)


def _compile_saved(model, cc, compile, filepath):
    """Compiles a loaded model with its saved compile arguments (densitron's form)."""
    from densitron import optimizers

    if compile and cc:
        opt_cfg = cc["optimizer"]
        from densitron.optimizers.optimizer import CLASSES

        opt_cls = CLASSES.get(opt_cfg["class_name"])
        if opt_cls is None:
            raise ValueError(f"densitron has the optimizers {', '.join(sorted(CLASSES))}; load "
                             "the model with compile=False and compile it with one of them. "
                             f"Received: optimizer {opt_cfg['class_name']!r} in {filepath}")
        model.compile(optimizer=opt_cls.from_config(opt_cfg["config"]),
                      loss=_saved_loss(cc["loss"]), loss_weights=cc["loss_weights"],
                      metrics=cc["metrics"], weighted_metrics=cc.get("weighted_metrics"))


def save_weights(model, filepath, overwrite=True):
    filepath = path_arg("filepath", filepath)
    weights = [w.numpy() for w in model._graph_weights()]  # (see _set_graph_weights)
    if filepath.endswith(".weights.npz"):
        _atomic_write(filepath, lambda f: f.write(_npz_bytes(weights)), overwrite)
        return
    if filepath.endswith(".weights.h5"):
        h5py = _h5py()

        def write(f):
            with h5py.File(f, "w") as h:
                _write_keras_h5(model, h)

        _atomic_write(filepath, write, overwrite)
        return
    raise ValueError("The filename must end in `.weights.npz` (or `.weights.h5` with h5py "
                     f"installed). Received: filepath={filepath!r}")


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """Keras's load_weights: from ".weights.h5" (or ".weights.npz"), or a whole model's
    ".keras" file. With `skip_mismatch`, a layer whose saved variables do not fit (their count
    or a shape) keeps its own, with a warning naming it; else nothing is loaded and
    ValueError names it."""
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {sorted(kwargs)}. "
                         f"Received: {kwargs!r}")
    filepath = path_arg("filepath", filepath)
    if not os.path.exists(filepath):
        raise ValueError(f"File not found. Received: filepath={filepath!r}")
    if filepath.endswith(".weights.npz"):
        with open(filepath, "rb") as f:
            weights = _npz_weights(f.read())
    elif filepath.endswith(".weights.h5"):
        h5py = _h5py()
        with h5py.File(filepath, "r") as h:
            if "layers" in h or "vars" in h:  # Keras's layout (Keras's, densitron's since 0.1)
                _load_keras_h5(model, h, filepath, skip_mismatch)
                return
            weights = [h[k][()] for k in sorted(h.keys())]  # densitron's first layout
    elif filepath.endswith(".keras"):  # a whole model's file: its weights, as Keras reads it
        h5py = _h5py()
        with zipfile.ZipFile(filepath) as z, h5py.File(
                io.BytesIO(z.read("model.weights.h5")), "r") as h:
            _load_keras_h5(model, h, filepath, skip_mismatch)
        return
    else:
        raise ValueError("The filename must end in `.weights.npz`, `.weights.h5` or `.keras`. "
                         f"Received: filepath={filepath!r}")
    _set_graph_weights(model, weights, skip_mismatch, filepath)


def _set_graph_weights(model, weights, skip_mismatch=False, filepath=None):
    """set_weights of a list in the graph's order (model._graph_weights), the order of
    densitron's .weights.npz files: the model that saved it and the model loaded from its
    .keras file (whose composite layers are their sublayers) read it alike. With
    `skip_mismatch`, a weight whose shape differs keeps its value (all do when the count
    differs), with a warning."""
    graph = model._graph_weights()
    if len(weights) == len(graph):
        index = {id(w): i for i, w in enumerate(graph)}
        weights = [weights[index[id(w)]] for w in model.weights]
    if not skip_mismatch:
        model.set_weights(weights)
        return
    own = model.weights
    if len(weights) != len(own):
        why = f"the model has {len(own)} weights, the file {len(weights)}"
        _warn_skipped(filepath, [(model.name, why)])
        return
    skipped = []
    for var, value in zip(own, weights):
        if np.shape(value) == tuple(var.shape):
            var.assign(value)
        else:
            why = f"shape {tuple(var.shape)}, in the file {np.shape(value)}"
            skipped.append((var.path, why))
    if skipped:
        _warn_skipped(filepath, skipped)


def _warn_skipped(filepath, skipped):
    """load_weights(skip_mismatch=True)'s warning: what kept its own values, and why."""
    import warnings

    warnings.warn(f"{len(skipped)} objects could not be loaded from {filepath} and keep their "
                  "values (skip_mismatch=True): " +
                  "; ".join(f"{name}: {why}" for name, why in skipped), stacklevel=3)


def _keras_h5_bytes(model):
    """The model's weights as a Keras-layout h5 file, in memory, with the optimizer's variables
    when compiled (Keras's load_model expects them)."""
    buf = io.BytesIO()
    with _h5py().File(buf, "w") as h:
        _write_keras_h5(model, h)
        if model.compiled:
            _write_keras_optimizer(model, h)
    return buf.getvalue()


def _write_keras_optimizer(model, h):
    """The optimizer's variables as Keras saves them: iterations, the learning rate (unless a
    schedule gives it), then the slots of each trainable variable, so that training resumes
    where it stopped, in Keras as in densitron."""
    group = h.create_group("optimizer/vars")
    group.attrs["name"] = model.optimizer.name
    for i, v in enumerate(_optimizer_values(model)):
        group.create_dataset(str(i), data=v)


def _optimizer_values(model):
    """The optimizer's variables in Keras's order: iterations, the learning rate (unless a
    schedule gives it), the slots, then any variable Keras keeps after them (Nadam's
    product)."""
    opt = model.optimizer
    iterations, slots = model._optimizer_slots()
    values = opt._keras_leading_values() + [np.asarray(iterations, np.int64)]
    if opt._schedule is None:
        values.append(np.asarray(opt.learning_rate, np.float32))
    return values + slots + (opt._keras_trailing_variables(iterations) if slots else [])


def _restore_optimizer_values(model, values, filepath):
    """The inverse of _optimizer_values into the compiled model. Values with the step count
    alone (an optimizer never built, as Keras saves one before training) leave the slots at
    their initial values."""
    if not values:
        return
    lead = len(model.optimizer._keras_leading_values())  # (a LossScaleOptimizer's own)
    if lead:
        if len(values) < lead + 1:
            raise ValueError(f"The saved optimizer state does not fit this model and "
                             f"optimizer (optimizer {model.optimizer.name!r} in {filepath}). "
                             f"Received: filepath={filepath!r}")
        model.optimizer._set_keras_leading_values(values[:lead])
        values = values[lead:]
    head = 1 if model.optimizer._schedule is not None else 2  # iterations (, learning rate)
    # (the variables after the slots, Nadam's product, follow from the step count)
    tail = len(model.optimizer._keras_trailing_variables(0))
    try:
        model._set_optimizer_slots(int(values[0]), values[head:len(values) - tail]
                                   if len(values) > head + tail else None)
    except ValueError as e:
        raise ValueError(f"{e} (optimizer {model.optimizer.name!r} in {filepath}). Received: "
                         f"filepath={filepath!r}") from None


def _load_keras_optimizer(model, h, filepath):
    """The optimizer state of a Keras-layout file into the compiled model."""
    group = h.get("optimizer/vars")
    if group is not None:
        _restore_optimizer_values(model, _h5_vars(group), filepath)


# --- Keras's legacy HDF5 model format (model.save("m.h5")) ------------------------------------
# Attributes model_config and training_config (JSON) on the file; model_weights/<layer>/ with
# the layer's weight_names (trainable first, as Keras's legacy order) and their datasets;
# optimizer_weights/ with weight_names in the optimizer's variable order. Keras's load_model
# reads densitron's files and densitron reads Keras's.

def _legacy_weights(layer):
    return layer.trainable_weights + layer.non_trainable_weights


def _set_names(group, key, names):
    group.attrs[key] = np.array([n.encode("utf8") for n in names], dtype=object) if names \
        else np.zeros((0,), np.float64)


def _save_legacy_h5(model, filepath, overwrite):
    from densitron import keras_format

    h5py = _h5py()
    config = keras_format.to_keras(model)
    model_config = {"class_name": config["class_name"], "config": config["config"]}
    for entry in model_config["config"].get("layers", []):
        entry.pop("module", None)
        entry.pop("registered_name", None)
        entry.pop("build_config", None)  # (Keras's legacy entries hold neither)
        entry.pop("compile_config", None)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        h.attrs["backend"] = "jax"
        h.attrs["keras_version"] = KERAS_FORMAT_VERSION
        h.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        group = h.create_group("model_weights")
        _set_names(group, "layer_names", [layer.name for layer in model._graph_layers()])
        group.attrs["backend"] = b"jax"
        group.attrs["keras_version"] = KERAS_FORMAT_VERSION.encode("utf8")
        for layer in model._graph_layers():
            weights = _legacy_weights(layer)
            names = [w.path for w in weights]
            layer_group = group.create_group(layer.name)
            _set_names(layer_group, "weight_names", names)
            for name, w in zip(names, weights):
                layer_group.create_dataset(name, data=w.numpy())
        _set_names(group.create_group("top_level_model_weights"), "weight_names", [])
        if model.compiled:
            cc = keras_format.compile_to_keras(_compile_config(model))
            opt = cc.pop("optimizer")
            cc["optimizer_config"] = {"class_name": opt["class_name"], "config": opt["config"]}
            h.attrs["training_config"] = json.dumps(cc).encode("utf8")
            values = _optimizer_values(model)
            prefix = model.optimizer.name
            names = [f"{prefix}/iteration"] + ([f"{prefix}/learning_rate"]
                                                if model.optimizer._schedule is None else [])
            names += [f"{prefix}/variable_{k}" for k in range(len(values) - len(names))]
            opt_group = h.create_group("optimizer_weights")
            _set_names(opt_group, "weight_names", names)
            for name, value in zip(names, values):
                opt_group.create_dataset(name, data=value)
    data = buf.getvalue()
    _atomic_write(filepath, lambda f: f.write(data), overwrite)


def _h5_names(group, key):
    return [n.decode("utf8") if isinstance(n, bytes) else str(n)
            for n in group.attrs.get(key, [])]


def _json_attr(h, key):
    """A JSON attribute of an HDF5 file (bytes or str), parsed; None when it is absent."""
    raw = h.attrs.get(key)
    if raw is None:
        return None
    return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)


def _load_legacy_h5(filepath, compile):
    from densitron import keras_format, layers

    h5py = _h5py()
    try:
        h = h5py.File(filepath, "r")
    except OSError as e:
        raise ValueError(f"{filepath} is not an HDF5 model file ({e}). Received: "
                         f"filepath={filepath!r}") from None
    with h:
        config = _json_attr(h, "model_config")
        if config is None:
            raise ValueError(f"No model config found in the file at {filepath}. Received: "
                             f"filepath={filepath!r}")
        model = layers.deserialize(keras_format.from_keras(config))
        group = h["model_weights"]
        saved = [n for n in _h5_names(group, "layer_names")
                 if _h5_names(group[n], "weight_names")]
        layers_with_weights = [layer for layer in model._graph_layers() if _legacy_weights(layer)]
        if len(saved) != len(layers_with_weights):
            raise ValueError(f"Layer count mismatch when loading weights from file. Model "
                             f"expected {len(layers_with_weights)} layers, found {len(saved)} "
                             f"saved layers. Received: filepath={filepath!r}")
        for name, layer in zip(saved, layers_with_weights):
            values = [group[name][w][()] for w in _h5_names(group[name], "weight_names")]
            weights = _legacy_weights(layer)
            if len(values) != len(weights) or any(
                    np.shape(v) != tuple(w.shape) for v, w in zip(values, weights)):
                raise ValueError(f"The weights of layer {name!r} in {filepath} do not fit "
                                 f"layer {layer.name!r}. Received: filepath={filepath!r}")
            for w, v in zip(weights, values):
                w.assign(v)
        tc = _json_attr(h, "training_config") if compile else None
        if tc is None:
            return model
        cc = dict(tc, optimizer=tc.get("optimizer_config"))
        _compile_saved(model, keras_format.compile_from_keras(cc), True, filepath)
        if "optimizer_weights" in h:
            og = h["optimizer_weights"]
            _restore_optimizer_values(model, [og[n][()] for n in _h5_names(og, "weight_names")],
                                      filepath)
    return model


def _own_variables(layer, method):
    """Whether the layer's file entry is its save_own_variables' store (load_own_variables'):
    a lookup's, by name, or a layer class's own method (the custom saving guide's; Dense's,
    Keras's kernel and bias, is the plain numbered entry)."""
    from densitron.layers.core import Dense
    from densitron.layers.layer import Layer

    own = getattr(type(layer), method, None)
    return getattr(layer, "_own_variables_by_name", False) or (
        own is not None and own is not getattr(Layer, method) and
        own is not getattr(Dense, method))


def _write_keras_h5(model, h):
    """Keras's layout, which Keras's load_weights and load_model read: each layer's variables
    under layers/<path>/vars/<i>."""
    for path, layer in _keras_layer_paths(model):
        group = h.create_group(f"{path}/vars")
        group.attrs["name"] = layer.name
        parts = _keras_sublayers(layer)
        if parts is not None:  # a layer whose variables Keras keeps in sublayers
            for sub, name, variables in parts:
                sub_group = h.create_group(f"{path}/{sub}/vars")
                sub_group.attrs["name"] = name
                for i, v in enumerate(variables):
                    sub_group.create_dataset(str(i), data=np.asarray(v.value))
        elif _own_variables(layer, "save_own_variables"):  # (a lookup's "idf_weights")
            own = {}
            layer.save_own_variables(own)
            for key, value in own.items():
                group.create_dataset(key, data=value)
        elif not _is_model(layer):
            weights, order = layer.get_weights(), _stored_order(layer)
            for i, w in enumerate(weights if order is None else [weights[k] for k in order]):
                group.create_dataset(str(i), data=w)
    h.require_group("vars").attrs["name"] = model.name  # (a subclassed model's own: there)


def _stored_order(layer):
    """The order of a layer's weights in its file entry when it is not theirs (None): a Dense
    subclass tracking a Variable of its own (without save_own_variables) keeps the kernel
    and bias as "0" and "1", where Keras's Dense writes and reads them, then its own Variables
    (Keras's loader counts them, and leaves them as they are)."""
    from densitron.layers.core import Dense

    if not isinstance(layer, Dense) or not layer.built:
        return None
    weights = layer.weights
    first = [k for w in (layer.kernel, layer.bias) if w is not None
             for k, v in enumerate(weights) if v is w]
    order = first + [k for k in range(len(weights)) if k not in first]
    return None if order == list(range(len(weights))) else order


def _graph_weight_paths(model):
    """Where a subclassed model's file keeps each of its graph's weights ("d1/vars/0"), in
    _graph_weights order (a model loaded from its trace reads them there), or None for other
    models (or a weight no layer attribute holds)."""
    if not getattr(model, "_subclassed", False) or not model.built:
        return None
    where = {}
    for path, layer in _keras_layer_paths(model):
        parts = _keras_sublayers(layer)
        if parts is not None:
            for sub, _, variables in parts:
                for i, v in enumerate(variables):
                    where.setdefault(id(v), f"{path}/{sub}/vars/{i}")
        elif not _is_model(layer):
            own = layer._weights if isinstance(layer, _OwnWeights) else layer.weights
            for i, v in enumerate(own):
                where.setdefault(id(v), f"{path}/vars/{i}".lstrip("/"))
    weights = model._graph_weights()
    if not all(id(v) in where for v in weights):
        return None
    return [where[id(v)] for v in weights]


def _keras_sublayers(layer):
    """(subpath, name, variables) of the sublayers Keras keeps a layer's variables in
    (MultiHeadAttention's query_dense, ...), or None for a layer that keeps its own."""
    parts = getattr(layer, "_keras_sublayers", None)
    return parts() if parts is not None else None


def _h5_vars(group):
    """The datasets "0", "1", ... of a Keras vars group, in order."""
    return [group[str(i)][()] for i in range(len(group))]


def _is_model(layer):
    from densitron.models.functional import Functional

    return isinstance(layer, Functional)


class _OwnWeights:
    """A composite layer's own weights (add_weight's, not its sublayers'), as a layer for
    the loader."""

    def __init__(self, layer):
        self.name, self._weights = layer.name, list(layer._weights)
        self.layer = layer

    def get_weights(self):
        return [w.numpy() for w in self._weights]

    def set_weights(self, weights):
        for w, v in zip(self._weights, weights):
            w.assign(v)


def _numbered(names):
    """Keras's names of the layers of one container by class: the first of a class by its
    name, the next ones numbered (dense, dense_1, ...)."""
    used, out = {}, []
    for name in names:
        used[name] = used.get(name, -1) + 1
        out.append(f"{name}_{used[name]}" if used[name] else name)
    return out


def _composite_paths(layer, path, seen=None):
    """(path, layer) as Keras's files keep a composite layer (a Layer subclass made of
    layers) or a subclassed model (at path ""): its own weights at its path, each layer
    attribute's below it by attribute name, a list attribute's layers by class within it
    (dense, dense_1, ...); attributes by name, private ones last, each layer once (Keras's
    walk of a saveable's attributes)."""
    from densitron.layers.layer import Layer, _composite

    seen = set() if seen is None else seen
    seen.add(id(layer))
    yield path, _OwnWeights(layer)

    def below(name):
        return f"{path}/{name}" if path else name

    # (a layer's own attributes hold no layers: any layer found is one of the user's; a
    # model's list of its trace's layers is not one of them, its `layers` property is, as
    # Keras's walk meets it: a layer of an attribute named after "layers" is kept there)
    items = [(k, v) for k, v in vars(layer).items() if k != "_all_layers"]
    if _is_model(layer) and getattr(layer, "_subclassed", False):
        items.append(("layers", layer.layers))
    for attr, value in sorted(items, key=lambda kv: "~" + kv[0] if kv[0].startswith("_")
                              else kv[0]):
        if isinstance(value, Layer):
            entries = [(below(attr), value)]
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, Layer) for v in value):
            names = _numbered(naming.to_snake_case(type(v).__name__) for v in value)
            entries = [(below(f"{attr}/{name}"), v) for name, v in zip(names, value)]
        else:
            continue
        for sub_path, sub in entries:
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if _composite(sub):
                yield from _composite_paths(sub, sub_path, seen)
            else:
                yield sub_path, sub
                if _is_model(sub):
                    yield from _keras_layer_paths(sub, f"{sub_path}/layers", composites=True)


def _keras_layer_paths(model, prefix="layers", wrapped=False, composites=False,
                       by_attributes=True, nested_as_class=False):
    """(path, layer) of every layer as Keras's weight files address it: by its class within its
    model, numbered when repeated (dense, dense_1, ...; not by layer name), and a nested
    model's layers below the model's own path. With `wrapped` (reading a file Keras wrote), a
    layer that came from a Keras TimeDistributed is found below the wrapper's path, as Keras
    keeps it (densitron's graph holds the layer itself, and writes it so). With `composites`
    (reading a file Keras wrote of a model with layers of the user's made of layers), Keras's
    layers, a composite layer's weights below its own path (_composite_paths); else the
    graph's layers, which densitron writes. A subclassed model's layers are at their
    attributes' paths (as a composite layer's), unless `by_attributes` is False (the layout
    densitron wrote before it saved such a model as its class: its trace's layers). A
    subclassed model within a model is at "functional", as densitron writes it (the functional
    model of its trace), or with `nested_as_class` (a file Keras wrote) at its class's name,
    its layers by its attributes."""
    from densitron.layers.layer import _composite
    from densitron.models.sequential import Sequential

    if prefix == "layers" and getattr(model, "_subclassed", False) and by_attributes:
        # a subclassed model's file (Keras's and densitron's since it is saved as its class):
        # its layers at their attributes' names
        yield from _composite_paths(model, "")
        return
    # (Keras's layers; or the layers densitron's config names: composite layers of registered
    # classes kept as themselves, others as their sublayers)
    sequential = isinstance(model, Sequential)
    layers = (model.layers if sequential and (composites or not model._saved_as_graph())
              else model._keras_layers() if composites else model._file_calls()[0])
    wrappers = [getattr(layer, "_keras_wrapper", None) if wrapped else None for layer in layers]
    names = _numbered(wrapper or getattr(layer, "_keras_path_name", None)
                      or _nested_model_path_name(layer, nested_as_class)
                      or naming.to_snake_case(type(layer).__name__)
                      for layer, wrapper in zip(layers, wrappers))
    for layer, wrapper, name in zip(layers, wrappers, names):
        path = f"{prefix}/{name}" + ("/layer" if wrapper else "")
        if _composite(layer):
            yield from _composite_paths(layer, path)
            continue
        yield path, layer
        if _is_model(layer) and nested_as_class and getattr(layer, "_subclassed", False):
            yield from _composite_paths(layer, path)
        elif _is_model(layer):
            yield from _keras_layer_paths(layer, f"{path}/layers", wrapped, composites,
                                          nested_as_class=nested_as_class)


def _nested_model_path_name(layer, nested_as_class):
    """A subclassed model within a model: densitron's files write it as the functional model
    of its trace, which Keras (and densitron) read back at "functional"; None for the rest and
    for a file Keras wrote (`nested_as_class`), which keeps it at its class's name."""
    if not nested_as_class and _is_model(layer) and getattr(layer, "_subclassed", False):
        return "functional"
    return None


def _load_keras_h5(model, h, filepath, skip_mismatch=False):
    """Every layer's weights from a Keras-layout file, checked before any is set; with
    `skip_mismatch`, a layer whose variables do not fit keeps its own, with a warning."""
    found, skipped = [], []
    # (a file Keras wrote with a TimeDistributed keeps its layer below the wrapper's path)
    wrapped = "layers" in h and any(k.startswith("time_distributed") for k in h["layers"])
    # (a file Keras wrote keeps a composite layer's weights below the layer's own path)
    composites = any(path in h for path, layer in _keras_layer_paths(model, composites=True)
                     if isinstance(layer, _OwnWeights) and path)
    # (a subclassed model's weights by its attributes; densitron's files before it saved one
    # as its class kept them by its trace's layers)
    by_attributes = not getattr(model, "_subclassed", False) or "layers" not in h or any(
        path in h for path, layer in _keras_layer_paths(model)
        if path and not _is_model(layer))
    # (a file Keras wrote keeps a subclassed model within the model at its class's name)
    nested_as_class = any(
        path in h for path, layer in _keras_layer_paths(model, nested_as_class=True)
        if _is_model(layer) and getattr(layer, "_subclassed", False) and path != "layers")
    for path, layer in _keras_layer_paths(model, wrapped=wrapped, composites=composites,
                                          by_attributes=by_attributes,
                                          nested_as_class=nested_as_class):
        if _is_model(layer):
            continue
        if _own_variables(layer, "load_own_variables"):  # (a lookup's, by name)
            group = h.get(f"{path}/vars")
            found.append((layer, {k: group[k][()] for k in group} if group else {}))
            continue
        want = layer.get_weights()
        parts = _keras_sublayers(layer)
        if parts is not None:
            got = []
            for sub, _, variables in parts:
                group = h.get(f"{path}/{sub}/vars")
                got += ([] if group is None else _h5_vars(group))[:len(variables)] \
                    if variables else []
            own = h.get(f"{path}/vars")
            if not got and own is not None and len(own):  # (densitron 0.1's files: flat)
                got = _h5_vars(own)
        else:
            group = h.get(f"{path}/vars")
            got = [] if group is None else _h5_vars(group)
            order = _stored_order(layer)
            if order is not None and len(got) == len(order):  # (back in the layer's order)
                back = [None] * len(order)
                for k, g in zip(order, got):
                    back[k] = g
                got = back
        error = None
        if len(got) != len(want):
            error = (f"Layer '{layer.name}' expected {len(want)} variables, but received "
                     f"{len(got)} variables during loading (at {path}).")
        else:
            bad = [(w.shape, g.shape) for w, g in zip(want, got) if w.shape != g.shape]
            if bad:
                error = (f"Layer '{layer.name}' expected a variable of shape {bad[0][0]}, but "
                         f"received one of shape {bad[0][1]} (at {path}).")
        if error is None:
            found.append((layer, got))
        elif skip_mismatch:
            skipped.append((layer.name, error))
        else:
            raise ValueError(f"{error} Received: filepath={filepath!r}")
    for layer, got in found:
        if isinstance(got, dict):
            layer.load_own_variables(got)
        elif got:
            layer.set_weights(got)
    if skipped:
        _warn_skipped(filepath, skipped)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Saving to `.weights.h5` needs h5py: `pip install h5py`, or use a "
                          "`.weights.npz` filename.") from None
    return h5py
