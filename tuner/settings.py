"""Settings: what the tuner changes in a script, as a JSON-able dict with canonical names.

``fc_layers`` (hidden Dense units, in order), ``learning_rate``, ``epochs``, ``batch_size``;
for scikit-learn scripts, the estimator's keywords (``C``, ``n_estimators``, ...). An empty
dict means "the script as written". Formatting for people is :mod:`tuner.fmt`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

CANONICAL = ("fc_layers", "learning_rate", "epochs", "batch_size")
_EXAMPLE = '\'{"fc_layers": [128, 64], "learning_rate": 0.0003}\''


def parse_settings_json(text: str, source: str = "--settings") -> dict[str, Any]:
    """Settings given as JSON text, or as ``@file.json`` (the file holds the JSON).

    Raises:
        ConfigError: naming ``source``: the file cannot be read, the text is not JSON, or not
            an object of setting name -> value.
    """
    if text.startswith("@"):
        from tuner.files import read_text

        path = Path(text[1:])
        source = str(path)
        text = read_text(path, what="settings file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg} at column {exc.colno}); give an object "
                          f"such as {_EXAMPLE}") from None
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a JSON object of setting name -> value, such as {_EXAMPLE}, "
                          f"not {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        raise ConfigError(f"{source}: {bad[0]!r} is not a setting name")
    return data
