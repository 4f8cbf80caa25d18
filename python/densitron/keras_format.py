"""Keras's `.keras` config format: densitron's model and compile configs to Keras's serialized
form (what `keras.models.load_model` reads) and back. The weights travel separately, in
Keras's `model.weights.h5` layout (see saving.py)."""

# Keras's modules of the objects a densitron config names.
_LAYER_MODULE = "keras.layers"
_OBJECT_MODULE = {
    "initializer": "keras.initializers",
    "regularizer": "keras.regularizers",
    "constraint": "keras.constraints",
}
_FUNCTIONAL_MODULE = "keras.src.models.functional"
# Keras layer arguments densitron does not take, with the values that mean "off": dropped when
# a Keras config holds them so, refused otherwise.
_KERAS_ONLY = {
    "quantization_config": None,
    "synchronized": False,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "rms_scaling": False,
    "data_format": "channels_last",
    "sparse": False,
    "ragged": False,
    "optional": False,
    "lora_rank": None,
    "lora_alpha": None,
    "use_gate": False,  # MultiHeadAttention's newer options, off
    "sliding_window": None,
}
# Layers that take data_format themselves (both of Keras's values).
_OWN_DATA_FORMAT = {f"Global{kind}Pooling{rank}D" for kind in ("Average", "Max")
                    for rank in (1, 2, 3)}
# (a loss scale factor, Keras's only optimizer argument densitron has no use for, changes
# nothing in float32: the optimizers take and drop it)


def _kind_of(key):
    for kind in _OBJECT_MODULE:
        if key.endswith(kind):
            return kind
    return None


# --- densitron -> Keras ------------------------------------------------------------------

def _keras_layer_config(config):
    out = {}
    for key, value in config.items():
        kind = _kind_of(key)
        if kind is not None and isinstance(value, dict) and "class_name" in value:
            value = _keras_object(kind, value)
        out[key] = value
    return out


def _keras_object(kind, value):
    """An initializer, regularizer or constraint's {"class_name", "config"} as Keras writes it:
    densitron's own under Keras's module, a function of the user's by name, a class of the
    user's by its name (Keras finds it among the custom objects)."""
    name = value["class_name"]
    if name == "function":
        return {"module": "builtins", "class_name": "function", "config": value.get("config"),
                "registered_name": "function"}
    if not _is_ours(kind, name):
        return {"module": None, "class_name": name, "config": value.get("config", {}),
                "registered_name": name}
    return {"module": _OBJECT_MODULE[kind], "class_name": name,
            "config": value.get("config", {}), "registered_name": None}


def _is_ours(kind, class_name):
    import inspect

    from densitron import constraints, initializers, regularizers

    module = {"initializer": initializers, "regularizer": regularizers,
              "constraint": constraints}[kind]
    return inspect.isclass(getattr(module, class_name, None))


def _keras_tensor(history, shapes):
    shape = shapes.get(tuple(history[:3]))
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape), "dtype": "float32", "keras_history": list(history)}}


def _structure(refs, keys):
    """Keras's input_layers/output_layers: one triple, a list of them, or a dict by key."""
    if keys:
        return {k: list(r) for k, r in zip(keys, refs)}
    if len(refs) == 1:
        return list(refs[0])
    return [list(r) for r in refs]


def to_keras(model):
    """Keras's serialized form of a densitron model (without compile_config)."""
    from densitron.models import Sequential

    # (a subclassed model's graph: its trace's)
    config = model.get_config() if isinstance(model, Sequential) else model._graph_config()
    if isinstance(model, Sequential) and "input_layers" not in config:
        shape = config.get("build_input_shape")
        layers = [_keras_entry(layer) for layer in model.layers]
        if shape:
            layers.insert(0, {"module": _LAYER_MODULE, "class_name": "InputLayer",
                              "config": {"batch_shape": shape, "dtype": "float32",
                                         "name": model.name + "_input"},
                              "registered_name": None})
        return {"module": "keras", "class_name": "Sequential",
                "config": {"name": config["name"], "trainable": config["trainable"],
                           "dtype": "float32", "layers": layers, "build_input_shape": shape},
                "registered_name": None}
    from densitron.layers.attention import MultiHeadAttention

    file_layers, calls, names = model._file_calls()
    shapes = _output_shapes(calls, names)
    layers = []
    for lc, layer in zip(config["layers"], file_layers):
        entry = _keras_entry(layer)
        entry["name"] = lc["name"]  # (a composite layer's sublayer's numbered if repeated)
        if isinstance(entry.get("config"), dict) and "name" in entry["config"]:
            entry["config"]["name"] = lc["name"]
        if isinstance(layer, MultiHeadAttention):
            entry["config"].pop("call_signature", None)
            entry["inbound_nodes"] = [_attention_call_to_keras(layer, node, shapes)
                                      for node in lc["inbound_nodes"]]
        else:
            entry["inbound_nodes"] = [
                {"args": ([[_keras_tensor(a, shapes) for a in node["args"]]] if node["is_list"]
                          else [_keras_tensor(a, shapes) for a in node["args"]]),
                 "kwargs": {}}
                for node in lc["inbound_nodes"]]
        layers.append(entry)
    return {"module": _FUNCTIONAL_MODULE, "class_name": "Functional",
            "config": {"name": config["name"], "trainable": config["trainable"],
                       "layers": layers,
                       "input_layers": _structure(config["input_layers"], config["input_keys"]),
                       "output_layers": _structure(config["output_layers"],
                                                   config["output_keys"])},
            "registered_name": "Functional"}


# The key of a subclassed model's file entry that holds its traced graph (densitron's; Keras
# reads past it): what loads when the class is not at hand.
TRACED_KEY = "densitron_traced"


def to_keras_file(model, weight_paths=None):
    """The model's entry in a `.keras` file's config.json: Keras's serialized form; for a
    subclassed model, as Keras writes it, its class (module, registered name), its get_config
    and its build_config, which Keras's load_model and densitron's give back to the class's
    from_config and build_from_config, with densitron's traced graph beside them under
    TRACED_KEY ({"config": the graph's entry, "weight_paths": `weight_paths`, where the file
    keeps each of the graph's weights, in its _graph_weights order})."""
    from densitron.utils import keras_objects

    if not getattr(model, "_subclassed", False):
        return to_keras(model)
    cls = type(model)
    config = model.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"The `get_config()` method of {model!r} should return a dict. "
                        f"Received: {config!r}")
    entry = {"module": keras_objects._module_of(cls), "class_name": cls.__name__,
             "config": _keras_layer_config(keras_objects.serialize_config(config)),
             "registered_name": keras_objects._registered_name(cls) or cls.__name__}
    if model.built:
        shapes = [[None, *t.shape[1:]] for t in model.inputs]
        keys = model._input_keys
        entry["build_config"] = {"input_shape": dict(zip(keys, shapes)) if keys else
                                 shapes[0] if len(shapes) == 1 else shapes}
        entry[TRACED_KEY] = {"config": to_keras(model), "weight_paths": weight_paths}
    return entry


# MultiHeadAttention's call as Keras records it: query and value as arguments, key and
# attention_mask as keyword tensors, use_causal_mask and return_attention_scores when set
# (densitron's own config lists them as one list and a call_signature).
_ATTENTION_FLAGS = ("use_causal_mask", "return_attention_scores")


def _attention_call_to_keras(layer, node, shapes):
    has_key, has_mask, *flags = layer._signature or (len(node["args"]) == 3, False, False,
                                                     False)
    tensors = [_keras_tensor(a, shapes) for a in node["args"]]
    kwargs = {}
    if has_key:
        kwargs["key"] = tensors[2]
    if has_mask:
        kwargs["attention_mask"] = tensors[-1]
    kwargs.update({name: True for name, on in zip(_ATTENTION_FLAGS, flags) if on})
    return {"args": tensors[:2], "kwargs": kwargs}


def _attention_call_from_keras(entry, node, mask_ops):
    """(densitron's node, its call_signature) of a Keras MultiHeadAttention call."""
    kwargs = dict(node.get("kwargs", {}))
    for name in ("query_mask", "value_mask", "key_mask", "training"):
        value = kwargs.pop(name, None)  # masks: derived again from the Embedding or Masking
        if value is not None and name != "training" and not _is_mask_of(value, mask_ops):
            raise ValueError(f"densitron cannot load the call of layer {entry['name']!r} with "
                             f"a {name} tensor. Received: kwargs={node['kwargs']!r}")
    args = list(node["args"])
    if len(args) == 1 and isinstance(args[0], list):
        args = args[0]
    for name in ("query", "value"):  # (a call that named them)
        if name in kwargs:
            args.append(kwargs.pop(name))
    key, mask = kwargs.pop("key", None), kwargs.pop("attention_mask", None)
    flags = [bool(kwargs.pop(name, False)) for name in _ATTENTION_FLAGS]
    if kwargs or len(args) not in (2, 3):
        raise ValueError(f"densitron cannot load the call of layer {entry['name']!r}. "
                         f"Received: {len(args)} arguments and kwargs={node['kwargs']!r}")
    if len(args) == 3:  # key given positionally
        key = args.pop()
    tensors = args + [t for t in (key, mask) if t is not None]
    signature = [key is not None, mask is not None, *flags]
    return ({"args": [_history(t, entry["name"]) for t in tensors], "is_list": True},
            signature)


def _keras_entry(layer):
    from densitron.models.functional import Functional
    from densitron.utils import keras_objects

    if isinstance(layer, Functional):
        return to_keras(layer)
    cls = type(layer)
    if keras_objects._public(cls) is None and not cls.__module__.startswith("densitron."):
        # a layer class of the user's (a Dense subclass too): Keras's serialized form, by its
        # module and registered name, which Keras looks it up by, with its build_config,
        # which loading gives to its build_from_config
        return keras_objects.serialize_keras_object(layer)
    # (the objects its config holds, a layer given to a layer of the user's, serialized)
    config = _keras_layer_config(keras_objects.serialize_config(layer.get_config()))
    return {"module": _LAYER_MODULE, "class_name": cls.__name__, "config": config,
            "registered_name": None}


def _output_shapes(calls, names):
    """(layer name, node index, tensor index) -> the shape of that output, batch axis None, of
    a model's calls as its file names them (Functional._file_calls)."""
    from densitron.models.functional import call_refs

    refs = call_refs(calls, names)
    return {tuple(refs[id(out)]): [None, *out.shape[1:]] for call in calls for out in call.outputs}


def compile_to_keras(cc):
    """Keras's compile_config from densitron's."""
    if cc is None:
        return None
    opt = dict(cc["optimizer"]["config"])
    lr = opt.get("learning_rate")
    if isinstance(lr, dict):
        opt["learning_rate"] = {"module": "keras.optimizers.schedules", **lr,
                                "registered_name": None}
    return {
        "optimizer": {"module": "keras.optimizers", "class_name": cc["optimizer"]["class_name"],
                      "config": opt, "registered_name": None},
        "loss": _map_losses(cc["loss"], lambda v: {"module": "keras.losses", **v,
                                                   "registered_name": None}),
        "loss_weights": cc["loss_weights"],
        "metrics": _map_metric_objects(cc["metrics"], _keras_metric),
        "weighted_metrics": _map_metric_objects(cc.get("weighted_metrics"), _keras_metric),
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _map_losses(loss, fn):
    if isinstance(loss, dict) and "class_name" in loss:
        return fn(loss)
    if isinstance(loss, dict):
        return {k: _map_losses(v, fn) for k, v in loss.items()}
    if isinstance(loss, list):
        return [_map_losses(v, fn) for v in loss]
    return loss


# --- Keras -> densitron ------------------------------------------------------------------

# Keras initializer arguments densitron does not take, with their "off" values.
_OBJECT_KERAS_ONLY = {"input_axes": None, "output_axes": None}


def _without_keras_only(config, table, what):
    """config less the Keras-only arguments of `table` at their "off" values; any other value
    of one is refused."""
    out = {}
    for key, value in config.items():
        if key in table:
            if value != table[key]:
                raise ValueError(f"densitron cannot load {what} with `{key}`={value!r}. "
                                 f"Received: config={config!r}")
            continue
        out[key] = value
    return out


def _plain(obj):
    """A Keras serialized object ({"module", "class_name", "config", ...}) as densitron's
    {"class_name", "config"} (a function's by name, as Keras writes it)."""
    if obj.get("class_name") == "function":
        return {"class_name": "function", "config": obj.get("config")}
    return {"class_name": obj["class_name"],
            "config": _without_keras_only(obj.get("config", {}), _OBJECT_KERAS_ONLY,
                                          f"a {obj['class_name']}")}


def _densitron_layer_config(class_name, config):
    out = {}
    if config.get("activity_regularizer", 0) is None:  # Keras writes it unset for some layers
        config = {k: v for k, v in config.items() if k != "activity_regularizer"}
    table = _KERAS_ONLY
    own = "data_format" if class_name in _OWN_DATA_FORMAT else (
        "sparse" if class_name == "InputLayer" else None)
    if own is not None:
        table = {k: v for k, v in _KERAS_ONLY.items() if k != own}
    for key, value in _without_keras_only(config, table, f"a {class_name} layer").items():
        if key == "dtype":
            # a Keras file's policy (a dict, or a name): densitron runs the layer in float32,
            # mixed precision models included (they keep float32 weights)
            value = "float32"
        elif isinstance(value, dict) and "class_name" in value and _kind_of(key) is not None:
            value = _plain(value)
        elif key == "layer" and isinstance(value, dict) and "class_name" in value:
            value = from_keras(value)  # a wrapper's layer (TimeDistributed), converted too
        out[key] = value
    return out


def _history(tensor, where):
    if not isinstance(tensor, dict) or tensor.get("class_name") != "__keras_tensor__":
        raise ValueError(f"densitron loads layer calls on tensors only. Received: {where} "
                         f"argument {tensor!r}")
    return list(tensor["config"]["keras_history"])


def _is_mask_op(entry):
    """Whether a Keras functional layer entry is an op of a recorded mask: Embedding's
    ids != 0, or Masking's x != mask_value and its any() over the last axis."""
    nodes = entry.get("inbound_nodes", [])
    if len(nodes) != 1:
        return False
    args = nodes[0].get("args", [])
    if entry.get("class_name") == "NotEqual":
        return len(args) == 2 and isinstance(args[1], (int, float)) and \
            not isinstance(args[1], bool)
    return (entry.get("class_name") == "Any" and entry.get("config", {}).get("axis") == -1
            and len(args) == 1 and isinstance(args[0], dict) and
            args[0].get("config", {}).get("dtype") == "bool")


def _combines_masks(entry, mask_ops):
    """Whether a Keras functional layer entry is a LogicalOr or LogicalAnd of recorded masks
    (a merge layer's mask)."""
    nodes = entry.get("inbound_nodes", [])
    if entry.get("class_name") not in ("LogicalOr", "LogicalAnd") or len(nodes) != 1:
        return False
    args = nodes[0].get("args", [])
    return len(args) == 2 and all(_is_mask_of(a, mask_ops) for a in args)


def _is_mask_of(value, mask_ops):
    return (isinstance(value, dict) and value.get("class_name") == "__keras_tensor__" and
            value["config"]["keras_history"][0] in mask_ops)


def _refs(structure):
    """(refs, keys) of Keras's input_layers/output_layers."""
    if isinstance(structure, dict):
        return [list(v) for v in structure.values()], list(structure)
    if structure and not isinstance(structure[0], (list, tuple)):
        return [list(structure)], None
    return [list(v) for v in structure], None


def from_keras(obj):
    """densitron's {"class_name", "config"} form of a Keras serialized model or layer."""
    class_name = obj.get("class_name")
    config = obj.get("config", {})
    if class_name == "Functional":
        # Keras records Embedding(mask_zero=True)'s mask as a NotEqual(ids, 0) op passed to the
        # layers that take it (`mask=`), and Masking's as NotEqual(x, mask_value) and Any;
        # densitron derives masks from those layers itself.
        mask_ops = {e["name"] for e in config["layers"] if _is_mask_op(e)}
        while True:  # and a merge's LogicalOr (or LogicalAnd) of recorded masks
            more = {e["name"] for e in config["layers"]
                    if e["name"] not in mask_ops and _combines_masks(e, mask_ops)}
            if not more:
                break
            mask_ops |= more
        layers = []
        for entry in config["layers"]:
            if entry["name"] in mask_ops:
                continue
            layer = from_keras(entry)
            nodes = []
            if layer["class_name"] == "MultiHeadAttention":
                for node in entry.get("inbound_nodes", []):
                    converted, signature = _attention_call_from_keras(entry, node, mask_ops)
                    nodes.append(converted)
                    if any(signature[1:]) or signature[0]:
                        layer["config"]["call_signature"] = signature
                layers.append({"class_name": layer["class_name"], "name": entry["name"],
                               "config": layer["config"], "inbound_nodes": nodes})
                continue
            for node in entry.get("inbound_nodes", []):
                # `training` recorded at graph construction is set again at each run (as in
                # Keras); a mask recorded from an Embedding is derived again; other keyword
                # arguments must be unset.
                if any(v is not None for k, v in node.get("kwargs", {}).items()
                       if k != "training" and not (k == "mask" and _is_mask_of(v, mask_ops))):
                    raise ValueError(f"densitron cannot load the call of layer "
                                     f"{entry['name']!r} with keyword arguments. Received: "
                                     f"kwargs={node['kwargs']!r}")
                args = node["args"]
                if len(args) == 1 and isinstance(args[0], list):
                    nodes.append({"args": [_history(t, entry["name"]) for t in args[0]],
                                  "is_list": True})
                else:  # (several tensors as arguments: a layer of the user's, call(a, b))
                    nodes.append({"args": [_history(t, entry["name"]) for t in args],
                                  "is_list": False, "positional": len(args) > 1})
            layers.append({"class_name": layer["class_name"], "name": entry["name"],
                           "config": layer["config"], "inbound_nodes": nodes,
                           "registered_name": entry.get("registered_name")})
            _keep_build_config(layers[-1], entry)
        inputs, input_keys = _refs(config["input_layers"])
        outputs, output_keys = _refs(config["output_layers"])
        return {"class_name": "Functional",
                "config": {"name": config["name"], "trainable": config.get("trainable", True),
                           "layers": layers, "input_layers": inputs, "output_layers": outputs,
                           "input_keys": input_keys, "output_keys": output_keys}}
    if class_name == "Sequential":
        entries = list(config["layers"])
        shape = config.get("build_input_shape")
        if entries and entries[0].get("class_name") == "InputLayer":
            shape = entries.pop(0)["config"]["batch_shape"]
        return {"class_name": "Sequential",
                "config": {"name": config["name"], "trainable": config.get("trainable", True),
                           "layers": [from_keras(e) for e in entries],
                           "build_input_shape": shape}}
    return _keep_build_config(
        {"class_name": class_name, "config": _densitron_layer_config(class_name, config),
         "registered_name": obj.get("registered_name")}, obj)


def _keep_build_config(layer, entry):
    """A layer of the user's keeps its Keras build_config, which loading passes to its
    build_from_config (a build of more than the input shape: build(input_shape, layer_init));
    densitron's own layers are built by their first call."""
    if entry.get("build_config") and isinstance(entry.get("registered_name"), str) and \
            ">" in entry["registered_name"]:
        layer["build_config"] = entry["build_config"]
    return layer


def _plain_loss(loss):
    """A Keras serialized loss as densitron's: a loss function by its name, a loss object by
    class and config (less Keras's dtype)."""
    if loss.get("class_name") == "function":
        return loss.get("config")
    return {"class_name": loss["class_name"],
            "config": {k: v for k, v in loss.get("config", {}).items() if k != "dtype"}}


def compile_from_keras(cc):
    """densitron's compile arguments from Keras's compile_config."""
    opt = cc["optimizer"]
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    config = dict(opt.get("config", {}))
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _plain(config["learning_rate"])
    return {
        "optimizer": {"class_name": opt["class_name"], "config": config},
        "loss": _map_losses(cc.get("loss"), _plain_loss),
        "loss_weights": cc.get("loss_weights"),
        "metrics": _map_metric_objects(cc.get("metrics"), _plain),
        "weighted_metrics": _map_metric_objects(cc.get("weighted_metrics"), _plain),
    }


def _keras_metric(metric):
    return {"module": "keras.metrics", **metric, "registered_name": None}


def _map_metric_objects(structure, fn):
    """compile's metrics with fn applied to every serialized metric object (names unchanged)."""
    from densitron import metrics

    return metrics.map_structure(structure, lambda m: fn(m) if isinstance(m, dict) else m)
