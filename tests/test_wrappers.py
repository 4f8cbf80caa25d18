"""densitron.wrappers (keras.wrappers): models as scikit-learn estimators, in scikit-learn's
own machinery (clone, cross_val_score, GridSearchCV, Pipeline), with string labels, a model
given as a function or as a compiled model, warm starts, and the refusals."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed")

import densitron
from densitron import layers
from densitron.wrappers import (
    SKLearnClassifier,
    SKLearnRegressor,
    SKLearnTransformer,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(240, 4)).astype(np.float32)
LABELS = np.where(X[:, 0] + X[:, 1] > 0, "yes", np.where(X[:, 2] > 0.3, "maybe", "no"))
TARGET = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3).astype(np.float32)


def classifier(X, y, hidden=16):
    inp = densitron.Input((X.shape[1],))
    out = layers.Dense(y.shape[1], activation="softmax")(
        layers.Dense(hidden, activation="relu")(inp))
    model = densitron.Model(inp, out)
    model.compile(optimizer=densitron.optimizers.Adam(0.01), loss="categorical_crossentropy")
    return model


def regressor(X, y):
    inp = densitron.Input((X.shape[1],))
    model = densitron.Model(inp, layers.Dense(y.shape[1])(inp))
    model.compile(optimizer=densitron.optimizers.Adam(0.05), loss="mse")
    return model


FIT = {"epochs": 30, "verbose": 0}


def test_classifier_with_string_labels():
    clf = SKLearnClassifier(classifier, fit_kwargs=FIT).fit(X, LABELS)
    assert list(clf.classes_) == ["maybe", "no", "yes"]
    predicted = clf.predict(X)
    assert predicted.shape == (240,) and set(predicted) <= set(clf.classes_)
    assert clf.score(X, LABELS) > 0.85 and clf.epoch_ == 30
    scores = clf.decision_function(X[:5])
    assert scores.shape == (5, 3)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(1)], predicted[:5])
    assert clf.n_features_in_ == 4


def test_regressor_and_transformer():
    reg = SKLearnRegressor(regressor, fit_kwargs={"epochs": 60, "verbose": 0}).fit(X, TARGET)
    assert reg.predict(X).shape == (240,) and reg.score(X, TARGET) > 0.95
    two = np.stack([TARGET, -TARGET], axis=1)
    assert SKLearnRegressor(regressor, fit_kwargs=FIT).fit(X, two).predict(X).shape == (240, 2)
    # a column target predicts 1-D, as in Keras (scikit-learn's validation ravels it there)
    column = SKLearnRegressor(regressor, fit_kwargs=FIT).fit(X, TARGET[:, None])
    assert column.predict(X).shape == (240,)
    tr = SKLearnTransformer(regressor, fit_kwargs=FIT).fit(X, TARGET)
    assert tr.transform(X).shape == (240, 1)


def test_in_scikit_learns_machinery():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = SKLearnClassifier(classifier, model_kwargs={"hidden": 8}, fit_kwargs=FIT)
    fresh = clone(clf)
    assert fresh.get_params()["model_kwargs"] == {"hidden": 8} and not hasattr(fresh, "model_")
    scores = cross_val_score(clf, X, LABELS, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7
    search = GridSearchCV(SKLearnClassifier(classifier, fit_kwargs={"epochs": 3, "verbose": 0}),
                          {"model_kwargs": [{"hidden": 2}, {"hidden": 16}]}, cv=2)
    assert search.fit(X, LABELS).best_params_["model_kwargs"] in ({"hidden": 2}, {"hidden": 16})
    pipe = make_pipeline(StandardScaler(), SKLearnRegressor(regressor, fit_kwargs=FIT))
    assert pipe.fit(X, TARGET).predict(X).shape == (240,)


def test_a_compiled_model_instance_and_warm_start():
    one_hot = np.eye(3, dtype=np.float32)[np.searchsorted(["maybe", "no", "yes"], LABELS)]
    given = classifier(X, one_hot)
    before = [w.copy() for w in given.get_weights()]
    clf = SKLearnClassifier(given, fit_kwargs=FIT).fit(X, LABELS)
    assert clf.model_ is not given and clf.score(X, LABELS) > 0.85
    for w, b in zip(given.get_weights(), before):  # the given model is left as it was
        np.testing.assert_array_equal(w, b)
    warm = SKLearnClassifier(classifier, warm_start=True, fit_kwargs={"epochs": 2, "verbose": 0})
    warm.fit(X, LABELS)
    first = warm.model_
    warm.fit(X, LABELS)
    assert warm.model_ is first and first.optimizer.iterations == 2 * 2 * 8  # 240 rows / 32
    cold = SKLearnClassifier(classifier, fit_kwargs={"epochs": 2, "verbose": 0})
    cold.fit(X, LABELS)
    first = cold.model_
    assert cold.fit(X, LABELS).model_ is not first


def test_refusals():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SKLearnClassifier(classifier).predict(X)
    with pytest.raises(ValueError, match="Received: a target of type 'continuous'"):
        SKLearnClassifier(classifier, fit_kwargs=FIT).fit(X, TARGET)
    with pytest.raises(ValueError, match="only one class"):
        SKLearnClassifier(classifier, fit_kwargs=FIT).fit(X, np.zeros(240))

    def uncompiled(X, y):
        inp = densitron.Input((X.shape[1],))
        return densitron.Model(inp, layers.Dense(1)(inp))

    with pytest.raises(RuntimeError, match="needs to be compiled"):
        SKLearnRegressor(uncompiled).fit(X, TARGET)
    with pytest.raises(RuntimeError, match="needs to be compiled"):
        SKLearnRegressor(uncompiled(X, None)).fit(X, TARGET)
    with pytest.raises(TypeError, match="Received: model=3"):
        SKLearnRegressor(3).fit(X, TARGET)
    with pytest.raises(ValueError):  # scikit-learn's own check of the features
        SKLearnRegressor(regressor, fit_kwargs=FIT).fit(X, TARGET).predict(X[:, :3])
