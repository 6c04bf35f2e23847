"""How settings and numbers read, the same in the terminal, the report, the mail and Jenkins
build descriptions: ``FC [128, 64], lr 3e-4, batch 32``."""

from __future__ import annotations

import math
import re
from typing import Any

LOG_TAIL_LINES = 50  # the lines of a failed trial's log that the summary, report and mail show
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

METRIC_DECIMALS = 4  # a score, everywhere it is shown: 0.93 -> 0.9300 (console, report, mail)
SETTING_LABELS = {"fc_layers": "FC", "learning_rate": "lr", "epochs": "epochs", "batch_size": "batch"}
# the canonical setting names (tuner.settings.CANONICAL), in the order people read them


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def format_duration(seconds: Any, missing: str = "—") -> str:
    """A duration, one way everywhere (console, report, mail): ``41.0 s``, ``13 min 32 s``,
    ``2 h 05 min``; ``missing`` when it is unknown (not a finite number, or negative)."""
    if not is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        return missing
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(total // 60, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


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


def format_setting_value(name: str, value: Any) -> str:
    """One setting's value as everywhere: a learning rate in compact scientific notation
    (``3e-4``), anything else by :func:`format_value`."""
    if name == "learning_rate" and is_number(value):
        return format_sci(float(value))
    if value is None and name in SETTING_LABELS:
        return "as written"  # decided when the script runs (sys.argv, a file); max_depth=None is a value
    return format_value(value)


def settings_parts(settings: dict[str, Any] | None) -> list[str]:
    """One short text per setting, canonical ones first: ``["FC [128, 64]", "lr 3e-4"]``."""
    if not settings:
        return []
    return [f"{SETTING_LABELS.get(name, name)} {format_setting_value(name, settings[name])}"
            for name in ordered_setting_names(list(settings))]


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


def clean_log(text: str, lines: int = LOG_TAIL_LINES, width: int = 400) -> str:
    """The last ``lines`` lines of a log as a terminal shows them: colour codes and control
    characters dropped, of a line rewritten with carriage returns (Keras progress bars) only its
    last state, trailing blank lines trimmed, each line cut at ``width`` characters."""
    shown = []
    for line in _ANSI.sub("", text or "").split("\n"):
        line = _CONTROL.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]).rstrip()
        shown.append(line if len(line) <= width else line[: width - 1] + "…")
    while shown and not shown[-1].strip():
        shown.pop()
    return "\n".join(shown[-lines:])
