"""keras.wrappers: densitron models as scikit-learn estimators (SKLearnClassifier,
SKLearnRegressor, SKLearnTransformer), for pipelines, cross-validation and grid searches.
`model` is a function `model(X, y, **model_kwargs)` returning a compiled model (called at every
fit, so each fit starts afresh) or a compiled model (cloned and compiled alike at every fit).
Needs scikit-learn (`pip install scikit-learn`), imported when this module is."""

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
except ImportError:  # the classes exist; building one says what to install
    sklearn = None

    class BaseEstimator:
        pass

    class ClassifierMixin:
        pass

    class RegressorMixin:
        pass

    class TransformerMixin:
        pass


def _validate(estimator, X, y=None, reset=True):
    """scikit-learn's input validation (n_features_in_, feature_names_in_ on fit); y of
    several columns for the estimators with several outputs."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn before 1.6
        validate_data = type(estimator)._validate_data
    if y is None:
        return validate_data(estimator, X, reset=reset)
    return validate_data(estimator, X, y, reset=reset, multi_output=estimator._multi_output)


class _SKLBase(BaseEstimator):
    _multi_output = True  # (a regressor's or transformer's y may have several columns)

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        if sklearn is None:
            raise ImportError(f"{type(self).__name__} requires `scikit-learn` to be installed. "
                              "Run `pip install scikit-learn` to install it.")
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    @property
    def epoch_(self):
        """The epochs the model has been trained for in its last fit."""
        return len(self.history_.epoch) if hasattr(self, "history_") else 0

    def _new_model(self, X, y):
        from densitron import saving
        from densitron.models import Model

        if isinstance(self.model, Model):
            if not self.model.compiled:
                raise RuntimeError("The given model needs to be compiled, with a loss and an "
                                   f"optimizer. Received: model {self.model.name!r}, not "
                                   "compiled")
            model = saving.clone_model(self.model)
            saving._compile_saved(model, saving._compile_config(self.model), True, "the model")
            return model
        if not callable(self.model):
            raise TypeError("`model` must be a function returning a compiled model, or a "
                            f"compiled model. Received: model={self.model!r}")
        model = self.model(X=X, y=y, **(self.model_kwargs or {}))
        if not getattr(model, "compiled", False):
            raise RuntimeError("The model `model(X, y, ...)` returns needs to be compiled, with "
                               f"a loss and an optimizer. Received: {model!r}")
        return model

    def fit(self, X, y, **kwargs):
        """Trains the model (a new one, unless warm_start and already fitted) on X, y; keyword
        arguments go to the model's fit, after fit_kwargs."""
        X, y = _validate(self, X, y)
        y = self._encode_target(y, reset=not (self.warm_start and hasattr(self, "model_")))
        if not (self.warm_start and hasattr(self, "model_")):
            self.model_ = self._new_model(X, y)
        self.history_ = self.model_.fit(X, y, **{**(self.fit_kwargs or {}), **kwargs})
        return self

    def _raw_predict(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.model_.predict(_validate(self, X, reset=False))

    def predict(self, X):
        return self._decode_target(self._raw_predict(X))

    def _encode_target(self, y, reset):
        if reset:  # (a column y predicts 1-D, as scikit-learn's validation ravels it in Keras)
            self._target_ndim = 1 if np.ndim(y) == 2 and np.shape(y)[1] == 1 else np.ndim(y)
        return y.reshape(-1, 1) if np.ndim(y) == 1 else y

    def _decode_target(self, y):
        return y[:, 0] if self._target_ndim == 1 and y.ndim == 2 and y.shape[1] == 1 else y


class SKLearnClassifier(ClassifierMixin, _SKLBase):
    """A classifier: binary or multiclass labels of any kind (ints, strings), one-hot encoded
    for the model (train it with categorical cross-entropy and a softmax over the classes);
    predict gives the labels of the largest outputs, decision_function the outputs."""

    _multi_output = False

    def decision_function(self, X):
        return self._raw_predict(X)

    def _encode_target(self, y, reset):
        from sklearn.preprocessing import OneHotEncoder
        from sklearn.utils.multiclass import type_of_target

        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError("Only binary and multiclass target types are supported. "
                             f"Received: a target of type {kind!r}")
        column = np.asarray(y).reshape(-1, 1)
        if reset:
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("A classifier can't train when only one class is present. "
                                 f"Received: y of the one class {self.classes_[0]!r}")
            self._encoder = OneHotEncoder(sparse_output=False).fit(column)
        return self._encoder.transform(column).astype(np.float32)

    def _decode_target(self, y):
        return self.classes_[np.argmax(y, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, _SKLBase):
    """A regressor: predict gives the model's outputs (a 1-D array for a 1-D target)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, _SKLBase):
    """A transformer: fit trains the model on X, y; transform gives its outputs for X."""

    def transform(self, X):
        return self._raw_predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
