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
    # (a functional model's rows: one a layer, in Keras's order of its operations, a layer
    # called twice connected to both calls' inputs and showing its last call's shapes)
    by_layer = {}
    for unit in units:
        by_layer.setdefault(id(unit.layer), []).append(unit)
    if getattr(model, "_subclassed", False):
        # (Keras's: the layers the model holds, no Input row, a layer's shape "?" until
        # called; the calls of its layers connected to nothing shown)
        return [(f"{layer.name} ({type(layer).__name__})",
                 _shape_text(by_layer[id(layer)][-1].outputs) if id(layer) in by_layer
                 else "?", f"{layer.count_params():,}", "-",
                 "-" if not layer.weights else "Y" if layer.trainable else "N", layer)
                for layer in model.layers], False
    if isinstance(model, Sequential):
        groups = [[unit] for unit in units]
    else:
        groups = [by_layer[id(layer)] for layer in model._keras_layers()
                  if id(layer) in by_layer]
    rows = []
    for calls in groups:
        unit = calls[-1]
        layer = unit.layer
        if isinstance(model, Sequential) and isinstance(layer, InputLayer):
            continue
        shape = _shape_text(unit.outputs)
        connected = ", ".join(producer[id(t)] for call in calls for t in call.inputs
                              if id(t) in producer) or "-"
        mark = "-" if not layer.weights else "Y" if layer.trainable else "N"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                     f"{layer.count_params():,}", connected, mark, layer))
    return rows, not sequential


def _shape_text(tensors):
    shapes = [tuple(t.shape) for t in tensors]
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _expanded(rows, level=0):
    """expand_nested: each nested model's own rows after its row, marked "└ " after three
    spaces a level, as Keras."""
    from densitron.models.functional import Functional

    out = []
    for row in rows:
        out.append(row)
        layer = row[5]
        if isinstance(layer, Functional) and layer.built:
            inner, _ = _rows(layer)
            prefix = "   " * (level + 1) + "└ "
            out.extend(_expanded([(prefix + r[0], *r[1:]) for r in inner], level + 1))
    return out


def _in_range(rows, layer_range):
    """layer_range: the rows from the first layer whose name matches its first pattern to the
    last whose name matches its second (Keras's: names or regular expressions)."""
    import re

    if (not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2
            or not all(isinstance(p, str) for p in layer_range)):
        raise ValueError("layer_range must be a list or tuple of two layer names (or "
                         f"patterns). Received: layer_range={layer_range!r}")
    names = [row[5].name for row in rows]
    starts = [i for i, n in enumerate(names) if re.match(layer_range[0], n)]
    ends = [i for i, n in enumerate(names) if re.match(layer_range[1], n)]
    if not starts or not ends or starts[0] > ends[-1]:
        raise ValueError("Passed layer_range does not match any model layer names. "
                         f"Received: layer_range={layer_range!r} for layers {names}")
    return rows[starts[0]:ends[-1] + 1]


def print_summary(model, print_fn=None, expand_nested=False, show_trainable=False,
                  layer_range=None, line_length=None, positions=None):
    rows, functional = _rows(model)
    if layer_range is not None:
        rows = _in_range(rows, layer_range)
    if expand_nested:
        rows = _expanded(rows)
    _print_table(model, rows, functional, model.count_params(),
                 sum(math.prod(w.shape) for w in model.trainable_weights), print_fn or print,
                 _optimizer_params(model), show_trainable, line_length, positions)


def _optimizer_params(model):
    """(count, bytes) of the optimizer's variables once it has run (Keras's built
    optimizer), else None."""
    from densitron.saving import _optimizer_values

    if not (model.compiled and getattr(model, "_engine_compiled", False) and
            getattr(model, "optimizer", None) is not None):
        return None
    count = sum(np.asarray(v).size for v in _optimizer_values(model))
    built, now = model.__dict__.get("_compiled_trainable"), model._param_trainable_flags()
    if built is not None and len(built) == len(now) and built != now:
        # (a layer frozen or unfrozen since the optimizer ran: Keras's keeps the variables it
        # was built with, of the weights trainable then, until it runs after compile() again)
        count += _slot_values(model, built) - _slot_values(model, now)
    # (4 bytes a value: Keras on JAX counts its steps in int32, the files' int64)
    return count, count * 4


def _slot_values(model, flags):
    """How many values the optimizer's slots of the weights `flags` marks hold."""
    opt = model.optimizer
    total = 0
    for block in opt._keras_slot_order():
        for p, v in enumerate(model._params):
            for s, _ in block:
                if flags[p] and opt._slot_kept(s, v):
                    shape = opt._slot_shape(s, v.shape)
                    total += 1 if shape is None else math.prod(shape)
    return total


def print_unbuilt_summary(model, print_fn=None):
    """A Sequential model with no input shape yet, as Keras shows it: each layer's output
    shape "?", and "0 (unbuilt)" parameters for a layer whose weights are not made yet."""
    from densitron.layers.layer import Layer

    rows = []
    for layer in model.layers:
        unbuilt = not layer.built and type(layer).build is not Layer.build
        rows.append((f"{layer.name} ({type(layer).__name__})", "?",
                     "0 (unbuilt)" if unbuilt else f"{layer.count_params():,}", "", "", layer))
    _print_table(model, rows, False, 0, 0, print_fn or print)


def _column_widths(functional, show_trainable, line_length, positions, count):
    """Keras 3's columns: a line of line_length (by default 88, or 108 with "Connected to",
    12 more with "Trainable", at most the terminal's width less 4) cut at `positions`, the
    first `count` pieces laid out as rich lays its table out: each column its width and a
    space of padding a side, reduced evenly (rich's ratio_reduce) until the columns and their
    borders fit the line, or widened in proportion (rich's ratio_distribute) to fill it.
    Returns each column's width inside its borders."""
    import math
    import shutil

    if functional:
        default, default_positions = 108, [0.3, 0.56, 0.74, 1.0]
    else:
        default, default_positions = 88, [0.45, 0.80, 1.0]
    positions = list(positions or default_positions)
    if show_trainable:  # (given positions too, as Keras)
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary. Received: "
                             f"line_length={line_length}, positions={positions}")
        widths.append(width + 2)
        current += width
    widths = widths[:count]
    excess = sum(widths) - (line_length - len(widths) - 1)
    if excess > 0:  # (rich's ratio_reduce over equal ratios)
        remaining, ratio = excess, len(widths)
        for i, w in enumerate(widths):
            cut = min(w, round(remaining / ratio))
            widths[i] = w - cut
            remaining -= cut
            ratio -= 1
    elif excess < 0:  # (rich's ratio_distribute, in proportion to the widths)
        remaining, total = -excess, sum(widths)
        for i, w in enumerate(widths):
            extra = math.ceil(w * remaining / total) if total > 0 else remaining
            widths[i] = w + extra
            remaining -= extra
            total -= w
    return widths


def _wrapped(text, width, justify):
    """A cell's text in lines of `width`, as rich wraps it: greedily at spaces, a word longer
    than the line alone on its own, each line cut to width with "…" (rich's ellipsis
    overflow), then justified."""
    import re

    lines = []
    for para in text.split("\n"):
        breaks, offset = [], 0
        for m in re.finditer(r"\s*\S+\s*", para):
            word_length = len(m.group().rstrip())
            if width - offset >= word_length:
                offset += len(m.group())
                continue
            if m.start():  # (a word too long for any line stays whole on its own)
                breaks.append(m.start())
            offset = len(m.group())
        for a, b in zip([0, *breaks], [*breaks, len(para)]):
            line = para[a:b].rstrip()
            if len(line) > width:
                line = line[:width - 1] + "…"
            lines.append(line.rjust(width) if justify == "right" else
                         line.center(width) if justify == "center" else line.ljust(width))
    return lines


def _print_table(model, rows, functional, total, trainable, print_fn, optimizer=None,
                 show_trainable=False, line_length=None, positions=None):
    columns = [0, 1, 2] + ([3] if functional else []) + ([4] if show_trainable else [])
    headers = [["Layer (type)", "Output Shape", "Param #", "Connected to", "Trainable"][c]
               for c in columns]
    rows = [[r[c] for c in columns] for r in rows]
    widths = _column_widths(functional, show_trainable, line_length, positions, len(columns))
    justify = [{2: "right", 4: "center"}.get(c, "left") for c in columns]

    def line(left, mid, right, fill):
        return left + mid.join(fill * w for w in widths) + right

    def cells(values, border, bottom=False):
        """A row's lines (the header's cells aligned to its last line, as rich's)."""
        wrapped = [_wrapped(v, w - 2, j) for v, w, j in zip(values, widths, justify)]
        height = max(len(c) for c in wrapped)
        wrapped = [[" " * (w - 2)] * (height - len(c)) + c if bottom else
                   c + [" " * (w - 2)] * (height - len(c)) for c, w in zip(wrapped, widths)]
        return [border + border.join(" " + c[k] + " " for c in wrapped) + border
                for k in range(height)]

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━"), *cells(headers, "┃", bottom=True),
           line("┡", "╇", "┩", "━")]
    for i, r in enumerate(rows):
        out.extend(cells(r, "│"))
        if i < len(rows) - 1:
            out.append(line("├", "┼", "┤", "─"))
    out.append(line("└", "┴", "┘", "─"))
    count, size = optimizer or (0, 0)
    out.append(f" Total params: {total + count:,} ({_size_str(total * 4 + size)})")
    out.append(f" Trainable params: {trainable:,} ({_size_str(trainable * 4)})")
    out.append(f" Non-trainable params: {total - trainable:,} "
               f"({_size_str((total - trainable) * 4)})")
    if optimizer:  # (as Keras, once the optimizer has run)
        out.append(f" Optimizer params: {count:,} ({_size_str(size)})")
    # Keras 3 hands a print_fn the whole summary at once (its captured console text, a line
    # break after each line); with none, it prints it.
    text = "\n".join(out)
    if print_fn is print:
        print(text)
    else:
        print_fn(text + "\n")
