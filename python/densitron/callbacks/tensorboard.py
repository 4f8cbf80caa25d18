"""Keras's TensorBoard callback without TensorFlow: scalar summaries written straight into
TensorBoard's event files (TFRecord framing, hand-encoded Event protocol buffers)."""

import os
import socket
import struct
import time

import numpy as np

from densitron._checks import path_arg
from densitron.callbacks.callback import Callback

# --- CRC-32C (Castagnoli), as TFRecord frames each record ------------------------------------


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data):
    """One TFRecord: length, its masked CRC, the bytes, their masked CRC."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", _masked_crc(length)) + data
            + struct.pack("<I", _masked_crc(data)))


# --- the few protocol buffer fields an Event needs ---------------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number, payload):  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time, step, file_version=None, summary=None):
    """tensorflow.Event: wall_time (1, double), step (2, int64), file_version (3, string),
    summary (5, Summary)."""
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time)
    out += _varint(2 << 3 | 0) + _varint(step & 0xFFFFFFFFFFFFFFFF)
    if file_version is not None:
        out += _field_bytes(3, file_version.encode())
    if summary is not None:
        out += _field_bytes(5, summary)
    return out


def _scalar_summary(tag, value):
    """tensorflow.Summary with one Value: tag (1, string), simple_value (2, float), which
    TensorBoard's scalar dashboard reads."""
    value_msg = _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)
    return _field_bytes(1, value_msg)


class EventFileWriter:
    """Appends scalar events to a new `events.out.tfevents.*` file in `logdir` (created on the
    first write)."""

    _count = 0

    def __init__(self, logdir):
        self.logdir = logdir
        self._file = None

    def _open(self):
        os.makedirs(self.logdir, exist_ok=True)
        EventFileWriter._count += 1
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._count}.v2")
        self.path = os.path.join(self.logdir, name)
        self._file = open(self.path, "wb")
        self._file.write(_record(_event(time.time(), 0, file_version="brain.Event:2")))

    def scalar(self, tag, value, step):
        if self._file is None:
            self._open()
        summary = _scalar_summary(tag, float(value))
        self._file.write(_record(_event(time.time(), int(step), summary=summary)))

    def flush(self):
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def read_scalars(path):
    """[(tag, step, value)] of an event file's scalar events, each record's CRCs checked (for
    tests and for reading logs back without TensorBoard)."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        length_bytes = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if crc != _masked_crc(length_bytes):
            raise ValueError(f"corrupt record length at byte {pos}. Received: {path}")
        body = data[pos + 12:pos + 12 + length]
        (crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if crc != _masked_crc(body):
            raise ValueError(f"corrupt record at byte {pos}. Received: {path}")
        pos += 16 + length
        out.extend(_scalars_of_event(body))
    return out


def _fields(buf):
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported wire type. Received: {wire}")
        yield number, value


def _read_varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _scalars_of_event(body):
    step, summary = 0, None
    for number, value in _fields(body):
        if number == 2:
            step = value
        elif number == 5:
            summary = value
    if summary is None:
        return []
    out = []
    for number, value_msg in _fields(summary):
        if number != 1:
            continue
        tag, simple = None, None
        for n, v in _fields(value_msg):
            if n == 1:
                tag = v.decode()
            elif n == 2:
                (simple,) = struct.unpack("<f", v)
        if tag is not None and simple is not None:
            out.append((tag, step, simple))
    return out


class TensorBoard(Callback):
    """Keras's TensorBoard callback for scalars: under `log_dir`, `train/` receives
    `epoch_<metric>` for every log (and `epoch_learning_rate`), `validation/` the validation
    logs as `epoch_<metric>` and `evaluation_<metric>_vs_iterations` (at the optimizer's step
    count), and with `update_freq="batch"` or an integer n, `train/` also receives
    `batch_<metric>` every n batches (fit then runs batch by batch); `write_steps_per_second`
    adds `epoch_steps_per_second` (and `batch_steps_per_second`). No TensorFlow needed:
    the event files are written directly. Not supported (a clear error): weight histograms,
    images, embeddings and the profiler; `write_graph` is accepted and writes nothing."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        for arg, value, off in (("histogram_freq", histogram_freq, 0),
                                ("write_images", write_images, False),
                                ("profile_batch", profile_batch, 0),
                                ("embeddings_freq", embeddings_freq, 0),
                                ("embeddings_metadata", embeddings_metadata, None)):
            if value != off and value is not None:
                raise ValueError(f"densitron's TensorBoard writes scalars only; `{arg}` is not "
                                 f"supported. Received: {arg}={value!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(
                update_freq, int) or update_freq < 1):
            raise ValueError("`update_freq` must be 'epoch', 'batch' or a positive integer. "
                             f"Received: update_freq={update_freq!r}")
        self.log_dir = path_arg("log_dir", log_dir)
        self.write_graph = write_graph
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq
        self._writers = {}
        self._global_train_batch = 0

    def _wants_batches(self):
        return self.update_freq != "epoch"

    def _writer(self, kind):
        if kind not in self._writers:
            sub = "train" if kind == "train" else "validation"
            self._writers[kind] = EventFileWriter(os.path.join(self.log_dir, sub))
        return self._writers[kind]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def _iterations(self):
        return int(getattr(getattr(self.model, "optimizer", None), "iterations", 0) or 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._epoch_iterations = self._iterations()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._batch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        # Batch scalars every update_freq batches, as Keras records them (none with "epoch").
        step = self._global_train_batch
        if self.update_freq == "epoch" or step % self.update_freq:
            return
        writer = self._writer("train")
        if self.write_steps_per_second:
            elapsed = max(time.time() - self._batch_start, 1e-9)
            writer.scalar("batch_steps_per_second", 1.0 / elapsed, step)
        for name, value in (logs or {}).items():
            if _scalar(value):
                writer.scalar(f"batch_{name}", value, step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in train:
            train["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second:
            elapsed = max(time.time() - self._epoch_start, 1e-9)
            train["steps_per_second"] = (self._iterations() - self._epoch_iterations) / elapsed
        writer = self._writer("train")
        for name, value in train.items():
            if _scalar(value):
                writer.scalar(f"epoch_{name}", value, epoch)
        writer.flush()
        if val:
            vw = self._writer("val")
            for name, value in val.items():
                if _scalar(value):
                    vw.scalar(f"epoch_{name}", value, epoch)
            vw.flush()

    def on_test_end(self, logs=None):
        # (fit's validation and evaluate both end here, as in Keras)
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is None or not logs:
            return
        vw = self._writer("val")
        for name, value in logs.items():
            if _scalar(value):
                vw.scalar(f"evaluation_{name}_vs_iterations", value, int(iterations))
        vw.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        for w in self._writers.values():
            w.close()
        self._writers = {}


def _scalar(value):
    """Logs TensorBoard takes as scalars (per-class arrays, F1Score(average=None), are not)."""
    return np.ndim(value) == 0 and isinstance(value, (int, float, np.integer, np.floating))
