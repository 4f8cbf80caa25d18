"""model.summary(): Keras's table of layers, output shapes and parameter counts."""

import math

import numpy as np


def _size_str(n_bytes):
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _sequential_like(model, units):
    """Keras's test for leaving out "Connected to": a chain from one input, each call reading
    the one before it, no layer called twice."""
    from densitron.models.sequential import Sequential

    if isinstance(model, Sequential):
        return True
    if len({id(u.layer) for u in units}) < len(units) or units[0].inputs:
        return False
    return all(len(u.inputs) == 1 and len(prev.outputs) == 1 and u.inputs[0] is prev.outputs[0]
               for prev, u in zip(units, units[1:]))


def _rows(model):
    from densitron.layers.input_layer import InputLayer
    from densitron.models.functional import call_refs, keras_calls
    from densitron.models.sequential import Sequential

    # (each layer call; a composite layer's call once, in place of the calls it made)
    units = keras_calls(model._nodes)
    sequential = _sequential_like(model, units)
    refs = call_refs(units, {id(u.layer): u.layer.name for u in units})
    producer = {key: "{}[{}][{}]".format(*ref) for key, ref in refs.items()}
    rows = []
    for unit in units:
        layer = unit.layer
        if isinstance(model, Sequential) and isinstance(layer, InputLayer):
            continue
        shapes = [tuple(t.shape) for t in unit.outputs]
        shape = str(shapes[0]) if len(shapes) == 1 else str(shapes)
        connected = ", ".join(producer[id(t)] for t in unit.inputs if id(t) in producer) or "-"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                     f"{layer.count_params():,}", connected))
    return rows, not sequential


def print_summary(model, print_fn=None):
    _print_table(model, *_rows(model), model.count_params(),
                 sum(math.prod(w.shape) for w in model.trainable_weights), print_fn or print,
                 _optimizer_params(model))


def _optimizer_params(model):
    """(count, bytes) of the optimizer's variables once it has run (Keras's built
    optimizer), else None."""
    from densitron.saving import _optimizer_values

    if not (model.compiled and getattr(model, "_engine_compiled", False) and
            getattr(model, "optimizer", None) is not None):
        return None
    values = [np.asarray(v) for v in _optimizer_values(model)]
    return sum(v.size for v in values), sum(v.nbytes for v in values)


def print_unbuilt_summary(model, print_fn=None):
    """A Sequential model with no input shape yet, as Keras shows it: each layer's output
    shape "?", and "0 (unbuilt)" parameters for a layer whose weights are not made yet."""
    from densitron.layers.layer import Layer

    rows = []
    for layer in model.layers:
        unbuilt = not layer.built and type(layer).build is not Layer.build
        rows.append((f"{layer.name} ({type(layer).__name__})", "?",
                     "0 (unbuilt)" if unbuilt else f"{layer.count_params():,}"))
    _print_table(model, rows, False, 0, 0, print_fn or print)


def _print_table(model, rows, functional, total, trainable, print_fn, optimizer=None):
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    rows = [r if functional else r[:3] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 if rows else len(h) + 2
              for i, h in enumerate(headers)]
    widths = [max(w, m) for w, m in zip(widths, [33, 24, 15, 20])]

    def line(left, mid, right, fill):
        return left + mid.join(fill * w for w in widths) + right

    def cells(values, border):
        parts = []
        for i, (v, w) in enumerate(zip(values, widths)):
            parts.append(" " + (v.rjust(w - 2) if i == 2 else v.ljust(w - 2)) + " ")
        return border + border.join(parts) + border

    print_fn(f'Model: "{model.name}"')
    print_fn(line("┏", "┳", "┓", "━"))
    print_fn(cells(headers, "┃"))
    print_fn(line("┡", "╇", "┩", "━"))
    for i, r in enumerate(rows):
        print_fn(cells(r, "│"))
        if i < len(rows) - 1:
            print_fn(line("├", "┼", "┤", "─"))
    print_fn(line("└", "┴", "┘", "─"))
    count, size = optimizer or (0, 0)
    print_fn(f" Total params: {total + count:,} ({_size_str(total * 4 + size)})")
    print_fn(f" Trainable params: {trainable:,} ({_size_str(trainable * 4)})")
    print_fn(f" Non-trainable params: {total - trainable:,} "
             f"({_size_str((total - trainable) * 4)})")
    if optimizer:  # (as Keras, once the optimizer has run)
        print_fn(f" Optimizer params: {count:,} ({_size_str(size)})")
