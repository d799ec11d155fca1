"""Name → model class registry; ``@register`` adds a class under its ``name``."""
from __future__ import annotations

import difflib

from recsys.errors import ConfigError

_MODELS: dict[str, type] = {}


def register(cls: type) -> type:
    key = cls.name.lower()
    if not key:
        raise ValueError(f"{cls.__qualname__} has no 'name'")
    if key in _MODELS and _MODELS[key] is not cls:
        raise ValueError(f"model name '{key}' is registered twice")
    _MODELS[key] = cls
    return cls


def get_model_class(name: str) -> type:
    key = str(name).lower()
    if key not in _MODELS:
        match = difflib.get_close_matches(key, list(_MODELS), n=1)
        hint = f" Did you mean '{match[0]}'?" if match else ""
        raise ConfigError(f"unknown model '{name}'.{hint} Available: {', '.join(sorted(_MODELS))}")
    return _MODELS[key]


def available_models() -> list[str]:
    return sorted(_MODELS)
