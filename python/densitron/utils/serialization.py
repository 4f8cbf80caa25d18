"""Shared by the small registries (regularizers, constraints, losses, learning-rate schedules):
Keras-style serialization and lookup by name, instance or {"class_name", "config"} dict."""


# Classes written by the user that deserialize may build: registered for good
# (register_keras_serializable), and those of the innermost custom_object_scope (load_model's
# custom_objects).
_registered = {}
_custom_objects = [{}]


class CustomObjectScope:
    """Keras's CustomObjectScope (custom_object_scope): `with CustomObjectScope({"name":
    obj}):`, within the block deserialize also finds the classes of the given dicts."""

    def __init__(self, *objects):
        self._objects = objects

    def __enter__(self):
        merged = dict(_custom_objects[-1])
        for d in self._objects:
            merged.update(d or {})
        _custom_objects.append(merged)
        return self

    def __exit__(self, *exc):
        _custom_objects.pop()


custom_object_scope = CustomObjectScope


def register_keras_serializable(package="Custom", name=None):
    """Keras's decorator: registers a class for loading by its name (and "package>name")."""
    def decorator(cls):
        key = name or cls.__name__
        _registered[f"{package}>{key}"] = cls
        _registered[key] = cls
        return cls

    return decorator


def get_custom_objects():
    """The registered classes by name (Keras's global custom objects; it may be edited)."""
    return _registered


def get_registered_object(name, custom_objects=None, module_objects=None):
    """Keras's: the class or function registered (or in the custom objects in scope, or the
    given dicts) under `name`, or None."""
    for d in (custom_objects, _custom_objects[-1], _registered, module_objects):
        if d and name in d:
            return d[name]
    return None


def get_registered_name(obj):
    """Keras's: the name `obj` (a class or function: a loss or metric function of the user's
    is saved and looked up by it) is registered under, "package>name", or its own name when
    it is not registered."""
    for key, registered in _registered.items():
        if registered is obj and ">" in key:
            return key
    return getattr(obj, "__name__", repr(obj))


class FunctionWrapper:
    """The part Keras's LossFunctionWrapper and MeanMetricWrapper share: a function of the
    user's, fn(y_true, y_pred, **kwargs), that `call` runs and the config names."""

    def _wrap(self, fn, kwargs):
        if not callable(fn):
            raise TypeError(f"`fn` must be a function of (y_true, y_pred). Received: fn={fn!r}")
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def _fn_config(self):
        return {"fn": get_registered_name(self.fn), **self._fn_kwargs}


def deserialize_with(get, config, custom_objects=None):
    """A module's deserialize: its `get` of a serialized form (a name, or a {"class_name",
    "config"} dict, Keras's included), the classes of `custom_objects` found too."""
    with custom_object_scope(custom_objects):
        return get(config)


def _custom(name):
    return _custom_objects[-1].get(name) or _registered.get(name)


def serialize(obj):
    if obj is None:
        return None
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def serialize_in_keras_form(obj, module):
    """obj's config as Keras 3 serializes it inside a layer's config: densitron's own class
    under Keras's `module` (keras.initializers...), registered_name None; a class of the
    user's as {"class_name", "config"} (saving adds its registration)."""
    if obj is None:
        return None
    if not type(obj).__module__.startswith("densitron."):
        return serialize(obj)
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": None}


def get(identifier, base, by_name, kind, supported):
    """Returns an instance for `identifier`; ValueError naming `kind` for anything else."""
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str) and identifier in by_name:
        return by_name[identifier]()
    if isinstance(identifier, dict):  # one of ours, or a class of the user's custom objects
        name = identifier.get("class_name")
        cls = by_name.get(name) or (_custom(name) if isinstance(name, str) else None)
        if isinstance(cls, type) and issubclass(cls, base):
            return cls.from_config(identifier.get("config", {}))
    raise ValueError(
        f"Could not interpret {kind} identifier: densitron's engine runs {supported}. "
        f"Received: {kind}={identifier!r}"
    )


def deserialize(config, classes, kind):
    """The instance of a {"class_name", "config"} dict whose class is one of `classes` (by
    name); ValueError naming `kind` for anything else."""
    if not isinstance(config, dict) or not isinstance(config.get("config", {}), dict):
        raise ValueError(f"A serialized {kind} is a dict with 'class_name' and 'config'. "
                         f"Received: config={config!r}")
    cls = classes.get(config.get("class_name")) or _custom(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown {kind} class. Expected one of {sorted(classes)} (or a "
                         "class of your own, passed to load_model as "
                         "`custom_objects={name: class}`). "
                         f"Received: class_name={config.get('class_name')!r}")
    try:
        return cls.from_config(config.get("config", {}))
    except TypeError as e:  # a missing or unknown argument
        raise ValueError(f"Could not build the {kind} {config.get('class_name')!r} from its "
                         f"config: {e}. Received: config={config!r}") from None
