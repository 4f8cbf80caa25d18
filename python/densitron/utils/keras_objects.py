"""Keras's serialize_keras_object and deserialize_keras_object: any object a config holds as
Keras writes it — plain values as they are, NumPy arrays and bytes tagged, built-in classes and
functions under Keras's public module names ({"module": "keras.layers", "class_name": "Dense",
"config": ..., "registered_name": None}), the user's registered ones under their registered
names — and back. What custom layers' get_config/from_config call for the objects they hold."""

import types

import numpy as np

from densitron.utils import serialization

# densitron's public modules and the Keras module each stands for, in lookup order.
_MODULES = (("layers", "keras.layers"), ("initializers", "keras.initializers"),
            ("regularizers", "keras.regularizers"), ("constraints", "keras.constraints"),
            ("losses", "keras.losses"), ("metrics", "keras.metrics"),
            ("optimizers", "keras.optimizers"),
            ("optimizers.schedules", "keras.optimizers.schedules"),
            ("activations", "keras.activations"), ("models", "keras.models"))


def _modules():
    import importlib

    return [(importlib.import_module(f"densitron.{name}"), keras) for name, keras in _MODULES]


def _public(obj):
    """The Keras module naming obj (a densitron class or function), or None."""
    name = getattr(obj, "__name__", None)
    for module, keras in _modules():
        if name is not None and getattr(module, name, None) is obj:
            return keras
    return None


def _registered_name(obj):
    """obj's "package>name" when registered, else None."""
    name = serialization.get_registered_name(obj)
    return name if ">" in name else None


def serialize_config(config):
    """A get_config() dict with the objects it holds (a regularizer, a layer) serialized, as
    Keras keeps an object's config."""
    return {key: serialize_keras_object(value) for key, value in config.items()}


def _module_of(obj):
    """The module Keras writes for a class or function of the user's: None for __main__'s."""
    return None if obj.__module__ == "__main__" else obj.__module__


def serialize_keras_object(obj):
    """obj as Keras's config format holds it (see the module's docstring)."""
    from densitron import keras_format
    from densitron.layers.layer import Layer
    from densitron.models.functional import Functional

    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [serialize_keras_object(x) for x in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, (np.ndarray, np.generic)):
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            from densitron.backend import standardize_dtype

            return {"class_name": "__numpy__",
                    "config": {"value": obj.tolist(), "dtype": standardize_dtype(obj.dtype)}}
        return obj.item()
    if isinstance(obj, Functional):
        return keras_format.to_keras(obj)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        if obj.__name__ == "<lambda>":
            raise ValueError("A lambda cannot be serialized safely: give the function a name "
                             "(and register it with register_keras_serializable). "
                             f"Received: {obj!r}")
        if _public(obj) is not None:  # as Keras 3.15 writes its own functions
            return {"module": "builtins", "class_name": "function", "config": obj.__name__,
                    "registered_name": "function"}
        registered = _registered_name(obj)
        return {"module": _module_of(obj), "class_name": "function",
                "config": registered or obj.__name__, "registered_name": registered}
    if not hasattr(obj, "get_config"):
        raise TypeError(f"Cannot serialize {type(obj).__name__} objects: Keras's format holds "
                        "plain values, arrays and objects with get_config. "
                        f"Received: {obj!r}")
    config = obj.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"The `get_config()` method of {obj!r} should return a dict. "
                        f"Received: {config!r}")
    config = serialize_config(config)
    cls = type(obj)
    module = _public(cls)
    if isinstance(obj, Layer):
        config = keras_format._keras_layer_config(config)
    if module is not None:
        out = {"module": module, "class_name": cls.__name__, "config": config,
               "registered_name": None}
    else:
        out = {"module": _module_of(cls), "class_name": cls.__name__, "config": config,
               "registered_name": _registered_name(cls) or cls.__name__}
    build_config = obj.get_build_config() if hasattr(obj, "get_build_config") else None
    if build_config is not None:  # (a built layer's input shape, built again on loading)
        out["build_config"] = serialize_keras_object(build_config)
    return out


def _lookup(name, registered_name, module, custom_objects):
    """The class or function a serialized entry names: the user's (registered, in scope or in
    custom_objects) first, then densitron's under the Keras module named (any of them when the
    module is not Keras's)."""
    for key in (registered_name, name):
        if key is None:
            continue
        found = serialization.get_registered_object(key, custom_objects)
        if found is not None:
            return found
    modules = _modules()
    named = [mod for mod, keras in modules if keras == module]  # Keras's module of the class
    for mod in named or [mod for mod, _ in modules]:
        found = getattr(mod, name, None)
        if found is not None and not isinstance(found, types.ModuleType):
            return found
    return None


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object of serialize_keras_object's (or Keras's) config: plain values as they are,
    lists and dicts item by item, tagged arrays and bytes, and classes and functions found
    among the user's (registered, or given in `custom_objects`) and densitron's by their Keras
    names; TypeError for a name found nowhere."""
    from densitron import keras_format
    from densitron.constraints import Constraint
    from densitron.initializers import Initializer
    from densitron.layers.layer import Layer
    from densitron.regularizers import Regularizer

    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {sorted(kwargs)}. "
                        f"Received: {kwargs!r}")
    custom_objects = custom_objects or {}
    if config is None:
        return None
    if isinstance(config, str):
        found = serialization.get_registered_object(config, custom_objects, module_objects)
        return config if found is None else found
    if isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(x, custom_objects, safe_mode) for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config!r}. Received: config={config!r}")
    if "class_name" not in config or "config" not in config:
        return {key: deserialize_keras_object(value, custom_objects, safe_mode)
                for key, value in config.items()}
    class_name, inner = config["class_name"], config["config"]
    if class_name in ("__numpy__", "__tensor__"):
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__lambda__":
        raise ValueError("densitron does not load Python lambdas from configs (they carry code): "
                         "define the function, register it with register_keras_serializable "
                         "and save again. Received: a __lambda__ entry")
    if class_name in ("Functional", "Sequential", "Model"):
        from densitron import layers

        with serialization.custom_object_scope(custom_objects):
            return layers.deserialize(config)
    module = config.get("module")
    if class_name == "function":
        if not isinstance(inner, str):
            raise TypeError("A function's config is its name. "
                            f"Received: config={inner!r}")
        registered = config.get("registered_name")
        found = _lookup(inner, None if registered == "function" else registered, module,
                        custom_objects)
        if found is None:
            raise TypeError(f"Could not locate function '{inner}'. Make sure custom functions "
                            "are decorated with `@register_keras_serializable()` or given in "
                            f"custom_objects. Received: config={config!r}")
        return found
    cls = _lookup(class_name, config.get("registered_name"), module, custom_objects)
    if not isinstance(cls, type):
        raise TypeError(f"Could not locate class '{class_name}'. Make sure custom classes are "
                        "decorated with `@register_keras_serializable()` or given in "
                        f"custom_objects. Received: config={config!r}")
    if not isinstance(inner, dict):
        raise TypeError(f"Expected 'config' to be a dict for {class_name}. "
                        f"Received: config={inner!r}")
    if issubclass(cls, (Initializer, Regularizer, Constraint)):  # less Keras-only keys
        inner = keras_format._plain({"class_name": class_name, "config": inner})["config"]
    with serialization.custom_object_scope(custom_objects):
        if issubclass(cls, Layer):
            from densitron import layers

            return layers.deserialize(config)
        return cls.from_config(inner)
