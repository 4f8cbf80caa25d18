"""Type stub for densitron._core, the C++ engine (cpp/bindings)."""

from typing import Any

import numpy as np

def cpu_info() -> dict[str, Any]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def _set_isa(name: str) -> None: ...
def matmul(
    a: np.ndarray,
    b: np.ndarray,
    transpose_a: bool = False,
    transpose_b: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray: ...
def _optimizer_update(
    config: dict[str, Any], step: int, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray]
) -> None: ...
def _optimizer_slot_count(config: dict[str, Any]) -> int: ...
def _first_nan(array: np.ndarray) -> int: ...
def _metric_sums(spec: tuple, columns: int) -> int: ...
def _scheduled_learning_rate(schedule: dict[str, Any], iterations: int) -> float: ...

# (rows, loss sum, per-output loss sums, metric sums, per-output sample-weight sums)
_Totals = tuple[int, float, list[float], list[float], list[float]]

class Graph:
    # nodes: (op, inputs, width, last_dim, activation, (negative_slope, max_value, threshold,
    #         alpha), params, fattrs, iattrs)
    # params: (array, rows, cols, l1, l2, constraint, c_min, c_max, c_rate, c_axis)
    def __init__(
        self, nodes: list[tuple], params: list[tuple], inputs: list[int], outputs: list[int]
    ) -> None: ...
    # outputs: (node, loss, loss_weight, target_width, [metric specs], loss_param,
    #           (gamma, alpha, class_balancing), ignore_class | None, loss_of, weighted): the
    #           model's outputs in order, then a loss (or metric) function's values, loss_of
    #           naming their model output (else -1) (trainers/trainer.py: _EngineOutput)
    def compile(
        self, outputs: list[tuple], optimizer: dict[str, Any], trainable: list[bool]
    ) -> None: ...
    def train_batches(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        perm: np.ndarray | None,
        batch_size: int,
        first_batch: int,
        num_batches: int,
        sample_weights: list[np.ndarray | None] | None = None,
        continue_totals: bool = False,
    ) -> tuple[int, float, list[float], list[float], list[float], tuple[int, int] | None]: ...
    # continue_totals: the totals returned add this call's batches to the previous call's
    # the last item: (input index, row) of a NaN met while gathering shuffled rows, or None
    def evaluate(self, xs: list[np.ndarray], ys: list[np.ndarray], batch_size: int) -> _Totals: ...
    def gradients(
        self, xs: list[np.ndarray], ys: list[np.ndarray]
    ) -> tuple[_Totals, list[np.ndarray]]: ...
    def predict(self, xs: list[np.ndarray], batch_size: int) -> list[np.ndarray]: ...
    def set_profiling(self, on: bool) -> None: ...
    def reset_profile(self) -> None: ...
    def profile(self) -> dict[str, float]: ...
    learning_rate: float
    iterations: int
