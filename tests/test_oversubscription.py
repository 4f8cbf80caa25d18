"""On an oversubscribed machine (other processes busy on every core) the engine's runs go to
one thread, whose results are bitwise those of two, and back to two once a core is free."""

import os
import subprocess
import sys
import time

import densitron
import numpy as np
import pytest
from densitron import layers

needs_threads = pytest.mark.skipif(not densitron.cpu_info()["openmp"],
                                   reason="built without OpenMP: always one thread")


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def seed_model():
    densitron.utils.set_random_seed(3)
    inputs = densitron.Input((784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    model = densitron.Model(inputs, layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def data(rows=16000):
    rng = np.random.default_rng(5)
    return (rng.standard_normal((rows, 784), dtype=np.float32),
            np.eye(10, dtype=np.float32)[rng.integers(0, 10, rows)])


SPIN_AND_TELL_WAIT = """
import time
with open("/proc/thread-self/schedstat") as f:
    before = int(f.read().split()[1])
end = time.perf_counter() + 0.5
while time.perf_counter() < end:
    pass
with open("/proc/thread-self/schedstat") as f:
    print((int(f.read().split()[1]) - before) / 0.5e9)
"""


def others_keep_the_cores_busy():
    """Whether other processes (not this test's) are busy enough that a process of ours waits
    for a core: a spinning process a core, each's time runnable but off its core (the kernel's
    schedstat run_delay) over 20% of 0.5 s for one of them. False where the kernel does not
    tell."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN_AND_TELL_WAIT],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for _ in range(cores())]
    waits = []
    for p in spinners:
        out, _ = p.communicate()
        try:
            waits.append(float(out))
        except ValueError:
            pass
    return bool(waits) and max(waits) > 0.2


def test_set_adaptive_threads_checks_its_argument():
    with pytest.raises(TypeError, match="Received: enabled=1"):
        densitron.set_adaptive_threads(1)
    densitron.set_adaptive_threads(True)
    assert densitron.cpu_info()["adaptive_threads"] is True
    densitron.set_adaptive_threads(False)
    info = densitron.cpu_info()
    assert info["adaptive_threads"] is False and info["oversubscribed"] is False


@needs_threads
@pytest.mark.skipif(cores() > 16, reason="a burner process per thread of the machine: too many")
def test_busy_machine_runs_on_one_thread_with_the_same_results():
    x, y = data()
    densitron.set_num_threads(2)
    densitron.set_adaptive_threads(True)
    busy = seed_model()
    # two busy processes a core: each of the run's two threads runs a third of the time.
    # Epochs until the verdict is in and a run took one thread (the verdict may come and go
    # as it retries two threads; on a slow kernel path an epoch is one long run).
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2 * cores())]
    try:
        time.sleep(0.3)
        verdicts, threads, epochs = set(), set(), 0
        while epochs < 12 and not (True in verdicts and 1 in threads):
            busy.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
            epochs += 1
            verdicts.add(densitron.cpu_info()["oversubscribed"])
            threads.add(busy._graph.last_run_threads)
        assert True in verdicts and 1 in threads, (epochs, verdicts, threads)
    finally:
        for p in burners:
            p.kill()
        for p in burners:
            p.wait()
    quiet = seed_model()
    quiet.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=False)
    for a, b in zip(quiet.get_weights(), busy.get_weights()):
        np.testing.assert_array_equal(a, b)  # threads switched between runs: same numbers

    # With the cores free again, the one-thread runs keep their core and two threads return
    # (after 50 ms of them, twice that after each retry that found the machine busy).
    # (Other processes' load may come and go meanwhile: a second try after a check that the
    # cores are not measurably busy, a skip if they are.)
    for _ in range(2):
        deadline = time.perf_counter() + 20.0
        while time.perf_counter() < deadline:
            busy.fit(x, y, batch_size=32, epochs=1, verbose=0)
            back = (busy._graph.last_run_threads == 2
                    and not densitron.cpu_info()["oversubscribed"])
            if back:
                break
        if back:
            break
        if others_keep_the_cores_busy():
            pytest.skip("other processes keep this machine's cores busy: the runs rightly stay "
                        "on one thread (the first half of the test passed)")
    assert busy._graph.last_run_threads == 2 and not densitron.cpu_info()["oversubscribed"]
