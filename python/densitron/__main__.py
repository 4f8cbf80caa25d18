"""`python -m densitron`: trains the seed model (the Keras Functional example) on the UCI
handwritten digits shipped with the package and reports held-out accuracy and training time."""

import argparse
import sys
import time

import numpy as np

import densitron
from densitron.datasets import digits
from densitron.layers import Dense, Input
from densitron.models import Model


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m densitron",
        description="Train the seed MLP (64-64-10, relu, softmax, RMSprop) on the UCI digits.",
    )
    parser.add_argument("--epochs", type=_positive_int, default=40)
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="kernel threads (default: OpenMP's, honouring OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    args = parser.parse_args(argv)

    if args.threads is not None:
        densitron.set_num_threads(args.threads)
    densitron.utils.set_random_seed(args.seed)
    info = densitron.cpu_info()
    print(f"densitron {densitron.__version__} | ISA {info['isa']} | {info['num_threads']} threads")

    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 16.0
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 16.0
    labels = np.eye(10, dtype=np.float32)[y_train]
    test_labels = np.eye(10, dtype=np.float32)[y_test]
    print(f"UCI digits: {len(x_train)} training and {len(x_test)} held-out images of 8x8 pixels")

    inputs = Input(shape=(x_train.shape[1],))
    x = Dense(64, activation="relu")(inputs)
    x = Dense(64, activation="relu")(x)
    predictions = Dense(10, activation="softmax")(x)
    model = Model(inputs=inputs, outputs=predictions)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])

    start = time.perf_counter()
    model.fit(x_train, labels, batch_size=args.batch_size, epochs=args.epochs,
              verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, test_labels, verbose=0)
    print(f"training time: {seconds:.3f} s for {args.epochs} epochs "
          f"({seconds / args.epochs * 1e3:.1f} ms per epoch)")
    print(f"test loss: {loss:.4f}")
    print(f"test accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
