"""Search strategies behind one interface (:class:`Strategy`: ``ask``/``tell``) and a
name -> class registry. ``get_strategy("nope", ...)`` lists the valid names."""

from __future__ import annotations

import importlib
from typing import Any

from tuner.errors import SearchError
from tuner.search.base import Observation, Strategy
from tuner.search.space import Param, SearchSpace, build_space

__all__ = ["Observation", "Param", "SearchSpace", "Strategy", "STRATEGIES", "build_space", "get_strategy",
           "strategy_class"]

# name -> "module:Class"; modules load on first use (tpe imports Optuna)
STRATEGIES: dict[str, str] = {
    "auto": "tuner.search._auto:Auto",
    "ladder": "tuner.search._ladder:Ladder",
    "random": "tuner.search._random:RandomSearch",
    "tpe": "tuner.search._tpe:TPE",
}


def strategy_class(name: str) -> type[Strategy]:
    target = STRATEGIES.get(name)
    if target is None:
        raise SearchError(f"strategy: unknown strategy '{name}'; valid strategies: {', '.join(STRATEGIES)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_strategy(name: str, space: SearchSpace, **options: Any) -> Strategy:
    return strategy_class(name)(space, **options)
