"""Keras's progress bar:
"k/N ━━━━━━━━━━━━━━━━━━━━ 2s 3ms/step - accuracy: 0.9012 - loss: 0.3121"."""

import sys
import time

import numpy as np

from densitron.utils import io_utils


def format_value(v, signed=False):
    """A log's value as Keras's bar shows it: a per-class array (F1Score with average=None)
    by its mean, to 4 decimals above 1e-3 in magnitude (verbose=2's line: above 1e-3, so
    negative values too) and in exponent form otherwise, 0 included."""
    if np.ndim(v) > 0:
        v = float(np.mean(v))
    return f"{v:.4f}" if (v if signed else abs(v)) > 1e-3 else f"{v:.4e}"


def _format_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _format_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progbar:
    """Displays a progress bar. target: total steps; verbose 1 (bar) or 2 (final line only)."""

    def __init__(self, target, width=20, verbose=1, interval=0.05, stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self._stream = stream
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._dynamic = self._isatty()
        self._finished = False

    @property
    def stream(self):
        return self._stream or sys.stdout

    def _logged(self):
        """Whether the lines go to the log (interactive logging off, no stream of its own)."""
        return self._stream is None and not io_utils.is_interactive_logging_enabled()

    def _isatty(self):
        if self._logged():
            return False
        s = self.stream
        return hasattr(s, "isatty") and s.isatty()

    def update(self, current, values=None, finalize=None):
        """values: list of (name, value) pairs, already averaged."""
        if self.verbose == 0 or self._finished:
            return
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        if not finalize and (now - self._last_update < self.interval):
            return
        if not finalize and not self._dynamic:
            return  # a log file gets one line per epoch
        if self.verbose == 2 and not finalize:
            return
        self._last_update = now
        elapsed = now - self._start
        line = self._render(current, values or [], elapsed, finalize)
        if self._logged():
            io_utils.print_msg(line)
        elif self._dynamic:
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if finalize else ""))
            self.stream.flush()
        else:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._finished = finalize

    def _render(self, current, values, elapsed, finalize):
        parts = []
        if self.verbose == 2:
            per_step = elapsed / max(current, 1)
            line = f"{current}/{self.target or current} - {_format_time(elapsed)} - "
            line += _format_step(per_step)
            return line + "".join(f" - {name}: {format_value(v, signed=True)}"
                                  for name, v in values)
        if self.verbose == 1:
            target = self.target or current
            digits = len(str(target))
            done = int(self.width * current / target) if target else self.width
            bar = "━" * done
            if self._dynamic and done < self.width:
                bar += "\x1b[2m" + "━" * (self.width - done) + "\x1b[0m"
            else:
                bar += " " * (self.width - done)
            parts.append(f"{current:>{digits}}/{target} {bar} ")
        per_step = elapsed / max(current, 1)
        if finalize:
            parts.append(f"{_format_time(elapsed)} {_format_step(per_step)}")
        else:
            eta = per_step * (self.target - current) if self.target else 0.0
            parts.append(f"{_format_time(eta)} {_format_step(per_step)}")
        for name, v in values:
            parts.append(f" - {name}: {format_value(v)}")
        return "".join(parts)
