"""How settings and numbers read, the same in the terminal, the report, the mail and Jenkins
build descriptions: ``FC [128, 64], lr 3e-4, batch 32``."""

from __future__ import annotations

import math
from typing import Any

SETTING_LABELS = {"fc_layers": "FC", "learning_rate": "lr", "epochs": "epochs", "batch_size": "batch"}


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def format_sci(value: float) -> str:
    """Compact scientific notation: 0.0003 -> ``3e-4``, 0.00025 -> ``2.5e-4``, 0.01 -> ``1e-2``."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float) and is_number(value):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return format_sci(value)
        return f"{value:.4g}"
    return str(value)


def ordered_setting_names(names: list[str]) -> list[str]:
    first = [n for n in SETTING_LABELS if n in names]
    return first + sorted(n for n in names if n not in SETTING_LABELS)


def settings_parts(settings: dict[str, Any] | None) -> list[str]:
    """One short text per setting, canonical ones first: ``["FC [128, 64]", "lr 3e-4"]``."""
    parts: list[str] = []
    if not settings:
        return parts
    for name in ordered_setting_names(list(settings)):
        value = settings[name]
        if name == "fc_layers":
            parts.append(f"FC {format_value(value)}")
        elif name == "learning_rate" and is_number(value):
            parts.append(f"lr {format_sci(float(value))}")
        else:
            parts.append(f"{SETTING_LABELS.get(name, name)} {format_value(value)}")
    return parts


def format_settings(settings: dict[str, Any] | None, sep: str = ", ") -> str:
    """``{"fc_layers": [128, 64], "learning_rate": 3e-4}`` -> ``FC [128, 64], lr 3e-4``;
    ``as written`` when empty."""
    return sep.join(settings_parts(settings)) if settings else "as written"


def diff_line_kind(line: str) -> str:
    """What a unified-diff line is: ``file`` (---/+++), ``hunk`` (@@), ``add``, ``del`` or
    ``context``. The report and the mail colour the winning diff by it."""
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "context"
