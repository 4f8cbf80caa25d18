"""model.summary() laid out as Keras 3.15 lays it out (rich's table): columns cut from a line
of 88 or 108 characters (at most the terminal's width less 4), cells wrapped at spaces with a
word too long for its column cut with "…", the header aligned to its last line. The expected
tables are Keras 3.15's output (JAX backend) for the same code, in an 80-column terminal."""

import densitron
from densitron import layers

KERAS_FUNCTIONAL = """\
Model: "functional"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ first_input_featur… │ (None, 8)         │          0 │ -                 │
│ (InputLayer)        │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ second_input_featu… │ (None, 4)         │          0 │ -                 │
│ (InputLayer)        │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense_left_branch   │ (None, 16)        │        144 │ first_input_feat… │
│ (Dense)             │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense_right_branch  │ (None, 16)        │         80 │ second_input_fea… │
│ (Dense)             │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ third_branch_layer  │ (None, 16)        │        144 │ first_input_feat… │
│ (Dense)             │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ merge (Concatenate) │ (None, 48)        │          0 │ dense_left_branc… │
│                     │                   │            │ dense_right_bran… │
│                     │                   │            │ third_branch_lay… │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ out (Dense)         │ (None, 1)         │         49 │ merge[0][0]       │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 417 (1.63 KB)
 Trainable params: 417 (1.63 KB)
 Non-trainable params: 0 (0.00 B)"""

KERAS_SEQUENTIAL = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ a_rather_long_dense_layer_name… │ (None, 64)             │        50,240 │
│ (Dense)                         │                        │               │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 50,890 (198.79 KB)
 Trainable params: 50,890 (198.79 KB)
 Non-trainable params: 0 (0.00 B)"""

KERAS_NESTED = """\
Model: "functional_1"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━┓
┃ Layer (type)                ┃ Output Shape          ┃    Param # ┃ Trai… ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━┩
│ input_layer_1 (InputLayer)  │ (None, 3)             │          0 │   -   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│ inner (Sequential)          │ (None, 4)             │         16 │   Y   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│    └ f1 (Dense)             │ (None, 4)             │         16 │   Y   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│ b (Dense)                   │ (None, 2)             │         10 │   N   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│ c (Dense)                   │ (None, 1)             │          3 │   Y   │
└─────────────────────────────┴───────────────────────┴────────────┴───────┘
 Total params: 29 (116.00 B)
 Trainable params: 19 (76.00 B)
 Non-trainable params: 10 (40.00 B)"""


def summary_of(model, monkeypatch, **kwargs):
    monkeypatch.setenv("COLUMNS", "80")
    out = []
    model.summary(print_fn=out.append, **kwargs)
    return out[0].rstrip("\n")


def test_functional_summary_wraps_and_cuts_cells_as_keras(monkeypatch):
    densitron.utils.clear_session()
    a = densitron.Input((8,), name="first_input_features")
    b = densitron.Input((4,), name="second_input_features")
    h = layers.Dense(16, name="dense_left_branch")(a)
    g = layers.Dense(16, name="dense_right_branch")(b)
    c = layers.Concatenate(name="merge")([h, g, layers.Dense(16, name="third_branch_layer")(a)])
    model = densitron.Model([a, b], layers.Dense(1, name="out")(c))
    assert summary_of(model, monkeypatch) == KERAS_FUNCTIONAL


def test_sequential_summary_cuts_a_long_name_as_keras(monkeypatch):
    densitron.utils.clear_session()
    model = densitron.Sequential([
        densitron.Input((784,)),
        layers.Dense(64, activation="relu", name="a_rather_long_dense_layer_name_here"),
        layers.Dense(10)])
    assert summary_of(model, monkeypatch) == KERAS_SEQUENTIAL


def test_nested_summary_with_trainable_column_as_keras(monkeypatch):
    # (the Sequential's inner graph takes a default model name, as Keras's: "functional_1")
    densitron.utils.clear_session()
    inner = densitron.Sequential([densitron.Input((3,)), layers.Dense(4, name="f1")],
                                 name="inner")
    inputs = densitron.Input((3,))
    frozen = layers.Dense(2, name="b")
    frozen.trainable = False
    model = densitron.Model(inputs, layers.Dense(1, name="c")(frozen(inner(inputs))))
    assert summary_of(model, monkeypatch, show_trainable=True,
                      expand_nested=True) == KERAS_NESTED


def test_line_length_and_positions_as_keras(monkeypatch):
    # Keras: the columns from line_length and positions, widened to fill the line
    densitron.utils.clear_session()
    model = densitron.Sequential([densitron.Input((8,)), layers.Dense(8, name="sd")])
    lines = summary_of(model, monkeypatch, line_length=60,
                       positions=[0.5, 0.7, 0.8, 1.0]).splitlines()
    assert [len(line) for line in lines[1:4]] == [60, 60, 60]
    assert lines[2] == "┃" + " " * 34 + "┃" + " " * 14 + "┃  Param ┃"
    assert lines[3] == "┃ Layer (type)" + " " * 21 + "┃ Output Shape ┃      # ┃"
