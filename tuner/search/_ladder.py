"""``ladder``: the classic pipeline's behaviour, made explicit.

Each retry starts from the previous trial's settings and makes the next move in a fixed
cycle: widen the FC layers (x2), add an FC layer, move the learning rate toward 1e-3.
A move that changes nothing (already at the edge of the space) is skipped. For
scikit-learn scripts the cycle walks each keyword one rung toward the middle of its range."""

from __future__ import annotations

import math
from typing import Any

from tuner.search.base import Observation, Strategy
from tuner.search.space import Param

TARGET_LR = 1e-3


def _widen(p: Param, fc: list[int]) -> list[int]:
    if not fc:
        return p.clip([64])
    return p.clip([u * 2 for u in fc])


def _deepen(p: Param, fc: list[int]) -> list[int]:
    if len(fc) >= int(p.high or 0):
        return fc
    nxt = max(16, (fc[-1] // 2) if fc else 64)
    return p.clip(fc + [nxt])


# the learning rates people write: 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, ...
LR_GRID = sorted(float(f"{m}e{e}") for e in range(-7, 1) for m in (1, 3))


def _move_lr(p: Param, lr: float | None) -> float:
    """One step along the 1-3-10 grid toward 1e-3 (from 1e-3 itself: down to 3e-4); from a
    rate known only when the script runs (None), 1e-3 itself."""
    if lr is None:
        return p.clip(TARGET_LR)
    i = min(range(len(LR_GRID)), key=lambda k: abs(math.log10(LR_GRID[k]) - math.log10(lr)))
    t = LR_GRID.index(TARGET_LR)
    j = i + 1 if i < t else i - 1
    return p.clip(LR_GRID[j])


def _toward_middle(p: Param, value: Any) -> Any:
    if p.kind not in ("int", "float") or p.low is None or p.high is None or value is None:
        return value
    if p.log and p.low > 0 and value > 0:
        mid = math.sqrt(p.low * p.high)
        nxt = value * 3.16 if value < mid else value / 3.16
        if (value - mid) * (nxt - mid) < 0:
            nxt = mid
    else:
        mid = (p.low + p.high) / 2
        step = (p.high - p.low) / 4
        nxt = value + step if value < mid else value - step
    return p.clip(nxt)


class Ladder(Strategy):
    name = "ladder"
    description = "the classic pipeline: widen FC layers, add one, move the learning rate, in turn"

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        current = dict(history[-1].settings)
        moves = self._moves()
        if not moves:
            return None
        start = (len(history) - 1 + attempt) % len(moves)
        for i in range(len(moves)):
            name, move = moves[(start + i) % len(moves)]
            new = move(current)
            if new != current:
                return new
        return None

    def _moves(self) -> list[tuple[str, Any]]:
        params = self.space.params
        moves: list[tuple[str, Any]] = []
        if "fc_layers" in params:
            p = params["fc_layers"]
            moves.append(("widen", lambda s, p=p: {**s, "fc_layers": _widen(p, list(s.get("fc_layers") or []))}))
            moves.append(("deepen", lambda s, p=p: {**s, "fc_layers": _deepen(p, list(s.get("fc_layers") or []))}))
        if "learning_rate" in params and "fc_layers" in params:
            p = params["learning_rate"]
            moves.append(("lr", lambda s, p=p: {**s, "learning_rate": _move_lr(p, s["learning_rate"])}))
        if moves:
            return moves
        for name, p in params.items():
            moves.append((name, lambda s, name=name, p=p: {**s, name: _toward_middle(p, s.get(name, p.low))}))
        return moves
