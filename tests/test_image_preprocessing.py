"""Keras's image preprocessing layers: Resizing and CenterCrop against a float64 NumPy
reference of jax.image.resize's formula and against Keras 3.15 (numpy backend in-process, JAX in
a subprocess), in models with gradients against finite differences; RandomFlip,
RandomBrightness and RandomContrast in training (their per-sample draws' distributions, each
output one of the formula's values) and the identity outside it; RandomRotation, RandomZoom,
RandomTranslation and RandomCrop on arrays as Keras's (degenerate factor ranges fix the draw),
the identity in a model's predict and refused by fit; configs and `.keras` files both ways;
refusals."""

import json

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import run_keras_on_jax
from test_gradients_fd import fd_check

RNG = np.random.default_rng(7)


# --- a float64 reference of jax.image.resize (scale_and_translate, no translation) ----------

def _kernel(name, x):
    x = np.abs(x)
    if name == "bilinear":
        return np.maximum(0.0, 1.0 - x)
    if name == "bicubic":  # Keys, a = -0.5
        return np.where(x < 1, (1.5 * x - 2.5) * x * x + 1,
                        np.where(x < 2, ((-0.5 * x + 2.5) * x - 4) * x + 2, 0.0))
    radius = 3 if name == "lanczos3" else 5
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > 1e-3, radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
                       / (np.pi ** 2 * x * x), 1.0)
    return np.where(x > radius, 0.0, out)


def axis_weights(n_in, n_out, name, antialias):
    """(n_out, n_in): output i = Σ_j w[i, j]·input j."""
    if n_in == n_out:
        return np.eye(n_in)
    w = np.zeros((n_out, n_in))
    if name == "nearest":
        w[np.arange(n_out), np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(int)] = 1
        return w
    scale = n_out / n_in
    stretch = max(1 / scale, 1.0) if antialias else 1.0
    for i in range(n_out):
        centre = (i + 0.5) / scale - 0.5  # the output pixel's centre in input coordinates
        k = _kernel(name, (centre - np.arange(n_in)) / stretch)
        w[i] = k / k.sum()
    return w


def resize_reference(x, height, width, name="bilinear", antialias=False):
    """Batches (b, h, w, c) resized in float64."""
    wh = axis_weights(x.shape[1], height, name, antialias)
    ww = axis_weights(x.shape[2], width, name, antialias)
    return np.einsum("ih,jw,bhwc->bijc", wh, ww, x.astype(np.float64))


def images(*shape, low=0.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


@pytest.mark.parametrize("name", ["bilinear", "nearest", "bicubic", "lanczos3", "lanczos5"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size", [(3, 5), (11, 4), (9, 13)])
def test_resizing_is_the_resize_formula(name, antialias, size):
    x = images(2, 7, 9, 3)
    out = layers.Resizing(*size, interpolation=name, antialias=antialias)(x)
    assert out.dtype == np.float32 and out.shape == (2, *size, 3)
    np.testing.assert_allclose(out, resize_reference(x, *size, name, antialias), atol=3e-6)


def test_resizing_channels_first_one_image_and_integers():
    x = images(2, 3, 7, 9)
    out = layers.Resizing(4, 5, data_format="channels_first")(x)
    ref = resize_reference(x.transpose(0, 2, 3, 1), 4, 5).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    one = layers.Resizing(4, 5)(x[0].transpose(1, 2, 0))
    assert one.shape == (4, 5, 3)
    np.testing.assert_allclose(one, ref[0].transpose(1, 2, 0), atol=2e-6)
    pixels = (images(2, 7, 9, 3) * 255).astype(np.uint8)
    small = layers.Resizing(4, 5)(pixels)
    assert small.dtype == np.uint8
    assert np.abs(small.astype(int) - np.round(resize_reference(pixels, 4, 5))).max() <= 1


def test_crop_and_pad_to_aspect_ratio_are_kerass_boxes():
    x = images(2, 7, 12, 2)
    out = layers.Resizing(5, 5, crop_to_aspect_ratio=True)(x)
    # Keras's box: crop width int(7·5/5) = 7 from column int((12 - 7)/2) = 2, all 7 rows
    np.testing.assert_allclose(out, resize_reference(x[:, :, 2:9], 5, 5), atol=2e-6)
    out = layers.Resizing(5, 5, pad_to_aspect_ratio=True, fill_value=0.75)(x)
    # rows padded: int((12 - 7)/2) = 2 rows of 0.75 at the top and at the bottom
    padded = np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)), constant_values=0.75)
    np.testing.assert_allclose(out, resize_reference(padded, 5, 5), atol=2e-6)
    out = layers.Resizing(3, 8, pad_to_aspect_ratio=True, fill_value=-2.0)(x[:, :, :5])
    # columns padded: int((int(7·8/3) - 5)/2) = 6 at each side
    padded = np.pad(x[:, :, :5], ((0, 0), (0, 0), (6, 6), (0, 0)), constant_values=-2.0)
    np.testing.assert_allclose(out, resize_reference(padded, 3, 8), atol=3e-6)


@pytest.mark.parametrize("size", [(3, 5), (7, 9), (4, 9), (8, 4), (10, 12)])
def test_center_crop(size):
    x = images(2, 7, 9, 3)
    out = layers.CenterCrop(*size)(x)
    h, w = size
    if h <= 7 and w <= 9:
        top, left = (7 - h) // 2, (9 - w) // 2
        np.testing.assert_array_equal(out, x[:, top:top + h, left:left + w])
    else:  # smaller than the target: the aspect ratio's crop, resized bilinearly
        ch = max(min(7, int(9 * h / w)), 1)
        cw = max(min(9, int(7 * w / h)), 1)
        top, left = int((7 - ch) / 2), int((9 - cw) / 2)
        np.testing.assert_allclose(out, resize_reference(x[:, top:top + ch, left:left + cw],
                                                         h, w), atol=2e-6)


CASES = [
    ("Resizing", {"height": 4, "width": 5}),
    ("Resizing", {"height": 11, "width": 13, "interpolation": "bicubic"}),
    ("Resizing", {"height": 4, "width": 13, "interpolation": "nearest"}),
    ("Resizing", {"height": 3, "width": 4, "interpolation": "lanczos3", "antialias": True}),
    ("Resizing", {"height": 5, "width": 5, "crop_to_aspect_ratio": True}),
    ("Resizing", {"height": 5, "width": 5, "pad_to_aspect_ratio": True, "fill_value": 2.5}),
    ("Resizing", {"height": 4, "width": 5, "data_format": "channels_first"}),
    ("CenterCrop", {"height": 3, "width": 5}),
    ("CenterCrop", {"height": 8, "width": 4}),
    ("RandomBrightness", {"factor": (0.1, 0.1), "value_range": (0, 1)}),
    ("RandomBrightness", {"factor": (-0.6, -0.6), "value_range": (0, 1)}),
    ("RandomRotation", {"factor": (0.1, 0.1)}),
    ("RandomRotation", {"factor": (-0.25, -0.25), "fill_mode": "constant", "fill_value": 0.5}),
    ("RandomRotation", {"factor": (0.3, 0.3), "interpolation": "nearest", "fill_mode": "wrap"}),
    ("RandomZoom", {"height_factor": (0.3, 0.3)}),
    ("RandomZoom", {"height_factor": (-0.3, -0.3), "width_factor": (0.2, 0.2),
                    "fill_mode": "nearest"}),
    ("RandomTranslation", {"height_factor": (0.2, 0.2), "width_factor": (-0.3, -0.3)}),
    ("RandomTranslation", {"height_factor": (-0.4, -0.4), "width_factor": (0.1, 0.1),
                           "interpolation": "nearest", "data_format": "channels_first"}),
    ("RandomCrop", {"height": 7, "width": 3}),
    ("RandomCrop", {"height": 7, "width": 9}),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_outputs_are_kerass(keras, name, kwargs):
    # the random layers' draws are fixed by a factor range of one value
    x = images(3, 7, 9, 3)
    ours = getattr(layers, name)(**kwargs)(x)
    theirs = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=3e-6)


def test_resizing_is_kerass_on_jax(tmp_path):
    x = images(2, 7, 9, 3)
    np.save(tmp_path / "x.npy", x)
    cases = [c for c in CASES if c[0] in ("Resizing", "CenterCrop")]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = ("import json, sys, numpy as np, keras\n"
              "x = np.load(sys.argv[1] + '/x.npy')\n"
              "cases = json.load(open(sys.argv[1] + '/cases.json'))\n"
              "for k, (name, kw) in enumerate(cases):\n"
              "    np.save(f'{sys.argv[1]}/out{k}.npy',\n"
              "            np.asarray(getattr(keras.layers, name)(**kw)(x)))\n")
    run_keras_on_jax(script, str(tmp_path), timeout=300)
    for k, (name, kwargs) in enumerate(cases):
        theirs = np.load(tmp_path / f"out{k}.npy")
        np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x), theirs, atol=3e-6,
                                   err_msg=f"{name} {kwargs}")


@pytest.mark.parametrize("layer", [lambda: layers.Resizing(4, 9),
                                   lambda: layers.Resizing(3, 4, interpolation="bicubic",
                                                           antialias=True),
                                   lambda: layers.Resizing(5, 5, pad_to_aspect_ratio=True,
                                                           fill_value=0.5),
                                   lambda: layers.CenterCrop(3, 5),
                                   lambda: layers.CenterCrop(6, 9)])
def test_gradients_through_resizing_and_cropping(layer):
    _gradients_behind_a_convolution(layer())


def _gradients_behind_a_convolution(layer):
    """The gradients of a model Conv2D -> layer -> Dense against finite differences."""
    inputs = layers.Input((5, 7, 2))
    h = layer(layers.Conv2D(2, 3, padding="same")(inputs))
    model = densitron.models.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
    fd_check(model, images(4, 5, 7, 2), images(4, 1), "mse")


@pytest.mark.parametrize("layer", [
    lambda: layers.RandomTranslation((0.2, 0.2), (-0.3, -0.3)),
    lambda: layers.RandomTranslation((-0.3, -0.3), (0.15, 0.15), fill_mode="constant",
                                     fill_value=0.5),
    lambda: layers.RandomZoom((0.3, 0.3), (-0.2, -0.2)),
    lambda: layers.RandomZoom((-0.25, -0.25), fill_mode="wrap"),
    lambda: layers.RandomBrightness((0.1, 0.1), value_range=(-10, 10)),
    lambda: layers.RandomContrast((0.0, 0.0), value_range=(-10, 10)),
])
def test_gradients_through_random_layers_with_fixed_draws(layer):
    # a factor range of one value fixes the draw: the training-mode loss is a function
    _gradients_behind_a_convolution(layer())


# --- RandomFlip, RandomBrightness, RandomContrast -----------------------------------------

@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_flip_flips_half_of_the_samples(mode):
    x = images(4000, 3, 5, 2)
    flipped = x[:, :, ::-1] if mode == "horizontal" else x[:, ::-1]
    if mode == "horizontal_and_vertical":  # (Keras's one draw a sample for both axes)
        flipped = x[:, ::-1, ::-1]
    out = layers.RandomFlip(mode, seed=5)(x)
    same = np.all(out == x, axis=(1, 2, 3))
    flips = np.all(out == flipped, axis=(1, 2, 3))
    assert np.all(same | flips)
    assert abs(flips.mean() - 0.5) < 0.04
    np.testing.assert_array_equal(layers.RandomFlip(mode)(x, training=False), x)


def test_random_flip_seeds_and_calls():
    x = images(64, 4, 4, 1)
    first = layers.RandomFlip(seed=11)(x)
    np.testing.assert_array_equal(layers.RandomFlip(seed=11)(x), first)
    # (Keras's call defaults to training=True: so does training=None on arrays)
    np.testing.assert_array_equal(layers.RandomFlip(seed=11)(x, training=None), first)
    assert not np.array_equal(first, x)
    assert not np.array_equal(layers.RandomFlip(seed=12)(x), first)
    one = layers.RandomFlip("horizontal", seed=3)(x[0])
    assert one.shape == (4, 4, 1)
    assert np.array_equal(one, x[0]) or np.array_equal(one, x[0][:, ::-1])


def test_random_flip_in_a_model_trains_and_is_the_identity_in_predict():
    x = images(64, 6, 6, 1)
    y = x.reshape(64, -1).sum(axis=1, keepdims=True)  # (flip-invariant)
    inputs = layers.Input((6, 6, 1))
    h = layers.RandomFlip(seed=1)(inputs)
    outputs = layers.Dense(1)(layers.Flatten()(h))
    model = densitron.models.Model(inputs, outputs)
    model.compile(optimizer=densitron.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    inner = densitron.models.Model(inputs, h)
    np.testing.assert_array_equal(inner.predict(x, verbose=0), x)
    # the gradient reaches weights before it, whichever way each sample went
    inputs = layers.Input((4, 5, 1))
    h = layers.RandomFlip("vertical", seed=3)(layers.Conv2D(1, 3, padding="same")(inputs))
    model = densitron.models.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
    model.compile(optimizer="sgd", loss="mse")
    grads = model._compute_gradients(images(8, 4, 5, 1), images(8, 1))
    assert all(np.all(np.isfinite(g)) and np.any(g) for g in grads)


def _uniform_like(values, low, high):
    """Loose checks of U(low, high): range, mean, quartiles."""
    assert values.min() >= low - 1e-5 and values.max() <= high + 1e-5
    span = high - low
    assert abs(values.mean() - (low + high) / 2) < 0.03 * span
    quartiles = np.quantile(values, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(quartiles, low + span * np.array([0.25, 0.5, 0.75]),
                               atol=0.04 * span)


def test_random_brightness_draws_a_uniform_delta_a_sample():
    x = images(4000, 3, 4, 2, low=0.3, high=0.7)
    out = layers.RandomBrightness((-0.2, 0.25), value_range=(0, 1), seed=2)(x)
    delta = out - x
    np.testing.assert_allclose(delta, delta[:, :1, :1, :1] * np.ones_like(x), atol=2e-6)
    _uniform_like(delta[:, 0, 0, 0], -0.2, 0.25)
    # clipped to value_range, deltas scaled by it
    big = layers.RandomBrightness(0.9, value_range=(0, 255), seed=3)(x * 255)
    assert big.min() >= 0 and big.max() <= 255 and np.any(big == 255) and np.any(big == 0)
    np.testing.assert_array_equal(layers.RandomBrightness(0.5)(x, training=False), x)


def test_random_contrast_draws_a_uniform_factor_a_sample():
    x = images(4000, 3, 5, 2, low=100, high=150)
    out = layers.RandomContrast(0.4, seed=4)(x)  # Keras's factor 0.4: f in [1, 1.4]
    mean = x.mean(axis=(1, 2), keepdims=True)
    f = ((out - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(out, (x - mean) * f[:, None, None, None] + mean, atol=1e-3)
    _uniform_like(f, 1.0, 1.4)
    out = layers.RandomContrast((0.5, 0.2), value_range=(0, 255), seed=4)(x)
    f = ((out - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(axis=(1, 2, 3))
    _uniform_like(f, 0.8, 1.5)
    np.testing.assert_array_equal(layers.RandomContrast(0.5)(x, training=False), x)
    clipped = layers.RandomContrast(1.0, value_range=(110, 140), seed=1)(x)
    assert clipped.min() >= 110 and clipped.max() <= 140


def test_random_contrast_channels_first_means_per_channel():
    x = images(4000, 2, 3, 4, low=100, high=150)
    out = layers.RandomContrast((0.3, 0.3), data_format="channels_first", seed=1)(x)
    mean = x.mean(axis=(2, 3), keepdims=True)
    f = ((out - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(out, (x - mean) * f[:, None, None, None] + mean, atol=1e-3)
    _uniform_like(f, 0.7, 1.3)


# --- the geometric random layers -------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
def test_affine_transform_is_kerass(keras, interpolation, fill_mode):
    from densitron.layers.image_preprocessing import affine_transform

    x = images(3, 6, 8, 2)
    t = np.array([[0.9, 0.3, -1.2, -0.2, 1.1, 2.5, 0, 0], [1, 0, -7.3, 0, 1, 4.6, 0, 0],
                  [0.5, 0, 1.7, 0, 1.5, -1.2, 0, 0]], np.float32)
    ours = affine_transform(x, t, interpolation, fill_mode, 0.25, "channels_last")
    theirs = np.asarray(keras.ops.image.affine_transform(x, t, interpolation, fill_mode, 0.25))
    np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_random_rotation_angles_are_uniform_in_the_factor():
    layer = layers.RandomRotation((-0.1, 0.2), seed=3)
    x = images(2000, 5, 5, 1)
    t = layer._transforms(x)
    angles = np.degrees(np.arctan2(t[:, 3], t[:, 0]))
    _uniform_like(angles, -36, 72)
    assert layer(x).shape == x.shape
    np.testing.assert_array_equal(layer(x, training=False), x)
    rotated = layers.RandomRotation((0.25, 0.25), interpolation="nearest")(x[:4])
    np.testing.assert_allclose(rotated, np.rot90(x[:4], k=1, axes=(1, 2)), atol=1e-6)


def test_random_translation_and_zoom_draws():
    x = images(2000, 6, 10, 1)
    t = layers.RandomTranslation((-0.2, 0.1), 0.3, seed=1)._transforms(x)
    _uniform_like(-t[:, 5], -1.2, 0.6)
    _uniform_like(-t[:, 2], -3.0, 3.0)
    t = layers.RandomZoom(0.25, seed=1)._transforms(x)
    np.testing.assert_array_equal(t[:, 0], t[:, 4])  # (width_factor None: one zoom)
    _uniform_like(t[:, 0], 0.75, 1.25)
    t = layers.RandomZoom(0.25, (-0.5, 0.0), seed=1)._transforms(x)
    _uniform_like(t[:, 0], 0.5, 1.0)
    out = layers.RandomTranslation((1, 1), 0, fill_mode="constant", fill_value=7,
                                   interpolation="nearest")(x)
    np.testing.assert_array_equal(out, np.full_like(x, 7))


TRANSLATIONS = [
    {"height_factor": (0.2, 0.2), "width_factor": (-0.3, -0.3)},
    {"height_factor": (-0.15, -0.15), "width_factor": (0.37, 0.37), "fill_mode": "constant",
     "fill_value": 0.5},
    {"height_factor": (0.3, 0.3), "width_factor": (0.11, 0.11), "fill_mode": "wrap"},
    {"height_factor": (0.3, 0.3), "width_factor": (-0.11, -0.11), "fill_mode": "nearest",
     "interpolation": "nearest"},
    {"height_factor": (0.22, 0.22), "width_factor": (0.1, 0.1),
     "data_format": "channels_first"},
]


def test_random_translation_in_a_model_draws_uniform_shifts_and_trains():
    # channel 0 holds each pixel's row, channel 1 its column: bilinear sampling of a linear
    # ramp is exact, so the centre pixel tells the sample's shifts
    rows, cols = np.meshgrid(np.arange(33.0), np.arange(33.0), indexing="ij")
    x = np.broadcast_to(np.stack([rows, cols], -1), (3000, 33, 33, 2)).astype(np.float32)
    inputs = layers.Input((33, 33, 2))
    model = densitron.models.Model(
        inputs, layers.RandomTranslation((-0.2, 0.3), (0.1, 0.25), seed=4)(inputs))
    out = model(x, training=True)
    dy, dx = 16 - out[:, 16, 16, 0], 16 - out[:, 16, 16, 1]
    ramp = 16 - dy[:, None, None] + np.arange(-6, 6)[None, :, None]
    np.testing.assert_allclose(out[:, 10:22, 10:22, 0],
                               np.broadcast_to(ramp, (3000, 12, 12)), atol=2e-5)
    _uniform_like(dy, -0.2 * 33, 0.3 * 33)
    _uniform_like(dx, 0.1 * 33, 0.25 * 33)
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 0.06
    _trains_behind_a_convolution(
        layers.RandomTranslation(0.2, 0.3, fill_mode="constant", fill_value=0.5, seed=1))


def _trains_behind_a_convolution(layer):
    """Trained through, the gradient reaching a convolution before the layer."""
    inputs = layers.Input((6, 7, 1))
    h = layer(layers.Conv2D(2, 3, padding="same")(inputs))
    model = densitron.models.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(images(32, 6, 7, 1), images(32, 1), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


ZOOMS = [
    {"height_factor": (0.3, 0.3)},
    {"height_factor": (-0.5, -0.5)},
    {"height_factor": (-0.3, -0.3), "width_factor": (0.2, 0.2), "fill_mode": "constant",
     "fill_value": 0.5},
    {"height_factor": (0.45, 0.45), "width_factor": (-0.11, -0.11), "fill_mode": "wrap"},
    {"height_factor": (0.3, 0.3), "width_factor": (-0.21, -0.21), "fill_mode": "nearest",
     "interpolation": "nearest"},
    {"height_factor": (0.22, 0.22), "width_factor": (0.7, 0.7),
     "data_format": "channels_first"},
]


@pytest.mark.parametrize("name, kwargs", [("RandomTranslation", k) for k in TRANSLATIONS]
                         + [("RandomZoom", k) for k in ZOOMS])
def test_random_translation_and_zoom_in_a_model_are_kerass(keras, name, kwargs):
    x = images(3, 7, 9, 2)
    if kwargs.get("data_format") == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    inputs = layers.Input(x.shape[1:])
    model = densitron.models.Model(inputs, getattr(layers, name)(**kwargs)(inputs))
    theirs = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
    np.testing.assert_allclose(model(x, training=True), theirs, atol=1e-6)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_random_zoom_in_a_model_draws_uniform_zooms_and_trains():
    # rows and columns as channels: the zoom scales each one's distance from the centre
    rows, cols = np.meshgrid(np.arange(21.0), np.arange(21.0), indexing="ij")
    x = np.broadcast_to(np.stack([rows, cols], -1), (3000, 21, 21, 2)).astype(np.float32)
    for width_factor in (None, (-0.1, 0.3)):
        inputs = layers.Input((21, 21, 2))
        model = densitron.models.Model(
            inputs, layers.RandomZoom((-0.4, 0.2), width_factor, seed=2)(inputs))
        out = model(x, training=True)
        zy, zx = (out[:, 13, 13, 0] - 10) / 3, (out[:, 13, 13, 1] - 10) / 3
        np.testing.assert_allclose(out[:, 12, 11, 0], 10 + 2 * zy, atol=2e-5)
        _uniform_like(zy, 0.6, 1.2)
        if width_factor is None:
            np.testing.assert_allclose(zx, zy, atol=1e-5)
        else:
            _uniform_like(zx, 0.9, 1.3)
            assert abs(np.corrcoef(zx, zy)[0, 1]) < 0.06
    _trains_behind_a_convolution(layers.RandomZoom(0.3, fill_mode="constant", seed=1))


def test_random_crop_windows():
    x = images(5, 9, 11, 2)
    layer = layers.RandomCrop(4, 6, seed=2)
    outs = [layer(x) for _ in range(20)]
    starts = set()
    for out in outs:
        found = [(t, left) for t in range(6) for left in range(6)
                 if np.array_equal(out, x[:, t:t + 4, left:left + 6])]
        assert found
        starts.add(found[0])
    assert len(starts) > 3  # (one window a batch, drawn again at each call)
    np.testing.assert_array_equal(layer(x, training=False), x)  # (as Keras's: no crop)


def test_geometric_layers_in_a_model_predict_as_the_identity_and_refuse_fit():
    x = images(16, 6, 6, 1)
    for layer in (layers.RandomRotation(0.2),):
        inputs = layers.Input((6, 6, 1))
        h = layer(layers.RandomFlip()(inputs))
        model = densitron.models.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
        inner = densitron.models.Model(inputs, h)
        np.testing.assert_array_equal(inner.predict(x, verbose=0), x)
        model.compile(optimizer="adam", loss="mse")
        model.evaluate(x, images(16, 1), verbose=0)
        name = type(layer).__name__
        with pytest.raises(ValueError, match=f"cannot train with {name}.*PyDataset.*Received"):
            model.fit(x, images(16, 1), verbose=0)
        with pytest.raises(ValueError, match=f"cannot train with {name}"):
            model.train_on_batch(x, images(16, 1))
        with pytest.raises(ValueError, match=f"cannot train with {name}"):
            inner(x, training=True)
    with pytest.raises(ValueError, match="RandomCrop.*crops arrays only.*Received"):
        layers.RandomCrop(3, 3)(layers.Input((6, 6, 1)))


def test_augmenting_the_data_in_a_py_dataset_trains():
    class Augmented(densitron.utils.PyDataset):
        def __init__(self, x, y):
            super().__init__()
            self.x, self.y = x, y
            self.augment = densitron.models.Sequential([layers.RandomRotation(0.1, seed=1)])

        def __len__(self):
            return 4

        def __getitem__(self, k):
            rows = slice(8 * k, 8 * k + 8)
            return self.augment.layers[0](self.x[rows], training=True), self.y[rows]

    x, y = images(32, 6, 6, 1), images(32, 1)
    model = densitron.models.Sequential([layers.Input((6, 6, 1)), layers.Flatten(),
                                         layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(Augmented(x, y), epochs=2, verbose=0)


# --- configs and files ---------------------------------------------------------------------

CONFIGS = [
    layers.Resizing(4, 5, interpolation="bicubic", pad_to_aspect_ratio=True, fill_value=1.5),
    layers.CenterCrop(3, 5, data_format="channels_first"),
    layers.RandomFlip("horizontal", seed=3),
    layers.RandomRotation(0.1, fill_mode="constant", seed=1),
    layers.RandomZoom(0.2, (-0.1, 0.3)),
    layers.RandomTranslation(0.1, (-0.2, 0.1), interpolation="nearest"),
    layers.RandomContrast(0.2, value_range=(0, 1)),
    layers.RandomBrightness((-0.1, 0.3), seed=2),
    layers.RandomCrop(3, 4, seed=9),
]


@pytest.mark.parametrize("layer", CONFIGS, ids=lambda layer: type(layer).__name__)
def test_configs_are_kerass(keras, layer):
    config = layer.get_config()
    theirs = getattr(keras.layers, type(layer).__name__).from_config(config).get_config()
    assert set(theirs) == set(config)
    for key in config:
        if key not in ("dtype", "name"):
            assert json.loads(json.dumps(theirs[key])) == json.loads(json.dumps(config[key])), key
    again = type(layer).from_config(theirs).get_config()
    assert {k: v for k, v in again.items() if k != "dtype"} == \
        {k: v for k, v in config.items() if k != "dtype"}


def _model(lib):
    L = lib.layers
    inputs = L.Input((7, 9, 3))
    h = L.Resizing(5, 6, interpolation="bicubic", name="resize")(inputs)
    h = L.RandomFlip("horizontal", seed=1, name="flip")(h)
    h = L.RandomRotation(0.1, name="rotate")(h)
    h = L.RandomZoom(0.1, name="zoom")(h)
    h = L.RandomTranslation(0.1, 0.2, name="shift")(h)
    h = L.RandomContrast(0.2, name="contrast")(h)
    h = L.RandomBrightness(0.1, name="brightness")(h)
    h = L.CenterCrop(4, 4, name="crop")(h)
    h = L.Resizing(3, 5, crop_to_aspect_ratio=True, name="resize_crop")(h)
    outputs = L.Dense(2, name="dense")(L.Flatten()(h))
    return lib.Model(inputs, outputs)


@pytest.mark.filterwarnings(  # (Keras's numpy backend's own, saving a Dense)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_files_both_ways_with_keras(keras, tmp_path):
    x = images(4, 3, 7, 9)
    for lib in (keras, densitron):  # (channels_first layers)
        inputs = lib.layers.Input((3, 7, 9))
        h = lib.layers.Resizing(4, 5, data_format="channels_first")(inputs)
        h = lib.layers.RandomZoom(0.2, data_format="channels_first")(h)
        outputs = lib.layers.Dense(2)(lib.layers.Flatten()(h))
        lib.Model(inputs, outputs).save(tmp_path / f"{lib.__name__}_first.keras")
    for path in ("keras_first.keras", "densitron_first.keras"):
        ours = densitron.saving.load_model(tmp_path / path)
        theirs = keras.saving.load_model(tmp_path / path)
        np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-5)
    x = images(4, 7, 9, 3, high=255)
    theirs = _model(keras)
    theirs.save(tmp_path / "keras.keras")
    ours = densitron.saving.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-4)
    ours = _model(densitron)
    ours.save(tmp_path / "densitron.keras")
    theirs = keras.saving.load_model(tmp_path / "densitron.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-4)
    again = densitron.saving.load_model(tmp_path / "densitron.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), ours.predict(x, verbose=0))


# --- refusals ----------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.Resizing(0, 3), ValueError, "Received: height=0"),
    (lambda: layers.Resizing(3, 2.5), ValueError, "Received: width=2.5"),
    (lambda: layers.Resizing(3, 3, interpolation="area"), ValueError,
     "Received: interpolation=area"),
    (lambda: layers.Resizing(3, 3, fill_mode="reflect"), ValueError,
     "Received: fill_mode=reflect"),
    (lambda: layers.Resizing(3, 3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     ValueError, "Received: pad_to_aspect_ratio=True"),
    (lambda: layers.Resizing(3, 3, fill_value="x"), TypeError, "Received: fill_value='x'"),
    (lambda: layers.Resizing(3, 3, data_format="nhwc"), ValueError,
     "Received: data_format='nhwc'"),
    (lambda: layers.CenterCrop(-1, 3), ValueError, "Received: height=-1"),
    (lambda: layers.RandomFlip("diagonal"), ValueError, "Received: mode='diagonal'"),
    (lambda: layers.RandomFlip(seed=-2), ValueError, "Received: seed=-2"),
    (lambda: layers.RandomBrightness(1.5), ValueError, "Received: factor=1.5"),
    (lambda: layers.RandomBrightness(0.1, value_range=(0, 1, 2)), ValueError,
     "Received: value_range"),
    (lambda: layers.RandomContrast(-0.5), ValueError, "Received: factor=-0.5"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), NotImplementedError,
     "Received: fill_mode='mirror'"),
    (lambda: layers.RandomZoom(-1.0), ValueError, "Received: height_factor=-1.0"),
    (lambda: layers.RandomTranslation(0.1, 1.5), ValueError, "Received: width_factor=1.5"),
    (lambda: layers.RandomTranslation(0.1, 0.1, interpolation="bicubic"),
     NotImplementedError, "Received: interpolation='bicubic'"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs():
    for layer in (layers.Resizing(3, 3), layers.RandomFlip(), layers.RandomContrast(0.1)):
        with pytest.raises(ValueError, match="Received: input_shape=\\(None, 4, 4\\)"):
            layer(layers.Input((4, 4)))
        with pytest.raises(ValueError, match="Received: data.shape=\\(2, 3\\)"):
            layer(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="Received: data.shape=\\(2, 3\\)"):
        layers.RandomRotation(0.1)(np.ones((2, 3), np.float32))
