"""Learning-rate schedules written in Python (Keras's LearningRateSchedule subclasses with
their own __call__(step)): evaluated for the steps of each engine run ahead of it, with the
step count Keras passes; saved by name and config, loaded with custom_objects."""

import os
import pickle

import numpy as np
import pytest

import densitron
from densitron.layers import Dense, Input
from densitron.models import Model
from densitron.optimizers.schedules import LearningRateSchedule


class Warmup(LearningRateSchedule):
    def __init__(self, peak, warmup_steps):
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        return self.peak * min(1.0, (step + 1) / self.warmup_steps)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def regression(rows=64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(rows, 4)).astype(np.float32),
            rng.normal(size=(rows, 1)).astype(np.float32))


def linear_model(optimizer):
    inputs = Input((4,))
    m = Model(inputs, Dense(1)(inputs))
    m.compile(optimizer, "mse")
    return m


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("per_batch", [False, True])
def test_sgd_steps_follow_the_python_schedule(threads, per_batch):
    densitron.set_num_threads(threads)
    x, y = regression()
    m = linear_model(densitron.optimizers.SGD(Warmup(0.1, 6)))
    w, b = [a.astype(np.float64) for a in m.get_weights()]
    callbacks = ([densitron.callbacks.LambdaCallback(on_train_batch_end=lambda *_: None)]
                 if per_batch else [])
    m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    for t in range(8):  # Keras calls the schedule with the update count before each update
        xb, yb = x[16 * (t % 4):16 * (t % 4 + 1)], y[16 * (t % 4):16 * (t % 4 + 1)]
        g = 2 * (xb @ w + b - yb) / len(yb)
        lr = 0.1 * min(1.0, (t + 1) / 6)
        w, b = w - lr * (xb.T @ g), b - lr * g.sum(0)
    np.testing.assert_allclose(m.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_weights()[1], b, rtol=1e-5, atol=1e-6)
    assert m.optimizer.learning_rate == pytest.approx(0.1)
    assert m.optimizer.iterations == 8


def test_train_on_batch_and_generators_use_it_too():
    x, y = regression()
    steps = []

    class Logged(Warmup):
        def __call__(self, step):
            steps.append(step)
            return super().__call__(step)

    m = linear_model(densitron.optimizers.Adam(Logged(0.01, 3)))
    m.train_on_batch(x[:16], y[:16])
    with pytest.warns(UserWarning, match="ran out of data"):  # (Keras warns at a generator's end)
        m.fit(((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)), epochs=1, verbose=0)
    assert m.optimizer.iterations == 5
    assert {0, 1, 2, 3, 4} <= set(steps)


def test_saved_with_its_config_and_loaded_with_custom_objects(tmp_path):
    x, y = regression()
    m = linear_model(densitron.optimizers.SGD(Warmup(0.05, 10)))
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    m.save(path)
    with pytest.raises(ValueError, match="custom_objects.*Received: class_name='Warmup'"):
        densitron.models.load_model(path)
    back = densitron.models.load_model(path, custom_objects={"Warmup": Warmup})
    assert isinstance(back.optimizer._schedule, Warmup) and back.optimizer.iterations == 4
    copy = pickle.loads(pickle.dumps(m))
    for other in (back, copy):
        densitron.utils.set_random_seed(2)
        other.fit(x, y, batch_size=16, epochs=1, verbose=0)
    densitron.utils.set_random_seed(2)
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for other in (back, copy):
        np.testing.assert_array_equal(other.get_weights()[0], m.get_weights()[0])


def test_bad_python_schedules():
    class NoConfig(LearningRateSchedule):
        def __call__(self, step):
            return 0.1

    class Text(LearningRateSchedule):
        def __call__(self, step):
            return "fast"

    x, y = regression()
    m = linear_model(densitron.optimizers.SGD(NoConfig()))
    m.fit(x, y, verbose=0)
    with pytest.raises(NotImplementedError, match="get_config.*Received"):
        m.save("/tmp/never_written.keras")
    assert not os.path.exists("/tmp/never_written.keras")
    with pytest.raises(TypeError, match="must return a number.*Received"):
        linear_model(densitron.optimizers.SGD(Text()))
    with pytest.raises(ValueError, match="LearningRateSchedule.*Received"):
        densitron.optimizers.SGD(lambda step: 0.1)  # (a function: of no arguments, as Keras)
    with pytest.raises(TypeError, match="custom_objects.*Received"):
        densitron.models.load_model(__file__, custom_objects=[Warmup])


def test_registered_schedules_load_without_custom_objects(tmp_path):
    @densitron.saving.register_keras_serializable(package="Mine")
    class Halving(LearningRateSchedule):
        def __init__(self, start):
            self.start = start

        def __call__(self, step):
            return self.start / (1 + step)

        def get_config(self):
            return {"start": self.start}

    assert densitron.saving.get_custom_objects()["Mine>Halving"] is Halving
    x, y = regression()
    m = linear_model(densitron.optimizers.SGD(Halving(0.05)))
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    m.save(path)
    back = densitron.models.load_model(path)
    assert isinstance(back.optimizer._schedule, Halving)
    with densitron.utils.custom_object_scope({"Warmup": Warmup}):
        m2 = linear_model(densitron.optimizers.SGD(Warmup(0.1, 3)))
        m2.fit(x, y, verbose=0)
        m2.save(path)
        assert isinstance(densitron.models.load_model(path).optimizer._schedule, Warmup)
    assert densitron.utils.Sequence is densitron.utils.PyDataset
    densitron.models.save_model(m, path)
