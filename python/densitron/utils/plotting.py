"""keras.utils.plot_model without pydot: the model's graph written as Graphviz DOT text, and
rendered by Graphviz's `dot` program when the file asks for an image."""

import os


def _label(layer, node, show_shapes, show_dtype, show_layer_names, show_layer_activations,
           show_trainable):
    name = type(layer).__name__
    parts = [f"{layer.name} ({name})" if show_layer_names else name]
    if show_layer_activations and hasattr(layer, "activation"):
        parts.append(f"activation: {getattr(layer.activation, '__name__', layer.activation)}")
    if show_trainable:
        parts.append(f"trainable: {'Y' if layer.trainable else 'N'}")
    if show_shapes:
        ins = [tuple(t.shape) for t in node.inputs]
        outs = [tuple(t.shape) for t in node.outputs]
        shape = lambda s: str(s[0]) if len(s) == 1 else str(s)  # noqa: E731
        parts.append(f"input: {shape(ins) if ins else '-'} | output: {shape(outs)}")
    if show_dtype:
        parts.append("dtype: float32")
    return "\\n".join(p.replace('"', '\\"') for p in parts)


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False,
                 show_trainable=False, **kwargs):
    """The model's graph as Graphviz DOT text: one box per layer call, an edge per tensor."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"`rankdir` must be 'TB' or 'LR'. Received: rankdir={rankdir!r}")
    model._ensure_built()
    ids = {id(node): f"n{k}" for k, node in enumerate(model._nodes)}
    lines = [f'digraph "{model.name}" {{', f"  graph [rankdir={rankdir}, dpi={int(dpi)}];",
             "  node [shape=record];"]
    for node in model._nodes:
        label = _label(node.layer, node, show_shapes, show_dtype, show_layer_names,
                       show_layer_activations, show_trainable)
        lines.append(f'  {ids[id(node)]} [label="{label}"];')
    for node in model._nodes:
        for t in node.inputs:
            if id(t._node) in ids:
                lines.append(f"  {ids[id(t._node)]} -> {ids[id(node)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """Keras's plot_model: a `.dot` file is written as it is; another extension (png, svg,
    pdf, ...) is rendered by Graphviz's `dot` program, which must be installed (as Keras
    needs it too). Returns the file's path."""
    dot = model_to_dot(model, show_shapes, show_dtype, show_layer_names, rankdir,
                       expand_nested, dpi, show_layer_activations, show_trainable)
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1][1:].lower() or "png"
    if ext == "dot":
        with open(to_file, "w") as f:
            f.write(dot)
        return to_file
    import shutil
    import subprocess
    import sys

    program = shutil.which("dot")
    if program is None and "IPython.core.magics.namespace" in sys.modules:
        # (as Keras: in a notebook, the message instead of an error that stops the cell's run)
        print("You must install Graphviz (its `dot` program) for `plot_model` to work.")
        return None
    if program is None:
        raise ImportError("You must install Graphviz (its `dot` program, e.g. `apt install "
                          "graphviz`) for `plot_model` to render images; a `.dot` file needs "
                          f"nothing. Received: to_file={to_file!r}")
    result = subprocess.run([program, f"-T{ext}", "-o", to_file], input=dot.encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise ValueError(f"Graphviz could not write {to_file!r}: "
                         f"{result.stderr.decode(errors='replace').strip()}. "
                         f"Received: to_file={to_file!r}")
    return to_file
