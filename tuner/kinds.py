"""The image kinds a training script is routed to, in one place.

``cnn`` and ``ann`` train with TensorFlow/Keras (and may use a GPU); ``regression`` trains with
scikit-learn. Classification (:mod:`tuner.classify`) decides the kind; runners, images and the
CLI only name it."""

from __future__ import annotations

KINDS = ("cnn", "ann", "regression")
KERAS_KINDS = ("cnn", "ann")  # TensorFlow/Keras: epochs, checkpoints, heartbeats, GPUs
SKLEARN_KINDS = ("regression",)


def check_kind(kind: str, what: str = "kind") -> str:
    """``kind`` if it is one of :data:`KINDS`.

    Raises:
        ConfigError: naming the valid kinds.
    """
    if kind not in KINDS:
        from tuner.errors import ConfigError

        raise ConfigError(f"{what}: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind
