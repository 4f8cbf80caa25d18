"""Writes keras_attention.keras and keras_attention_predictions.npy with Keras 3.15:
    KERAS_BACKEND=jax python tests/data/make_keras_attention.py
(test_dot_attention.py loads them in densitron)."""
import os

import keras
import numpy as np
from keras import layers

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
x = rng.standard_normal((16, 5, 8)).astype(np.float32)
ids = rng.integers(0, 20, (16, 6))
qi, vid = keras.Input((5, 8)), keras.Input((6,), dtype="int32")
vv = layers.Embedding(20, 8, mask_zero=True)(vid)
h = layers.Dense(8)(qi)
out, scores = layers.Attention(use_scale=True, name="att")([h, vv], use_causal_mask=True,
                                                            return_attention_scores=True)
model = keras.Model([qi, vid], [layers.Dense(2)(layers.GlobalAveragePooling1D()(out)), scores])
model.set_weights([np.random.default_rng(i).standard_normal(v.shape).astype(np.float32) * 0.5
                   for i, v in enumerate(model.get_weights())])
model.save(os.path.join(HERE, "keras_attention.keras"))
np.save(os.path.join(HERE, "keras_attention_predictions.npy"),
        model.predict([x, ids], verbose=0)[0])
