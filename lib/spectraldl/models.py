"""The networks of the 2017 thesis (Keras 2 functional API), sized from the training set's grid.

* ``cnn``: 3 blocks of 2 x Conv1D (kernel 3; 64, 128, 256 filters, valid padding, ReLU) and
  MaxPool 2, then 2 x Dense 512 with dropout 0.5 and a softmax over the classes
  (about 2.48 M parameters for 140 inputs, as in the thesis).
* ``mlp``: 5 x [Dense 512, ReLU, Dropout 0.5], softmax.

Outputs are in :data:`CLASSES` order (CONVENTIONS.md): [emission, absorption, double_peak].
"""
from __future__ import annotations

from .errors import UsageError

CLASSES = ("emission", "absorption", "double_peak")
#: Ondřejov label file codes -> output index.
CODE_TO_INDEX = {0: 0, 1: 1, 3: 2}
NAME_TO_CODE = {"emission": 0, "absorption": 1, "unknown": 2, "double_peak": 3}
ARCHS = ("cnn", "mlp")


def build_model(arch: str, n_inputs: int, n_classes: int = len(CLASSES), dropout: float = 0.5,
                seed: int | None = None):
    """Return an uncompiled ``tf.keras.Model`` for ``arch`` (``cnn`` or ``mlp``)."""
    import tensorflow as tf
    from tensorflow.keras import layers

    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    inp = layers.Input(shape=(n_inputs,), name="flux")
    if arch == "cnn":
        x = layers.Reshape((n_inputs, 1))(inp)
        for filters in (64, 128, 256):
            x = layers.Conv1D(filters, 3, activation="relu", padding="valid")(x)
            x = layers.Conv1D(filters, 3, activation="relu", padding="valid")(x)
            x = layers.MaxPooling1D(2)(x)
        x = layers.Flatten()(x)
        for _ in range(2):
            x = layers.Dense(512, activation="relu")(x)
            x = layers.Dropout(dropout)(x)
    elif arch == "mlp":
        x = inp
        for _ in range(5):
            x = layers.Dense(512, activation="relu")(x)
            x = layers.Dropout(dropout)(x)
    else:
        raise UsageError(f"unknown architecture {arch!r} (choose from {ARCHS})")
    out = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return tf.keras.Model(inp, out, name=f"spectraldl_{arch}")
