"""Models and metrics of Keras's guides and keras.io's examples, written as they are there,
once for either framework: each function takes the modules to build with (keras or densitron,
its layers and ops) and returns the classes or the model. The tests check densitron against
Keras with them (tests/test_subclassing.py, tests/test_stateful_metrics.py) and the benchmark
times them against Keras (bench/models_vs_keras.py)."""


def metric_classes(M, ops):
    """The same metrics written for Keras (M = keras.metrics, ops = keras.ops) or densitron."""

    class CategoricalTruePositives(M.Metric):  # Keras's "training & evaluation" guide
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
            values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
            values = ops.cast(values, "float32")
            if sample_weight is not None:
                values = ops.multiply(values, ops.cast(sample_weight, "float32"))
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

        def reset_state(self):
            self.true_positives.assign(0.0)

    class BinaryTruePositives(M.Metric):  # Keras's Metric docstring
        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = ops.cast(y_true, "bool")
            y_pred = ops.cast(ops.round(y_pred), "bool")
            values = ops.logical_and(ops.equal(y_true, True), ops.equal(y_pred, True))
            self.true_positives.assign_add(ops.sum(ops.cast(values, "float32")))

        def result(self):
            return self.true_positives

    class F1(M.Metric):  # three counts; result() of variable arithmetic
        def __init__(self, name="f1", threshold=0.5, **kwargs):
            super().__init__(name=name, **kwargs)
            self.threshold = threshold
            self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
            self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
            self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

        def update_state(self, y_true, y_pred, sample_weight=None):
            p = ops.cast(ops.greater(y_pred, self.threshold), "float32")
            self.tp.assign_add(ops.sum(p * y_true))
            self.fp.assign_add(ops.sum(p * (1.0 - y_true)))
            self.fn.assign_add(ops.sum((1.0 - p) * y_true))

        def result(self):
            precision = self.tp / (self.tp + self.fp + 1e-7)
            recall = self.tp / (self.tp + self.fn + 1e-7)
            return 2.0 * precision * recall / (precision + recall + 1e-7)

    class MeanOfBatchMaxima(M.Metric):  # a number a batch, assign_sub and a batch's mean
        def __init__(self, name="batch_maxima", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.batches = self.add_variable(shape=(), initializer="zeros", name="batches")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(ops.mean(ops.max(y_pred, axis=-1)) * 3.0)
            self.total.assign_sub(ops.mean(ops.abs(y_true - y_pred)))
            self.batches.assign_add(1.0)

        def result(self):
            return self.total / self.batches

    class MacroF1(M.Metric):  # per-class counts in variables of shape (classes,)
        def __init__(self, classes, name="macro_f1", **kwargs):
            super().__init__(name=name, **kwargs)
            self.tp = self.add_variable(shape=(classes,), initializer="zeros", name="tp")
            self.fp = self.add_variable(shape=(classes,), initializer="zeros", name="fp")
            self.fn = self.add_variable(shape=(classes,), initializer="zeros", name="fn")
            self.seen = self.add_variable(shape=(), initializer="zeros", name="seen")
            self.both = self.add_variable(shape=(), initializer="zeros", name="both")

        def update_state(self, y_true, y_pred, sample_weight=None):
            hit = ops.cast(y_pred >= ops.max(y_pred, axis=-1, keepdims=True), "float32")
            self.tp.assign_add(ops.sum(hit * y_true, axis=0))
            self.fp.assign_add(ops.sum(hit, axis=0) - ops.sum(hit * y_true, axis=0))
            self.fn.assign_add(ops.sum((1.0 - hit) * y_true, axis=0) * 2.0 / 2.0)
            total = ops.sum(y_true)  # one tensor added to two variables, and its mean too
            self.seen.assign_add(total)
            self.both.assign_add(total)
            self.both.assign_sub(ops.mean(y_true) * 0.5)

        def result(self):
            f1 = 2.0 * self.tp / (2.0 * self.tp + self.fp + self.fn + 1e-7)
            return ops.mean(f1) + 0.0 * (self.seen - self.both)

    return CategoricalTruePositives, BinaryTruePositives, F1, MeanOfBatchMaxima, MacroF1


def recommender_net(keras_mod, layers_mod, ops_mod, num_users=50, num_movies=40, size=8):
    """keras.io's collaborative-filtering example, as written there: columns of one integer
    input into Embeddings, tensordot(axes=2) (the batch's sum, one value a batch), ops.nn."""

    class RecommenderNet(keras_mod.Model):
        def __init__(self, num_users, num_movies, embedding_size, **kwargs):
            super().__init__(**kwargs)
            self.user_embedding = layers_mod.Embedding(
                num_users, embedding_size, embeddings_initializer="he_normal",
                embeddings_regularizer=keras_mod.regularizers.l2(1e-6))
            self.user_bias = layers_mod.Embedding(num_users, 1)
            self.movie_embedding = layers_mod.Embedding(
                num_movies, embedding_size, embeddings_initializer="he_normal",
                embeddings_regularizer=keras_mod.regularizers.l2(1e-6))
            self.movie_bias = layers_mod.Embedding(num_movies, 1)

        def call(self, inputs):
            user_vector = self.user_embedding(inputs[:, 0])
            user_bias = self.user_bias(inputs[:, 0])
            movie_vector = self.movie_embedding(inputs[:, 1])
            movie_bias = self.movie_bias(inputs[:, 1])
            dot_user_movie = ops_mod.tensordot(user_vector, movie_vector, 2)
            x = dot_user_movie + user_bias + movie_bias
            return ops_mod.nn.sigmoid(x)

    return RecommenderNet(num_users, num_movies, size)


def vae_classes(keras_mod, layers_mod, ops_mod, stddev=1.0):
    """The variational autoencoder of Keras's subclassing guide, as written there (Sampling
    draws keras.random.normal of shape (ops.shape(z_mean)[0], dim) with a SeedGenerator; the
    KL term goes to add_loss); `stddev` 0 makes the sampling deterministic for a comparison."""

    class Sampling(layers_mod.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras_mod.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = ops_mod.shape(z_mean)[0]
            dim = ops_mod.shape(z_mean)[1]
            epsilon = keras_mod.random.normal(shape=(batch, dim), stddev=stddev,
                                              seed=self.seed_generator)
            return z_mean + ops_mod.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers_mod.Layer):
        def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers_mod.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers_mod.Dense(latent_dim)
            self.dense_log_var = layers_mod.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean = self.dense_mean(x)
            z_log_var = self.dense_log_var(x)
            z = self.sampling((z_mean, z_log_var))
            return z_mean, z_log_var, z

    class Decoder(layers_mod.Layer):
        def __init__(self, original_dim, intermediate_dim=64, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers_mod.Dense(intermediate_dim, activation="relu")
            self.dense_output = layers_mod.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            return self.dense_output(self.dense_proj(inputs))

    class VariationalAutoEncoder(keras_mod.Model):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32,
                     name="autoencoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.original_dim = original_dim
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            reconstructed = self.decoder(z)
            kl_loss = -0.5 * ops_mod.mean(
                z_log_var - ops_mod.square(z_mean) - ops_mod.exp(z_log_var) + 1)
            self.add_loss(kl_loss)
            return reconstructed

    return Sampling, VariationalAutoEncoder


def custom_dropout_class(keras_mod):
    """Keras's subclassing guide's CustomDropout: a Python test of `training` and
    keras.random.dropout in the training branch."""

    class CustomDropout(keras_mod.layers.Layer):
        def __init__(self, rate, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate
            self.seed_generator = keras_mod.random.SeedGenerator(1337)

        def call(self, inputs, training=None):
            if training:
                return keras_mod.random.dropout(inputs, rate=self.rate, seed=self.seed_generator)
            return inputs

    return CustomDropout


def text_transformer(keras_mod, vocab_size=20000, maxlen=200, embed_dim=32, num_heads=2,
                     ff_dim=32):
    """keras.io's "Text classification with Transformer": token and position embeddings, one
    transformer block (MultiHeadAttention, a feed-forward Sequential, LayerNormalization,
    Dropout), average pooling and a softmax over two classes."""
    layers, ops = keras_mod.layers, keras_mod.ops

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras_mod.Sequential(
                [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(start=0, stop=maxlen, step=1)
            positions = self.pos_emb(positions)
            x = self.token_emb(x)
            return x + positions

    inputs = layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    x = TransformerBlock(embed_dim, num_heads, ff_dim)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    return keras_mod.Model(inputs=inputs, outputs=outputs)


def timeseries_transformer(keras_mod, input_shape=(500, 1), n_classes=2, head_size=256,
                           num_heads=4, ff_dim=4, num_transformer_blocks=4, mlp_units=(128,),
                           dropout=0.25, mlp_dropout=0.4):
    """keras.io's "Timeseries classification with a Transformer model": encoder blocks of
    MultiHeadAttention, Dropout, LayerNormalization and a pointwise Conv1D feed-forward."""
    layers = keras_mod.layers

    def transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
        x = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads,
                                      dropout=dropout)(inputs, inputs)
        x = layers.Dropout(dropout)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        res = x + inputs
        x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        return x + res

    inputs = keras_mod.Input(shape=input_shape)
    x = inputs
    for _ in range(num_transformer_blocks):
        x = transformer_encoder(x, head_size, num_heads, ff_dim, dropout)
    x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
    for dim in mlp_units:
        x = layers.Dense(dim, activation="relu")(x)
        x = layers.Dropout(mlp_dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras_mod.Model(inputs, outputs)
