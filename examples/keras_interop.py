#!/usr/bin/env python3
"""Runs and trains a Keras CNN in the engine: ``aidge.keras.wrap`` gives a Keras model whose forward and backward
run in Swift on the original model's own variables; Keras' ``fit`` trains it with Adam, next to the same model
trained by Keras itself.

Usage: .venv/bin/python examples/keras_interop.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import aidge.keras  # noqa: E402


def small_cnn() -> keras.Model:
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


keras.utils.set_random_seed(0)
model, reference = small_cnn(), small_cnn()
reference.set_weights(model.get_weights())
rng = np.random.default_rng(0)
images = rng.standard_normal((64, 16, 16, 3)).astype(np.float32)
labels = rng.integers(0, 10, 64)

engine = aidge.keras.wrap(model)                    # runs on model's own variables
difference = np.abs(engine.predict(images, verbose=0) - reference.predict(images, verbose=0)).max()
print(f"predict: max |engine - keras| = {difference:.2e}")

for m in (engine, reference):
    m.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
ours = engine.fit(images, labels, epochs=5, batch_size=16, shuffle=False, verbose=0).history["loss"]
theirs = reference.fit(images, labels, epochs=5, batch_size=16, shuffle=False, verbose=0).history["loss"]
for epoch, (a, b) in enumerate(zip(ours, theirs)):
    print(f"epoch {epoch}: loss {a:.6f} (Keras {b:.6f})")
# The original model holds the trained weights (BatchNormalization's moving statistics included).
difference = np.abs(model.predict(images, verbose=0) - reference.predict(images, verbose=0)).max()
print(f"after fit: max |model - keras| = {difference:.2e}")
