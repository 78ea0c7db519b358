"""aidge.keras: TensorFlow tensors without copies, and Keras models wrapped by the engine checked against Keras
itself (predict, and fit's loss history from the same initial weights)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import aidge  # noqa: E402
import aidge.keras  # noqa: E402


def dense_mlp() -> keras.Model:
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(12, activation="tanh"), keras.layers.Dense(3)])


def functional_cnn() -> keras.Model:
    x = inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(6, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def lstm_classifier() -> keras.Model:
    return keras.Sequential([keras.Input((7, 5)), keras.layers.LSTM(12), keras.layers.Dense(3)])


def gru_classifier() -> keras.Model:
    return keras.Sequential([keras.Input((7, 5)), keras.layers.GRU(10, return_sequences=True),
                             keras.layers.GRU(8), keras.layers.Dense(3)])


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(12, activation="sigmoid")
        self.out = keras.layers.Dense(3)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.out(self.hidden(x) * 2.0 + x[:, :1])


def subclassed() -> keras.Model:
    model = Subclassed()
    model(np.zeros((1, 10), np.float32))
    return model


MODELS = {"dense_mlp": (dense_mlp, (10,)), "functional_cnn": (functional_cnn, (10, 10, 3)),
          "lstm_classifier": (lstm_classifier, (7, 5)), "gru_classifier": (gru_classifier, (7, 5)),
          "subclassed": (subclassed, (10,))}
SIGNATURE = {"subclassed": [tf.TensorSpec((None, 10), tf.float32)]}


def pair(name: str, seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """Two copies of a model with the same weights: the reference, and the one to wrap."""
    make = MODELS[name][0]
    keras.utils.set_random_seed(seed)
    reference, model = make(), make()
    model.set_weights(reference.get_weights())
    return reference, model


def data(name: str, count: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((count,) + MODELS[name][1]).astype(np.float32)
    return x, rng.integers(0, 3, count)


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    bound = 1e-5 + 1e-5 * float(np.abs(expected).max())
    difference = float(np.abs(actual - expected).max())
    assert difference <= bound, f"{what}: max |d| = {difference:.3g} > {bound:.3g}"


@pytest.mark.parametrize("name", MODELS)
def test_predict_call_and_evaluate_match_keras(name: str) -> None:
    reference, model = pair(name)
    wrapped = aidge.keras.wrap(model, input_signature=SIGNATURE.get(name))
    x, y = data(name)
    assert_close(wrapped.predict(x, verbose=0), reference.predict(x, verbose=0), "predict")
    assert_close(wrapped(x).numpy(), reference(x).numpy(), "__call__")
    for m in (reference, wrapped):
        m.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert_close(np.float32(wrapped.evaluate(x, y, verbose=0)), np.float32(reference.evaluate(x, y, verbose=0)),
                 "evaluate")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", MODELS)
def test_fit_matches_keras(name: str, optimizer: str) -> None:
    """Five epochs from the same weights give Keras' loss history, and (SGD) the original model holds the trained
    weights, BatchNormalization's moving statistics included."""
    reference, model = pair(name, seed=1)
    wrapped = aidge.keras.wrap(model, input_signature=SIGNATURE.get(name))
    x, y = data(name)
    for m in (reference, wrapped):
        opt = keras.optimizers.SGD(0.05, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(0.01)
        m.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    theirs = reference.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0).history["loss"]
    ours = wrapped.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0).history["loss"]
    tolerance = 1e-4 if optimizer == "sgd" else 1e-3
    np.testing.assert_allclose(ours, theirs, rtol=tolerance, err_msg="loss history")
    assert theirs[-1] < theirs[0], "the reference trained"
    if optimizer == "adam":
        return  # Adam's first steps act as a sign function on tiny gradients (a bias before BatchNorm gets ~1e-9)
    for variable, expected in zip(model.weights, reference.weights):
        scale = float(np.abs(expected.numpy()).max())
        np.testing.assert_allclose(variable.numpy(), expected.numpy(), rtol=0, atol=1e-4 * scale + 1e-6,
                                   err_msg=variable.path)


def test_wrap_uses_the_model_variables_and_leaves_its_structure() -> None:
    reference, model = pair("lstm_classifier", seed=2)
    config = model.get_config()
    wrapped = aidge.keras.wrap(model)
    assert model.get_config() == config
    assert not model.layers[0].unroll, "the recurrent layer gets its setting back"
    assert [id(v) for v in wrapped.trainable_variables] == [id(v) for v in model.trainable_variables]
    x, y = data("lstm_classifier")
    wrapped.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    wrapped.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    assert_close(model.predict(x, verbose=0), wrapped.predict(x, verbose=0), "the original model after fit")


def test_save_and_load_weights(tmp_path: os.PathLike[str]) -> None:
    _, model = pair("functional_cnn", seed=3)
    wrapped = aidge.keras.wrap(model)
    x, y = data("functional_cnn")
    wrapped.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(True))
    wrapped.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = os.path.join(tmp_path, "trained.weights.h5")
    model.save_weights(path)
    fresh = functional_cnn()
    fresh.load_weights(path)
    assert_close(fresh.predict(x, verbose=0), wrapped.predict(x, verbose=0), "a fresh model with the saved weights")
    # And the other way: weights loaded into the original model are what the wrapper runs.
    other = functional_cnn()
    other.save_weights(path)
    model.load_weights(path)
    assert_close(wrapped.predict(x, verbose=0), other.predict(x, verbose=0), "the wrapper after load_weights")


def test_composes_with_keras_layers() -> None:
    """Keras layers before and after the wrapped model train as they do around the original: the gradient
    reaches the layer before through the engine's input gradient."""
    keras.utils.set_random_seed(4)
    inner_reference, inner = dense_mlp(), dense_mlp()
    inner.set_weights(inner_reference.get_weights())

    def around(core: keras.Model) -> keras.Model:
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(10, name="before"), core,
                                 keras.layers.Dense(2, name="after")])

    keras.utils.set_random_seed(5)
    reference = around(inner_reference)
    composed = around(aidge.keras.wrap(inner))
    composed.set_weights(reference.get_weights())
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.standard_normal((40, 2)).astype(np.float32)
    for m in (reference, composed):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    theirs = reference.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    ours = composed.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    before = [layer for layer in composed.layers if layer.name == "before"][0]
    expected = [layer for layer in reference.layers if layer.name == "before"][0]
    np.testing.assert_allclose(before.kernel.numpy(), expected.kernel.numpy(), atol=1e-5)


def test_bad_input_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _, model = pair("dense_mlp")
    wrapped = aidge.keras.wrap(model)
    with pytest.raises(ValueError, match="shape"):
        wrapped(np.zeros((4, 9), np.float32))
    with pytest.raises(ValueError, match="takes 1 inputs"):
        wrapped([np.zeros((4, 10), np.float32), np.zeros((4, 10), np.float32)])
    with pytest.raises(TypeError, match="keras.Model"):
        aidge.keras.wrap(lambda x: x)
    unbuilt = Subclassed()
    with pytest.raises(ValueError, match="input_signature"):
        aidge.keras.wrap(unbuilt)
    inverse = keras.Sequential([keras.Input((3, 3)), keras.layers.Lambda(lambda m: tf.linalg.inv(m))])
    with pytest.raises(NotImplementedError, match="MatrixInverse"):
        aidge.keras.wrap(inverse)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="TensorFlow backend"):
        aidge.keras.wrap(model)
    # The session stays usable.
    monkeypatch.undo()
    assert wrapped(np.zeros((2, 10), np.float32)).shape == (2, 3)


DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
          np.uint32, np.uint64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_tensors_share_memory_both_ways(dtype: type) -> None:
    values = (np.arange(24) % 5).reshape(2, 3, 4).astype(dtype)
    t = tf.constant(values)
    a = aidge.keras.from_tf(t)
    view = np.asarray(a)
    assert view.dtype == values.dtype and view.shape == values.shape
    np.testing.assert_array_equal(view, values)
    b = aidge.keras.to_tf(a)
    assert b.dtype == t.dtype
    np.testing.assert_array_equal(b.numpy(), values)
    # One buffer behind all three: a write through the engine's view shows in both TensorFlow tensors.
    view[1, 2, 3] = 1 if dtype is not np.bool_ else True
    changed = values.copy()
    changed[1, 2, 3] = view[1, 2, 3]
    np.testing.assert_array_equal(t.numpy(), changed)
    np.testing.assert_array_equal(b.numpy(), changed)


def test_strided_views_are_copied_and_variables_are_read() -> None:
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = aidge.from_dlpack(source.T)
    assert not tensor.is_contiguous
    t = aidge.keras.to_tf(tensor)
    np.testing.assert_array_equal(t.numpy(), source.T)
    source[0, 1] = -1  # a copy: TensorFlow takes no strided views
    assert t.numpy()[1, 0] == 1
    variable = keras.Variable(np.full((2, 2), 3.0, np.float32))
    np.testing.assert_array_equal(np.asarray(aidge.keras.from_tf(variable)), np.full((2, 2), 3.0))
    with pytest.raises(TypeError, match="TensorFlow tensor"):
        aidge.keras.from_tf(np.zeros(3))


def two_in_two_out() -> keras.Model:
    a, b = keras.Input((6,), name="a"), keras.Input((4,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    return keras.Model([a, b], [keras.layers.Dense(2, name="p")(h), keras.layers.Dense(3, name="q")(h * 0.5 + 1)])


def test_several_inputs_and_outputs() -> None:
    keras.utils.set_random_seed(6)
    reference, model = two_in_two_out(), two_in_two_out()
    model.set_weights(reference.get_weights())
    wrapped = aidge.keras.wrap(model)
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((40, 6)).astype(np.float32), rng.standard_normal((40, 4)).astype(np.float32)]
    ys = [rng.standard_normal((40, 2)).astype(np.float32), rng.standard_normal((40, 3)).astype(np.float32)]
    ours, theirs = wrapped.predict(xs, verbose=0), reference.predict(xs, verbose=0)
    assert len(ours) == 2
    for k in range(2):
        assert_close(ours[k], theirs[k], f"output {k}")
    for m in (reference, wrapped):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss=["mse", "mse"])
    history = [m.fit(xs, ys, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
               for m in (wrapped, reference)]
    np.testing.assert_allclose(history[0], history[1], rtol=1e-4)


def test_a_model_never_built_is_built_from_the_signature() -> None:
    keras.utils.set_random_seed(9)
    model = Subclassed()
    assert not model.built
    wrapped = aidge.keras.wrap(model, input_signature=[tf.TensorSpec((None, 10), tf.float32)])
    x, _ = data("subclassed")
    assert model.built and len(model.trainable_variables) == 4
    assert_close(wrapped.predict(x, verbose=0), model.predict(x, verbose=0), "predict")


def test_training_forwards_without_backward_keep_bounded_memory() -> None:
    _, model = pair("dense_mlp", seed=10)
    wrapped = aidge.keras.wrap(model)
    x, _ = data("dense_mlp", 8)
    with tf.GradientTape() as tape:
        first = wrapped(x, training=True)
        for _ in range(aidge.keras._KEPT_RECORDINGS + 6):
            wrapped(x, training=True)
        loss = tf.reduce_sum(first)
    assert len(wrapped._training.recordings) == aidge.keras._KEPT_RECORDINGS
    with pytest.raises(Exception, match="activations are gone"):
        tape.gradient(loss, wrapped.trainable_variables)
    with tf.GradientTape() as tape:  # a forward with its backward right after works as ever
        loss = tf.reduce_sum(wrapped(x, training=True))
    grads = tape.gradient(loss, wrapped.trainable_variables)
    assert all(g is not None for g in grads)
