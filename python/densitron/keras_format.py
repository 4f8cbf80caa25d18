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
}
# Layers that take data_format themselves (both of Keras's values).
_OWN_DATA_FORMAT = {f"Global{kind}Pooling{rank}D" for kind in ("Average", "Max")
                    for rank in (1, 2, 3)} | {
    f"{kind}{rank}D{end}" for kind in ("Conv", "MaxPooling", "AveragePooling",
                                       "DepthwiseConv", "SeparableConv", "AdaptiveMaxPooling",
                                       "AdaptiveAveragePooling")
    for rank in (1, 2, 3) for end in ("", "Transpose")} | {
    "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
    "RandomContrast", "RandomBrightness", "RandomCrop", "Flatten"} | {
    f"ConvLSTM{rank}D" for rank in (1, 2, 3)}
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
    from densitron.layers.layer import dtype_policy_config
    from densitron.models import Sequential

    # (a subclassed model's graph: its trace's)
    config = model._own_config() if isinstance(model, Sequential) else model._graph_config()
    if isinstance(model, Sequential) and "input_layers" not in config:
        shape = config.get("build_input_shape")
        layers = [_keras_entry(layer) for layer in model.layers]
        inner = {"name": config["name"], "trainable": config["trainable"],
                 "dtype": dtype_policy_config(), "layers": layers}
        if shape:  # (its InputLayer's name: Input()'s, or the one it made when built)
            tensor = getattr(model, "_input_tensor", None)
            node = getattr(tensor, "_node", None)
            name = node.layer.name if node is not None else model.name + "_input"
            layers.insert(0, {"module": _LAYER_MODULE, "class_name": "InputLayer",
                              "config": {"batch_shape": shape, "dtype": "float32",
                                         "sparse": False, "ragged": False,
                                         "name": name, "optional": False},
                              "registered_name": None})
            inner["build_input_shape"] = shape
        return _with_build_and_compile_config(
            {"module": "keras", "class_name": "Sequential", "config": inner,
             "registered_name": None}, model, {"input_shape": shape} if shape else None)
    from densitron.layers.attention import MultiHeadAttention
    from densitron.layers.dot_attention import Attention
    from densitron.layers.recurrent import _RNN, Bidirectional
    from densitron.models.functional import call_refs

    file_layers, calls, names = model._file_calls()
    ops, inside = _op_bodies(calls, model.outputs)
    op_of = {id(call.layer): record for call in calls if id(call) in ops
             for record in [ops[id(call)]]}
    skipped = {id(call.layer) for call in calls if id(call) in inside}
    renamed, node_names = _op_names(file_layers, names, op_of)
    old_names = dict(names)
    names = {k: renamed.get(v, v) for k, v in names.items()}
    shapes = _output_shapes(calls, names)
    refs = call_refs(calls, names)

    def ref(history):  # (densitron's config names the op's layer: its node's name)
        return [renamed.get(history[0], history[0]), *history[1:]]

    layers = []
    for lc, layer in zip(config["layers"], file_layers):
        if id(layer) in skipped:
            continue
        if id(layer) in op_of:
            node = node_names.get(old_names[id(layer)], names[id(layer)])
            layers.append(_op_entry(op_of[id(layer)], node,
                                    lambda t: _keras_tensor(refs[id(t)], shapes)))
            if node != names[id(layer)]:  # (a comparison's bools as densitron's 1.0/0.0)
                cast = names[id(layer)]
                entry = _op_entry(OpCall("core", "Cast", {"dtype": "float32"}, []), cast, None)
                tensor = _keras_tensor([node, 0, 0], {(node, 0, 0): shapes[(cast, 0, 0)]})
                entry["inbound_nodes"][0]["args"] = [{**tensor, "config": {
                    **tensor["config"], "dtype": "bool"}}]
                layers.append(entry)
            continue
        lc = {**lc, "inbound_nodes": [
            {**node, "args": [ref(a) for a in node["args"]],
             **({"mask": [ref(a) if a is not None else None for a in node["mask"]]}
                if node.get("mask") else {})}
            for node in lc["inbound_nodes"]]}
        entry = _keras_entry(layer)
        entry["name"] = lc["name"]  # (a composite layer's sublayer's numbered if repeated)
        if isinstance(entry.get("config"), dict) and "name" in entry["config"]:
            entry["config"]["name"] = lc["name"]
        if isinstance(layer, MultiHeadAttention):
            entry["config"].pop("call_signature", None)
            entry["inbound_nodes"] = [_attention_call_to_keras(layer, node, shapes)
                                      for node in lc["inbound_nodes"]]
        elif isinstance(layer, (_RNN, Bidirectional)):  # (initial states by keyword)
            entry["inbound_nodes"] = [_rnn_call_to_keras(node, shapes, layer)
                                      for node in lc["inbound_nodes"]]
        elif isinstance(layer, Attention):  # (its call's flags as Keras's keyword arguments)
            entry["config"].pop("call_signature", None)
            flags = {name: True for name, on in zip(_ATTENTION_FLAGS, layer._signature or ())
                     if on}
            entry["inbound_nodes"] = [{"args": [[_keras_tensor(a, shapes) for a in node["args"]]],
                                       "kwargs": {**flags, **_mask_kwarg(node, shapes, 2)}}
                                      for node in lc["inbound_nodes"]]
        else:
            entry["inbound_nodes"] = [
                {"args": ([[_keras_tensor(a, shapes) for a in node["args"]]] if node["is_list"]
                          else [_keras_tensor(a, shapes) for a in node["args"]]),
                 "kwargs": _mask_kwarg(node, shapes, len(node["args"]) if node["is_list"]
                                       else 1)}
                for node in lc["inbound_nodes"]]
        layers.append(entry)
    return _with_build_and_compile_config(
        {"module": _FUNCTIONAL_MODULE, "class_name": "Functional",
         "config": {"name": config["name"], "trainable": config["trainable"],
                    "layers": layers,
                    "input_layers": _structure([ref(r) for r in config["input_layers"]],
                                               config["input_keys"]),
                    "output_layers": _structure([ref(r) for r in config["output_layers"]],
                                                config["output_keys"])},
         "registered_name": "Functional"}, model, {"input_shape": None})


def _with_build_and_compile_config(entry, model, build_config):
    """A model's serialized form as Keras's serialize_keras_object gives it (in a `.keras`
    file, to_json, a model nested in another's config): its build_config (a functional
    model's {"input_shape": None}, a built Sequential's input shape) and its compile_config
    ({} when not compiled)."""
    from densitron import saving

    if build_config is not None:
        entry["build_config"] = build_config
    entry["compile_config"] = compile_to_keras(saving._compile_config(model)) or {}
    return entry


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


def _attention_call_from_keras(entry, node, mask_ops, helpers):
    """(densitron's node, its call_signature) of a Keras MultiHeadAttention (or
    GroupQueryAttention) call; the layers that spread the mask tensors passed to it over the
    (T, S) plane and multiply them into its attention_mask join `helpers`."""
    kwargs = dict(node.get("kwargs", {}))
    kwargs.pop("training", None)
    given = {}
    for name in ("query_mask", "value_mask", "key_mask"):
        value = kwargs.pop(name, None)  # masks: derived again from the Embedding or Masking
        # (a query_mask passed: read by GroupQueryAttention; Keras's MultiHeadAttention reads
        # its query's own mask instead)
        if value is not None and not _is_mask_of(value, mask_ops) and (
                name != "query_mask" or entry["class_name"] != "MultiHeadAttention"):
            given[name[:-len("_mask")]] = value
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
    if given:  # (named after the layer, numbered apart)
        calls = sum(h["name"].startswith(f"{entry['name']}_") and h["name"].endswith("_spread")
                    for h in helpers)
        mask = _mask_product(f"{entry['name']}_{calls}", args, mask, given, helpers)
    tensors = args + [t for t in (key, mask) if t is not None]
    signature = [key is not None, mask is not None, *flags]
    return ({"args": [_history(t, entry["name"]) for t in tensors], "is_list": True},
            signature)


# Keras's recurrent layers, whose calls take initial states as a keyword argument (densitron's
# own config lists them after the sequences).
_RNN_CLASSES = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNN", "ConvLSTM1D",
                "ConvLSTM2D", "ConvLSTM3D")


def _rnn_call_to_keras(node, shapes, layer):
    tensors = [_keras_tensor(a, shapes) for a in node["args"]]
    nested = getattr(layer, "_nested_states", list)  # (RNN's of a stack: a list a cell)
    return {"args": tensors[:1],
            "kwargs": {**({"initial_state": nested(tensors[1:])} if len(tensors) > 1 else {}),
                       **_mask_kwarg(node, shapes, 1)}}


def _mask_kwarg(node, shapes, count):
    """Keras's `mask` keyword of a call given masks (layer(x, mask=m)): the tensor, or for a
    call on a list (Attention's [query, value]) a list of them, None where an input has
    none."""
    masks = node.get("mask")
    if not masks:
        return {}
    tensors = [_keras_tensor(a, shapes) if a is not None else None for a in masks]
    if count == 1:
        return {"mask": tensors[0]}
    return {"mask": tensors + [None] * (count - len(tensors))}


def _call_kwargs(entry, node, mask_ops):
    """A Keras call's kwargs without training and its mask (_explicit_mask reads it)."""
    kwargs = dict(node.get("kwargs", {}))
    kwargs.pop("training", None)
    kwargs.pop("mask", None)
    return kwargs


def _explicit_mask(entry, node, mask_ops):
    """densitron's "mask" of a Keras call given a `mask` keyword (a tensor, or a list of them
    for a call on a list), each a keras_history, None where none is given or the mask is one
    derived from an Embedding or Masking (densitron derives it again); {} without one."""
    mask = node.get("kwargs", {}).get("mask")
    masks = mask if isinstance(mask, list) else [mask]
    kept = [None if m is None or _is_mask_of(m, mask_ops) else _history(m, entry["name"])
            for m in masks]
    return {"mask": kept} if any(m is not None for m in kept) else {}


def _rnn_call_from_keras(entry, node, mask_ops):
    """densitron's node of a Keras recurrent layer's call: [sequences, *initial states]."""
    kwargs = _call_kwargs(entry, node, mask_ops)
    args = list(node["args"])
    states = kwargs.pop("initial_state", None)
    if states is None and len(args) == 2:
        states = args.pop()
    if any(v is not None for v in kwargs.values()) or len(args) != 1:
        raise ValueError(f"densitron cannot load the call of layer {entry['name']!r}. "
                         f"Received: args={node['args']!r}, kwargs={node['kwargs']!r}")
    states = [] if states is None else states if isinstance(states, list) else [states]
    # (a stack of cells' states: a list a cell)
    states = [t for s in states for t in (s if isinstance(s, list) else [s])]
    tensors = [args[0], *states]
    return {"args": [_history(t, entry["name"]) for t in tensors], "is_list": len(tensors) > 1,
            **_explicit_mask(entry, node, mask_ops)}


def _mask_product(name, args, attention_mask, given, helpers):
    """The tensor of attention_mask AND the masks `given` ({"query": (batch, T), "value" or
    "key": (batch, S) Keras tensors}), each spread over (T, S) by RepeatVector (and Permute)
    layers, multiplied by a Multiply layer; those layers' entries join `helpers`."""
    steps = [_keras_shape(t)[1] for t in args[:2]]

    def layer(class_name, suffix, config, sources):
        full = f"{name}_{suffix}"
        helpers.append({"class_name": class_name, "name": full,
                        "config": {"name": full, "trainable": True, "dtype": "float32",
                                   **config},
                        "inbound_nodes": [{"args": [_history(t, name) for t in sources],
                                           "is_list": len(sources) > 1}],
                        "registered_name": None})
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [full, 0, 0]}}

    parts = [attention_mask] if attention_mask is not None else []
    for role, mask in given.items():
        spread = layer("RepeatVector", f"{role}_mask_spread",
                       {"n": steps[1] if role == "query" else steps[0]}, [mask])
        parts.append(layer("Permute", f"{role}_mask_plane", {"dims": [2, 1]}, [spread])
                     if role == "query" else spread)
    return parts[0] if len(parts) == 1 else layer("Multiply", "mask", {}, parts)


def _keras_shape(tensor):
    _history(tensor, "attention")
    return tensor["config"]["shape"]


def _dot_attention_from_keras(entry, layer, mask_ops):
    """A Keras Attention layer's entry with its calls: the inputs' list, the flags as its
    call_signature (the masks are derived again from the Embedding or Masking)."""
    nodes = []
    for node in entry.get("inbound_nodes", []):
        kwargs = _call_kwargs(entry, node, mask_ops)
        flags = [bool(kwargs.pop(name, False)) for name in _ATTENTION_FLAGS]
        args = node["args"][0] if len(node["args"]) == 1 else node["args"]
        if kwargs or not 2 <= len(args) <= 3:
            raise ValueError(f"densitron cannot load the call of layer {entry['name']!r}. "
                             f"Received: args={node['args']!r}, kwargs={node['kwargs']!r}")
        if any(flags):
            layer["config"]["call_signature"] = flags
        nodes.append({"args": [_history(t, entry["name"]) for t in args], "is_list": True,
                      **_explicit_mask(entry, node, mask_ops)})
    return {"class_name": layer["class_name"], "name": entry["name"],
            "config": layer["config"], "inbound_nodes": nodes}


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
    entry = {"module": _LAYER_MODULE, "class_name": cls.__name__, "config": config,
             "registered_name": None}
    build_config = _build_config(layer)
    if build_config is not None:
        entry["build_config"] = build_config
    return entry


# Keras's layers built when made (their build is Layer's own; Dropout's _build_at_init):
# their entries hold no build_config.
_BUILT_WHEN_MADE = frozenset(
    {"InputLayer", "Activation", "ActivityRegularization", "AlphaDropout", "Dropout", "ELU",
     "GaussianDropout", "GaussianNoise", "Identity", "LeakyReLU", "Masking", "ReLU", "Reshape",
     "Softmax", "UnitNormalization"}
    | {f"SpatialDropout{rank}D" for rank in (1, 2, 3)}
    | {f"{p}{kind}{pool}{rank}D" for p in ("", "Global") for kind in ("Max", "Average", "Avg")
       for pool in ("Pool", "Pooling") for rank in (1, 2, 3)})
# Keras's lookups build from their vocabulary: an empty build_config (IndexLookup's).
_EMPTY_BUILD_CONFIG = frozenset({"StringLookup", "IntegerLookup"})


def _shape_list(shape):
    return None if shape is None else [None if d is None else int(d) for d in shape]


def _build_config(layer):
    """Keras's build_config of a built-in layer as its first call built it: {"input_shape":
    its input's shape (a list of them for a list of inputs)}, or {"shapes_dict": ...} for a
    build of several tensors (a recurrent layer given initial states: sequences_shape and
    initial_state_shape; MultiHeadAttention's query_shape, value_shape, key_shape); None for
    a layer Keras builds when made or one never called."""
    name = type(layer).__name__
    if name in _BUILT_WHEN_MADE:
        return None
    if name in _EMPTY_BUILD_CONFIG:
        return {}
    node = layer._inbound_nodes[0] if getattr(layer, "_inbound_nodes", None) else None
    own = layer.__dict__.get("_build_shapes")
    if node is None:
        if own and len(own) == 1 and name not in _RNN_CLASSES and \
                name not in ("MultiHeadAttention", "GroupQueryAttention"):
            shape = next(iter(own.values()))  # (built by hand or on arrays)
            nested = isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple))
            return {"input_shape": [_shape_list(s) for s in shape] if nested else
                    _shape_list(shape)}
        return None
    shapes = [_shape_list(t.shape) for t in node.inputs]
    if name in _RNN_CLASSES and len(shapes) > 1:
        nested = getattr(layer, "_nested_states", list)
        return {"shapes_dict": {"sequences_shape": shapes[0],
                                "initial_state_shape": nested(shapes[1:])}}
    if name in ("MultiHeadAttention", "GroupQueryAttention"):
        has_key = layer._signature[0] if layer._signature else len(shapes) == 3
        keys = ("query_shape", "value_shape") + (("key_shape",) if has_key else ())
        return {"shapes_dict": dict(zip(keys, shapes))}
    if getattr(node, "is_list", False):
        return {"input_shape": shapes}
    return {"input_shape": shapes[0]}


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
_OBJECT_KERAS_ONLY = {}  # (none now: the initializers take Keras's input_axes, output_axes)


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
            # mixed precision models included (they keep float32 weights); Hashing's names
            # its outputs' dtype (int64 ids)
            value = (value.get("config", {}).get("name") if isinstance(value, dict) else value) \
                if class_name == "Hashing" else "float32"
        elif isinstance(value, dict) and "class_name" in value and _kind_of(key) is not None:
            value = _plain(value)
        elif key in ("layer", "backward_layer") and isinstance(value, dict) and \
                "class_name" in value:
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


def _derived(config, mask_ops):
    """The mask ops that are the masks an Embedding(mask_zero=True) or a Masking layer gives
    its output (Keras records them as ops): a NotEqual of the tensor such a layer reads with
    its mask value (0 for ids), an Any of such a NotEqual. Others are the user's own (an
    ops.not_equal passed as layer(x, mask=...)), loaded as ops."""
    masking = set()
    for entry in config["layers"]:
        cfg = entry.get("config", {})
        if entry.get("class_name") == "Embedding" and cfg.get("mask_zero"):
            value = 0.0
        elif entry.get("class_name") == "Masking":
            value = float(cfg.get("mask_value", 0.0))
        else:
            continue
        for node in entry.get("inbound_nodes", []):
            args = node.get("args", []) if isinstance(node, dict) else []
            if args and _is_keras_tensor(args[0]):
                masking.add((tuple(args[0]["config"]["keras_history"]), value))
    by_name = {e["name"]: e for e in config["layers"]}
    kept = set()
    for name in mask_ops:
        args = by_name[name]["inbound_nodes"][0]["args"]
        if by_name[name].get("class_name") == "NotEqual" and _is_keras_tensor(args[0]) and (
                tuple(args[0]["config"]["keras_history"]), float(args[1])) in masking:
            kept.add(name)
    for name in mask_ops - kept:  # (Masking's: Any over the last axis of a kept NotEqual)
        args = by_name[name]["inbound_nodes"][0]["args"]
        if by_name[name].get("class_name") == "Any" and _is_mask_of(args[0], kept):
            kept.add(name)
    return kept


def _combines_masks(entry, mask_ops):
    """Whether a Keras functional layer entry is a LogicalOr or LogicalAnd of recorded masks
    (a merge layer's mask)."""
    nodes = entry.get("inbound_nodes", [])
    if entry.get("class_name") not in ("LogicalOr", "LogicalAnd") or len(nodes) != 1:
        return False
    args = nodes[0].get("args", [])
    return len(args) == 2 and all(_is_mask_of(a, mask_ops) for a in args)


def _masks_only(config, mask_ops):
    """The ops of mask_ops that are masks: read only by other such ops and as a layer's mask
    keyword, and not an output (a user's ops.not_equal(h, 0.0) computes, as Keras's op)."""
    outputs = {r[0] for r in _refs(config["output_layers"])[0]}
    while True:
        read = set(outputs)
        for entry in config["layers"]:
            if entry["name"] in mask_ops:
                continue
            for node in entry.get("inbound_nodes", []):
                if isinstance(node, dict):
                    read |= {v["config"]["keras_history"][0]
                             for v in _keras_leaves(node.get("args", []))
                             if _is_keras_tensor(v)}
        kept = mask_ops - read
        if kept == mask_ops:
            return kept
        mask_ops = kept


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
        mask_ops = _derived(config, {e["name"] for e in config["layers"] if _is_mask_op(e)})
        while True:  # and a merge's LogicalOr (or LogicalAnd) of recorded masks
            more = {e["name"] for e in config["layers"]
                    if e["name"] not in mask_ops and _combines_masks(e, mask_ops)}
            if not more:
                break
            mask_ops |= more
        mask_ops = _masks_only(config, mask_ops)
        layers = []
        for entry in config["layers"]:
            if entry["name"] in mask_ops:
                continue
            if is_op_entry(entry):
                layers.append(_op_from_keras(entry))
                continue
            layer = from_keras(entry)
            nodes = []
            if layer["class_name"] in ("Attention", "AdditiveAttention"):
                layers.append(_dot_attention_from_keras(entry, layer, mask_ops))
                continue
            if layer["class_name"] in _RNN_CLASSES:
                layers.append({"class_name": layer["class_name"], "name": entry["name"],
                               "config": layer["config"],
                               "inbound_nodes": [_rnn_call_from_keras(entry, node, mask_ops)
                                                 for node in entry.get("inbound_nodes", [])],
                               "registered_name": entry.get("registered_name")})
                continue
            if layer["class_name"] in ("MultiHeadAttention", "GroupQueryAttention"):
                for node in entry.get("inbound_nodes", []):
                    converted, signature = _attention_call_from_keras(entry, node, mask_ops,
                                                                      layers)
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
                       if k not in ("training", "mask")):
                    raise ValueError(f"densitron cannot load the call of layer "
                                     f"{entry['name']!r} with keyword arguments. Received: "
                                     f"kwargs={node['kwargs']!r}")
                args = node["args"]
                mask = _explicit_mask(entry, node, mask_ops)  # (layer(x, mask=m))
                if len(args) == 1 and isinstance(args[0], list):
                    nodes.append({"args": [_history(t, entry["name"]) for t in args[0]],
                                  "is_list": True, **mask})
                else:  # (several tensors as arguments: a layer of the user's, call(a, b))
                    nodes.append({"args": [_history(t, entry["name"]) for t in args],
                                  "is_list": False, "positional": len(args) > 1, **mask})
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
        out = {"name": config["name"], "trainable": config.get("trainable", True)}
        if entries and entries[0].get("class_name") == "InputLayer":
            first = entries.pop(0)["config"]
            shape = first["batch_shape"]
            if first.get("name"):  # (its InputLayer keeps its name, as in Keras)
                out["input_name"] = first["name"]
        out.update({"layers": [from_keras(e) for e in entries], "build_input_shape": shape})
        return {"class_name": "Sequential", "config": out}
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
        # (as Keras's loader: the function itself, a registered one or densitron.losses')
        from densitron import losses
        from densitron.utils.serialization import get_registered_object

        name = loss.get("config")
        found = get_registered_object(name) if isinstance(name, str) else None
        if found is None and isinstance(name, str) and not name.startswith("_"):
            found = getattr(losses, name, None)
        return found if callable(found) and not isinstance(found, type) else name
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


# --- Keras's op nodes ----------------------------------------------------------------------
# Keras 3 writes each op called on symbolic tensors (ops.relu(h), h * 2.0, h[:, :2]) as a node
# of its own: {"module": "keras.src.ops.numpy", "class_name": "Multiply", "config": {"name":
# ..., <its constructor's arguments>}, "inbound_nodes": [{"args": [<tensor>, 2.0], ...}]},
# built again as Multiply(**config)(*args). densitron makes layers of such calls (MathOp,
# Rescaling, Slice, ...); each call records what Keras would write of it (OpCall, on its output
# tensor), and files write that node in place of the layers, which load as densitron.ops calls.

# densitron.ops function -> (its module below keras.src.ops, Keras's Operation class, the
# function's parameters as Keras's takes them, with its defaults, and those of them the class's
# constructor takes: the node's config; the others are the call's arguments, in order). The
# first function of a class is the one that builds it again.
_OPS = {
    "relu": ("nn", "Relu", "x", ""),
    "relu6": ("nn", "Relu6", "x", ""),
    "sigmoid": ("nn", "Sigmoid", "x", ""),
    "softmax": ("nn", "Softmax", "x, axis=-1", "axis"),
    "log_softmax": ("nn", "LogSoftmax", "x, axis=-1", "axis"),
    "gelu": ("nn", "Gelu", "x, approximate=True", "approximate"),
    "silu": ("nn", "Silu", "x", ""),
    "swish": ("nn", "Silu", "x", ""),
    "elu": ("nn", "Elu", "x, alpha=1.0", "alpha"),
    "selu": ("nn", "Selu", "x", ""),
    "softplus": ("nn", "Softplus", "x", ""),
    "leaky_relu": ("nn", "LeakyRelu", "x, negative_slope=0.2", "negative_slope"),
    "hard_sigmoid": ("nn", "HardSigmoid", "x", ""),
    "hard_silu": ("nn", "HardSilu", "x", ""),
    "hard_swish": ("nn", "HardSilu", "x", ""),
    "softsign": ("nn", "Softsign", "x", ""),
    "celu": ("nn", "Celu", "x, alpha=1.0", "alpha"),
    "hard_shrink": ("nn", "HardShrink", "x, threshold=0.5", "threshold"),
    "hard_tanh": ("nn", "HardTanh", "x", ""),
    "log_sigmoid": ("nn", "LogSigmoid", "x", ""),
    "soft_shrink": ("nn", "SoftShrink", "x, threshold=0.5", "threshold"),
    "sparse_plus": ("nn", "SparsePlus", "x", ""),
    "sparse_sigmoid": ("nn", "SparseSigmoid", "x", ""),
    "squareplus": ("nn", "Squareplus", "x, b=4", "b"),
    "tanh_shrink": ("nn", "TanhShrink", "x", ""),
    "threshold": ("nn", "Threshold", "x, threshold, default_value",
                  "threshold default_value"),
    "glu": ("nn", "Glu", "x, axis=-1", "axis"),
    "normalize": ("nn", "Normalize", "x, axis=-1, order=2, epsilon=None",
                  "axis order epsilon"),
    "one_hot": ("nn", "OneHot", "x, num_classes, axis=-1, dtype=None, sparse=False",
                "num_classes axis dtype sparse"),
    "binary_crossentropy": ("nn", "BinaryCrossentropy", "target, output, from_logits=False",
                            "from_logits"),
    "categorical_crossentropy": ("nn", "CategoricalCrossentropy",
                                 "target, output, from_logits=False, axis=-1",
                                 "from_logits axis"),
    "sparse_categorical_crossentropy": ("nn", "SparseCategoricalCrossentropy",
                                        "target, output, from_logits=False, axis=-1",
                                        "from_logits axis"),
    "tanh": ("numpy", "Tanh", "x", ""),
    "add": ("numpy", "Add", "x1, x2", ""),
    "subtract": ("numpy", "Subtract", "x1, x2", ""),
    "multiply": ("numpy", "Multiply", "x1, x2", ""),
    "divide": ("numpy", "Divide", "x1, x2", ""),
    "true_divide": ("numpy", "TrueDivide", "x1, x2", ""),
    "power": ("numpy", "Power", "x1, x2", ""),
    "maximum": ("numpy", "Maximum", "x1, x2", ""),
    "minimum": ("numpy", "Minimum", "x1, x2", ""),
    "matmul": ("numpy", "Matmul", "x1, x2", ""),
    "equal": ("numpy", "Equal", "x1, x2", ""),
    "not_equal": ("numpy", "NotEqual", "x1, x2", ""),
    "greater": ("numpy", "Greater", "x1, x2", ""),
    "greater_equal": ("numpy", "GreaterEqual", "x1, x2", ""),
    "less": ("numpy", "Less", "x1, x2", ""),
    "less_equal": ("numpy", "LessEqual", "x1, x2", ""),
    "logical_and": ("numpy", "LogicalAnd", "x1, x2", ""),
    "logical_or": ("numpy", "LogicalOr", "x1, x2", ""),
    "divide_no_nan": ("numpy", "DivideNoNan", "x1, x2", ""),
    "floor_divide": ("numpy", "FloorDivide", "x1, x2", ""),
    "mod": ("numpy", "Mod", "x1, x2", ""),
    "hypot": ("numpy", "Hypot", "x1, x2", ""),
    "logaddexp": ("numpy", "Logaddexp", "x1, x2", ""),
    "heaviside": ("numpy", "Heaviside", "x1, x2", ""),
    "square": ("numpy", "Square", "x", ""),
    "sqrt": ("numpy", "Sqrt", "x", ""),
    "log": ("numpy", "Log", "x", ""),
    "exp": ("numpy", "Exp", "x", ""),
    "log1p": ("numpy", "Log1p", "x", ""),
    "absolute": ("numpy", "Absolute", "x", ""),
    "abs": ("numpy", "Absolute", "x", ""),
    "fabs": ("numpy", "Fabs", "x", ""),
    "sign": ("numpy", "Sign", "x", ""),
    "floor": ("numpy", "Floor", "x", ""),
    "ceil": ("numpy", "Ceil", "x", ""),
    "round": ("numpy", "Round", "x, decimals=0", "decimals"),
    "negative": ("numpy", "Negative", "x", ""),
    "cosh": ("numpy", "Cosh", "x", ""),
    "sinh": ("numpy", "Sinh", "x", ""),
    "logical_not": ("numpy", "LogicalNot", "x", ""),
    "reciprocal": ("numpy", "Reciprocal", "x", ""),
    "log2": ("numpy", "Log2", "x", ""),
    "log10": ("numpy", "Log10", "x", ""),
    "exp2": ("numpy", "Exp2", "x", ""),
    "expm1": ("numpy", "Expm1", "x", ""),
    "deg2rad": ("numpy", "Deg2rad", "x", ""),
    "rad2deg": ("numpy", "Rad2deg", "x", ""),
    "clip": ("numpy", "Clip", "x, x_min, x_max", "x_min x_max"),
    "sum": ("numpy", "Sum", "x, axis=None, keepdims=False", "axis keepdims"),
    "mean": ("numpy", "Mean", "x, axis=None, keepdims=False", "axis keepdims"),
    "max": ("numpy", "Max", "x, axis=None, keepdims=False, initial=None",
            "axis keepdims initial"),
    "min": ("numpy", "Min", "x, axis=None, keepdims=False, initial=None",
            "axis keepdims initial"),
    "amax": ("numpy", "Amax", "x, axis=None, keepdims=False", "axis keepdims"),
    "amin": ("numpy", "Amin", "x, axis=None, keepdims=False", "axis keepdims"),
    "var": ("numpy", "Var", "x, axis=None, keepdims=False", "axis keepdims"),
    "std": ("numpy", "Std", "x, axis=None, keepdims=False", "axis keepdims"),
    "argmax": ("numpy", "Argmax", "x, axis=None, keepdims=False", "axis keepdims"),
    "argmin": ("numpy", "Argmin", "x, axis=None, keepdims=False", "axis keepdims"),
    "concatenate": ("numpy", "Concatenate", "xs, axis=0", "axis"),
    "stack": ("numpy", "Stack", "x, axis=0", "axis"),
    "where": ("numpy", "Where", "condition, x1=None, x2=None", ""),
    "reshape": ("numpy", "Reshape", "x, newshape", "newshape"),
    "squeeze": ("numpy", "Squeeze", "x, axis=None", "axis"),
    "expand_dims": ("numpy", "ExpandDims", "x, axis", "axis"),
    "ones_like": ("numpy", "OnesLike", "x, dtype=None", "dtype"),
    "zeros_like": ("numpy", "ZerosLike", "x, dtype=None", "dtype"),
    "tensordot": ("numpy", "Tensordot", "x1, x2, axes=2", "axes"),
    "get_item": ("numpy", "GetItem", "x, key", ""),
    "stop_gradient": ("core", "StopGradient", "variable", ""),
    "cast": ("core", "Cast", "x, dtype", "dtype"),
    "logsumexp": ("math", "Logsumexp", "x, axis=None, keepdims=False", "axis keepdims"),
    "rsqrt": ("math", "Rsqrt", "x", ""),
    "norm": ("linalg", "Norm", "x, ord=None, axis=None, keepdims=False", "ord axis keepdims"),
}
OP_FUNCTIONS = frozenset(_OPS)
# Python's operators on a symbolic tensor, as Keras's KerasTensor writes them: (the function
# of _OPS, whether the tensor is the second argument); None: the tensor alone.
_OPERATORS = {
    "__add__": ("add", False), "__radd__": ("add", True),
    "__sub__": ("subtract", False), "__rsub__": ("subtract", True),
    "__mul__": ("multiply", False), "__rmul__": ("multiply", True),
    "__truediv__": ("true_divide", False), "__rtruediv__": ("true_divide", True),
    "__pow__": ("power", False), "__getitem__": ("get_item", False),
    "__eq__": ("equal", False), "__ne__": ("not_equal", False),
    "__gt__": ("greater", False), "__ge__": ("greater_equal", False),
    "__lt__": ("less", False), "__le__": ("less_equal", False),
    "__neg__": ("negative", None), "__abs__": ("absolute", None),
}
_REQUIRED = object()
# A Keras op node's entry in densitron's config: built again by OpNode.
OPERATION = "__operation__"


def _params(text):
    """[(name, default or _REQUIRED)] of a parameter list "x, axis=None, keepdims=False"."""
    import ast

    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, default = part.partition("=")
        out.append((name, ast.literal_eval(default) if default else _REQUIRED))
    return out


def _op_spec(name):
    module, class_name, params, init = _OPS[name]
    return module, class_name, _params(params), init.split()


class OpCall:
    """An op call on symbolic tensors as Keras writes it: its module and class, its
    constructor's arguments (config) and its call's arguments (args), tensors as they are."""

    __slots__ = ("args", "class_name", "config", "module")

    def __init__(self, module, class_name, config, args):
        self.module, self.class_name, self.config, self.args = module, class_name, config, args

    def tensors(self):
        """The symbolic tensors among the arguments, in order."""
        return [v for v in _leaves(self.args) if _is_tensor(v)]


def _is_tensor(value):
    from densitron.layers.layer import KerasTensor

    return isinstance(value, KerasTensor)


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _constant(value):
    """Whether a file can hold `value` as an op's argument (Keras's serialize_keras_object of
    it): a number, a string, None, a slice, Ellipsis, a numeric array, lists of them."""
    import numpy as np

    if value is None or value is Ellipsis or isinstance(value, (bool, int, float, str,
                                                                np.number, np.bool_)):
        return True
    if isinstance(value, slice):
        return all(_constant(v) for v in (value.start, value.stop, value.step))
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, (list, tuple)) and all(_is_tensor(v) or _constant(v)
                                                     for v in value)


def record_op(name, out, args, kwargs, reverse=None):
    """Records on `out`, made by densitron.ops.<name>(*args, **kwargs) (an operator of a
    tensor: `reverse` as in _OPERATORS), the call as Keras writes it (an OpCall), when out is
    a tensor an op layer made and every argument is a tensor or a constant a file holds."""
    if not _is_tensor(out) or not getattr(out._node.layer, "_op_layer", False):
        return
    module, class_name, params, init = _op_spec(name)
    if reverse is not None:  # (an operator: self, other)
        args = args[::-1] if reverse else args
    try:
        bound = {}
        for k, (param, default) in enumerate(params):
            if k < len(args):
                if param in kwargs:
                    return
                bound[param] = args[k]
            elif param in kwargs:
                bound[param] = kwargs[param]
            elif default is not _REQUIRED:
                bound[param] = default
            else:
                return
        if len(args) > len(params) or set(kwargs) - set(bound):
            return
    except TypeError:
        return
    config = {p: bound[p] for p in init}
    call = [bound[p] for p, _ in params if p not in init]
    if any(t is out for t in _leaves(call)):
        return  # (an op that gave its input back: nothing to write)
    if not all(_is_tensor(v) or _constant(v) for v in _leaves([call, *config.values()])):
        return
    if not any(_is_tensor(v) for v in _leaves(call)):
        return
    out._keras_op = OpCall(module, class_name, config, call)


def recording(name, fn, reverse=None, marks=True):
    """fn (densitron.ops.<name>, or an operator of KerasTensor), recording its calls as Keras's
    op nodes (record_op); an op called by another records nothing (the outer one does). With
    `marks`, it marks the layers it makes as ops' too (densitron._op_marks's makes_op_layers,
    in the same call: ops.matmul's fast path on arrays pays for one wrapper only)."""
    import functools

    from densitron._op_marks import OP_DEPTH

    @functools.wraps(fn)
    def op(*args, **kwargs):
        outer = not OP_DEPTH[0]
        if marks:
            OP_DEPTH[0] += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                OP_DEPTH[0] -= 1
        else:
            out = fn(*args, **kwargs)
        if outer and out.__class__.__name__ == "KerasTensor":
            record_op(name, out, args, kwargs, reverse)
        return out

    return op


def record_operators(cls):
    """cls (KerasTensor) with its operators recording their calls as Keras's op nodes."""
    for method, (name, reverse) in _OPERATORS.items():
        setattr(cls, method, recording(name, getattr(cls, method),
                                       False if reverse is None else reverse, marks=False))
    return cls


def _keras_value(value, tensor):
    """An op's argument as Keras's serialize_keras_object writes it, each symbolic tensor by
    tensor(t)."""
    import numpy as np

    if _is_tensor(value):
        return tensor(value)
    if isinstance(value, (list, tuple)):
        return [_keras_value(v, tensor) for v in value]
    if isinstance(value, slice):
        return {"class_name": "__slice__",
                "config": {k: _keras_value(getattr(value, k), tensor)
                           for k in ("start", "stop", "step")}}
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__",
                "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    if isinstance(value, (np.number, np.bool_)):
        return value.item()
    return value


def _op_bodies(calls, outputs):
    """({id(call): OpCall} of the calls that end an op call files write as Keras's node, ids of
    the calls inside those op calls (the op's other layers, which the node stands for))."""
    from densitron.layers.core import Lambda

    producer = {id(t): call for call in calls for t in call.outputs}
    ends, inside = {}, {}
    for call in calls:
        outs = getattr(call, "outputs", [])
        record = getattr(outs[0], "_keras_op", None) if len(outs) == 1 else None
        if record is None or not hasattr(call, "within") or \
                any(isinstance(r.layer, Lambda) for r in call.within):
            continue  # (a Lambda's function is kept as the layers it made, as it was)
        bounds = {id(t) for t in record.tensors()}
        body, stack = set(), [call]
        while stack and body is not None:
            for t in stack.pop().inputs:
                p = producer.get(id(t))
                if id(t) in bounds or (p is not None and id(p) in body):
                    continue
                if p is None or not hasattr(p, "within") or not p.inputs or \
                        not p.layer._op_layer or id(p) in ends:
                    body = None  # (it reads more than its arguments: kept as its layers)
                    break
                body.add(id(p))
                stack.append(p)
        if body is not None and not body & set(inside):
            ends[id(call)] = record
            inside.update(dict.fromkeys(body, id(call)))
    # an op's inner tensor read by anything but its op: that op is kept as its layers
    for _ in range(len(ends) + 1):
        leaked = {inside[id(producer[id(t)])] for t in outputs
                  if id(t) in producer and id(producer[id(t)]) in inside}
        for call in calls:
            owner = inside.get(id(call), id(call))
            leaked |= {inside[id(producer[id(t)])] for t in call.inputs
                       if id(t) in producer and id(producer[id(t)]) in inside and
                       inside[id(producer[id(t)])] != owner}
        if not leaked:
            break
        for end in leaked:
            ends.pop(end, None)
        inside = {k: v for k, v in inside.items() if v not in leaked}
    return ends, set(inside)


# Keras's ops of bool results: densitron's are 1.0/0.0, so files cast them to float32 after
# the op, as Keras then computes with them as densitron does (bool + bool is a logical or).
_BOOL_OPS = {"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd",
             "LogicalOr", "LogicalNot"}


def _op_names(file_layers, names, op_of):
    """({densitron's name of an op's layer: the name its output is read by}, {that name: the op
    node's own name, for an op of _BOOL_OPS, whose output a Cast node after it gives}), as
    Keras names ops: the class's in snake case, numbered after the first (multiply,
    multiply_1), beside the file's other names."""
    from densitron.utils.naming import to_snake_case

    used = {names[id(layer)] for layer in file_layers if id(layer) not in op_of}

    def fresh(class_name):
        base = to_snake_case(class_name)
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    out, nodes = {}, {}
    for layer in file_layers:
        record = op_of.get(id(layer))
        if record is None:
            continue
        node = out[names[id(layer)]] = fresh(record.class_name)
        if record.class_name in _BOOL_OPS:
            nodes[names[id(layer)]] = node
            out[names[id(layer)]] = fresh("Cast")
    return out, nodes


def _op_entry(record, name, tensor):
    """An op call's entry in a functional config, as Keras 3 writes it."""
    config = {"name": name, **{k: _keras_value(v, tensor) for k, v in record.config.items()}}
    return {"module": f"keras.src.ops.{record.module}", "class_name": record.class_name,
            "config": config, "registered_name": record.class_name, "name": name,
            "inbound_nodes": [{"args": _keras_value(record.args, tensor), "kwargs": {}}]}


# --- Keras's op nodes, read --------------------------------------------------------------

# Keras's op class -> the densitron.ops function that builds it (the first of _OPS's).
_FUNCTION_OF = {}
for _name, (_module, _class_name, _, _) in _OPS.items():
    _FUNCTION_OF.setdefault((_module, _class_name), _name)
del _name, _module, _class_name


def is_op_entry(entry):
    """Whether a functional config's entry is an op's node (Keras's keras.src.ops.* classes,
    or its public keras.ops path)."""
    module = entry.get("module")
    return isinstance(module, str) and (module == "keras.ops" or
                                        module.startswith(("keras.src.ops.", "keras.ops.")))


def _op_key(entry):
    module = entry["module"].rsplit(".", 1)[-1]
    return ("numpy" if module == "ops" else module), entry["class_name"]


def _op_from_keras(entry):
    """densitron's config entry of a Keras op node: OPERATION, with the op's class and
    config, each call's tensors (keras_history) in the order its args and kwargs hold them and
    the call itself (Keras's args and kwargs), which OpNode builds again."""
    key = _op_key(entry)
    if key not in _FUNCTION_OF and entry["class_name"] not in {c for _, c in _FUNCTION_OF}:
        raise ValueError(f"densitron cannot build Keras's op {entry['class_name']!r} "
                         f"({entry['module']}) on symbolic tensors. Received: node "
                         f"{entry['name']!r} with config {entry.get('config')!r}")
    nodes = []
    for node in entry.get("inbound_nodes", []):
        call = {"args": node.get("args", []), "kwargs": node.get("kwargs", {})}
        tensors = [v for v in _keras_leaves(call) if _is_keras_tensor(v)]
        nodes.append({"args": [_history(t, entry["name"]) for t in tensors], "is_list": False,
                      "positional": True, "call": call})
    config = {k: v for k, v in entry.get("config", {}).items() if k != "name"}
    return {"class_name": OPERATION, "name": entry["name"],
            "config": {"module": entry["module"], "class_name": entry["class_name"],
                       "config": config},
            "inbound_nodes": nodes}


def _is_keras_tensor(value):
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _keras_leaves(value):
    """The values of a serialized structure (lists, dicts of kwargs; a serialized object is
    one value), in order."""
    if isinstance(value, list):
        for v in value:
            yield from _keras_leaves(v)
    elif isinstance(value, dict) and "class_name" not in value:
        for v in value.values():
            yield from _keras_leaves(v)
    else:
        yield value


class OpNode:
    """A Keras op node of a loaded config (an OPERATION entry): each call builds the op again
    as densitron.ops' function of its class on the call's tensors."""

    def __init__(self, entry):
        self.name = entry["name"]
        self.module = entry["config"]["module"]
        self.class_name = entry["config"]["class_name"]
        self.config = entry["config"]["config"]

    def __call__(self, *tensors, call):
        from densitron import ops

        found = iter(tensors)
        args = _from_keras_value(call["args"], found)
        kwargs = _from_keras_value(call["kwargs"], found)
        key = _op_key({"module": self.module, "class_name": self.class_name})
        name = _FUNCTION_OF.get(key) or next(n for (_, c), n in _FUNCTION_OF.items()
                                             if c == self.class_name)
        try:
            config = self._arguments(name)
            if name == "get_item":  # (Keras's GetItem: x[key], a list key as a tuple)
                x, index = args
                out = x[tuple(index) if isinstance(index, list) else index]
            else:
                out = getattr(ops, name)(*args, **kwargs, **config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"densitron cannot build Keras's op {self.class_name} (node "
                             f"{self.name!r}) on symbolic tensors: {e} Received: args={args!r}, "
                             f"config={self.config!r}") from None
        if getattr(out, "_keras_op", None) is not None and not kwargs and \
                not any(t is out for t in tensors):  # (an op that gave its input back)
            # (written again as the file has it: ops.divide also builds TrueDivide, Amax...)
            out._keras_op = OpCall(key[0], self.class_name,
                                   {k: _from_keras_value(v, iter(()))
                                    for k, v in self.config.items()}, args)
        return out

    def _arguments(self, name):
        """The op's config as the arguments of densitron.ops.<name>: Keras's arguments it does
        not take are dropped at Keras's defaults (refused at any other value)."""
        import inspect

        from densitron import ops

        params = inspect.signature(getattr(ops, name)).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return dict(self.config)
        defaults = dict(_params(_OPS[name][2]))
        out = {}
        for key, value in self.config.items():
            if key in params:
                out[key] = _from_keras_value(value, iter(()))
            elif value is not None and value != defaults.get(key):
                raise ValueError(f"densitron's ops.{name} takes no `{key}`.")
        return out


def _from_keras_value(value, tensors):
    """A serialized op argument as a value (Keras's deserialize_keras_object: slices, Ellipsis,
    arrays), each serialized symbolic tensor the next of `tensors`."""
    import numpy as np

    if isinstance(value, list):
        return [_from_keras_value(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("class_name")
    if kind == "__keras_tensor__":
        return next(tensors)
    if kind == "__slice__":
        c = value["config"]
        return slice(*(_from_keras_value(c.get(k), tensors) for k in ("start", "stop", "step")))
    if kind == "__ellipsis__":
        return Ellipsis
    if kind in ("__numpy__", "__tensor__"):
        return np.asarray(value["config"]["value"], dtype=value["config"].get("dtype"))
    if kind is None:  # (a call's kwargs)
        return {k: _from_keras_value(v, tensors) for k, v in value.items()}
    raise ValueError(f"densitron cannot read an op's argument {value!r}. Received: {value!r}")
