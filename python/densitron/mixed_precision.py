"""keras.mixed_precision and keras.dtype_policies as densitron has them: it computes and keeps
its weights in float32, so the float32 policy is accepted (scripts set it) and the others
(mixed_float16, mixed_bfloat16, float16, ...) are refused, naming what was asked."""

_FLOAT32 = "float32"


class DTypePolicy:
    """Keras's DTypePolicy: the dtype layers compute in and keep their variables in. densitron
    has one, float32."""

    def __init__(self, name=None):
        if name is None:
            name = _FLOAT32
        if not isinstance(name, str) or name != _FLOAT32:
            raise ValueError("densitron computes and keeps its weights in float32: the only "
                             "dtype policy it runs is 'float32' (mixed precision pays on GPUs "
                             f"and accelerators, not in its CPU engine). Received: name={name!r}")
        self._name = name

    @property
    def name(self):
        return self._name

    @property
    def compute_dtype(self):
        return _FLOAT32

    @property
    def variable_dtype(self):
        return _FLOAT32

    @property
    def quantization_mode(self):
        return None

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self._name)


Policy = FloatDTypePolicy = DTypePolicy


def set_global_policy(policy):
    """Accepts the float32 policy (a name or a DTypePolicy); ValueError for any other."""
    if isinstance(policy, DTypePolicy):
        return
    DTypePolicy(policy)


def global_policy():
    return DTypePolicy(_FLOAT32)


set_dtype_policy = set_global_policy
dtype_policy = global_policy

__all__ = ["DTypePolicy", "FloatDTypePolicy", "Policy", "dtype_policy", "global_policy",
           "set_dtype_policy", "set_global_policy"]
