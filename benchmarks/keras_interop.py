#!/usr/bin/env python3
"""Keras interop benchmark: a CNN wrapped by ``aidge.keras.wrap`` (forward and backward in the engine) against the
same native Keras model (TensorFlow backend), both on the same threads, measured in the same run.

The model: Conv2D/BatchNormalization/ReLU/MaxPooling2D twice, GlobalAveragePooling2D and Dense, on 32x32x3 images.
It times ``predict_on_batch`` and one ``train_on_batch`` step (forward, cross-entropy, backward, SGD update by the
Keras optimizer), as medians over alternating rounds; the ratio is wrapped / native (below 1: faster). (``predict``
over several batches adds Keras' data pipeline, about 10 ms per batch here, to both sides alike.)

Usage:
    .venv/bin/python benchmarks/keras_interop.py [--threads 2] [--batch 32] [--steps 20] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import aidge  # noqa: E402
import aidge.keras  # noqa: E402
from timing import alternating  # noqa: E402


def cnn() -> keras.Model:
    x = inputs = keras.Input((32, 32, 3))
    for filters in (16, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    aidge.set_num_threads(args.threads)

    keras.utils.set_random_seed(0)
    native, copy = cnn(), cnn()
    copy.set_weights(native.get_weights())
    wrapped = aidge.keras.wrap(copy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    for model in (native, wrapped):
        model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def predict(model: keras.Model) -> Callable[[], object]:
        return lambda: model.predict_on_batch(x)

    def train_step(model: keras.Model) -> Callable[[], object]:
        return lambda: model.train_on_batch(x, y)

    results: dict[str, float] = {}
    for phase, make in (("predict", predict), ("training", train_step)):
        n, w = alternating(make(native), make(wrapped), args.steps, args.rounds)
        results[f"{phase}_keras_ms"], results[f"{phase}_aidge_ms"], results[f"{phase}_ratio"] = n, w, w / n
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"wrapped CNN vs native Keras {keras.__version__} (TensorFlow {tf.__version__}), batch {args.batch}, "
          f"{args.threads} threads")
    print(f"  predict {results['predict_aidge_ms']:7.2f} vs {results['predict_keras_ms']:7.2f} ms "
          f"({results['predict_ratio']:.2f}x)   training step {results['training_aidge_ms']:7.2f} vs "
          f"{results['training_keras_ms']:7.2f} ms ({results['training_ratio']:.2f}x)")


if __name__ == "__main__":
    main()
