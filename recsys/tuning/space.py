"""Search spaces: dotted config paths → Optuna distributions, with conditional parameters.

A study file's ``space`` maps a dotted run-config path to a parameter spec::

    train.lr:          {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    model.n_layers:    {type: int, low: 1, high: 4}            # step 1 unless given
    train.optimizer:   {type: categorical, choices: [adam, adamw]}
    model.item_modality_weights:                                # lists and mappings work too
                       {type: categorical, choices: [{image: 0.1, text: 0.9}, {image: 0.0, text: 1.0}]}
    train.weight_decay: {type: float, low: 1.0e-6, high: 1.0e-2, log: true,
                         when: {train.optimizer: adamw}}

``when`` makes a parameter conditional: it is sampled only in trials where every named
parameter (declared earlier in the file, categorical or int) took one of the listed values;
otherwise the key keeps its base-config value. Optuna stores categorical choices that are lists
or mappings as their JSON text; :meth:`SearchSpace.decode` turns stored parameters back into
config values. Every path is checked against the run-config schema through
:func:`recsys.config.resolve`, so a typo is an error listing the valid keys.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from recsys.compose import resolve
from recsys.errors import ConfigError

_SPEC_KEYS = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


@dataclass(frozen=True)
class Param:
    """One searched parameter: its dotted config path, distribution and activation condition."""

    path: str
    distribution: BaseDistribution
    when: dict[str, tuple] = field(default_factory=dict)
    encoded: bool = False  # categorical choices stored as JSON text (lists, mappings)

    @property
    def kind(self) -> str:
        if isinstance(self.distribution, FloatDistribution):
            return "float"
        if isinstance(self.distribution, IntDistribution):
            return "int"
        return "categorical"

    def example(self) -> Any:
        """A value inside the distribution (used to validate the path against the schema)."""
        if isinstance(self.distribution, CategoricalDistribution):
            return self.decode(self.distribution.choices[0])
        return self.distribution.low

    def decode(self, stored: Any) -> Any:
        """The config value of a value as Optuna stores it."""
        return json.loads(stored) if self.encoded else stored

    def possible(self, value: Any) -> bool:
        """Whether ``value`` (a config value) can be drawn; floats never qualify (conditions)."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return (json.dumps(value, sort_keys=True) if self.encoded else value) in dist.choices
        if isinstance(dist, IntDistribution):
            return (isinstance(value, int) and not isinstance(value, bool) and dist.low <= value <= dist.high
                    and (value - dist.low) % dist.step == 0)
        return False

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        dist = self.distribution
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(self.path, dist.low, dist.high, log=dist.log, step=dist.step)
        if isinstance(dist, IntDistribution):
            return trial.suggest_int(self.path, dist.low, dist.high, log=dist.log, step=dist.step)
        return self.decode(trial.suggest_categorical(self.path, dist.choices))


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 0.1}`` → ``{"train": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    return out


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    return value


def _parse_distribution(spec: Mapping[str, Any], where: str) -> BaseDistribution:
    kind = spec.get("type")
    if kind not in _SPEC_KEYS:
        raise ConfigError(f"{where}: 'type' must be one of float, int, categorical; got {kind!r}")
    unknown = set(spec) - _SPEC_KEYS[kind]
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} for type {kind}; "
                          f"valid fields: {', '.join(sorted(_SPEC_KEYS[kind]))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: 'choices' must be a non-empty list")
        if any(isinstance(c, (list, Mapping)) for c in choices):
            try:
                return CategoricalDistribution([json.dumps(c, sort_keys=True) for c in choices])
            except TypeError as exc:
                raise ConfigError(f"{where}: choices must be plain YAML values: {exc}") from None
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise ConfigError(f"{where}: choices must be YAML values (null, bool, number, string, list, "
                              f"mapping); got {bad[0]!r}")
        return CategoricalDistribution(choices)
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{where}: '{key}' is required for type {kind}")
    low, high = _number(spec["low"], where, "low"), _number(spec["high"], where, "high")
    log = bool(spec.get("log", False))
    step = spec.get("step")
    if step is not None:
        step = _number(step, where, "step")
    if low > high or (kind == "float" and low == high):
        raise ConfigError(f"{where}: 'low' ({low}) must be below 'high' ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale range needs low > 0, got {low}")
    if log and step is not None and step != 1:
        raise ConfigError(f"{where}: 'step' cannot be combined with log: true")
    if kind == "int":
        if any(not isinstance(v, int) for v in (low, high)) or (step is not None and not isinstance(step, int)):
            raise ConfigError(f"{where}: an int parameter needs integer low/high/step")
        return IntDistribution(low, high, log=log, step=int(step or 1))
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: 'step' must be positive, got {step}")
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


class SearchSpace:
    """An ordered list of :class:`Param`; ``suggest`` samples the active ones for a trial."""

    def __init__(self, params: list[Param]) -> None:
        self.params = params

    @classmethod
    def parse(cls, raw: Any, where: str = "space") -> "SearchSpace":
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(f"{where} must be a non-empty mapping of dotted config path → parameter spec")
        params: list[Param] = []
        declared: dict[str, Param] = {}
        for path, spec in raw.items():
            at = f"{where}.{path}"
            if not isinstance(spec, Mapping):
                raise ConfigError(f"{at} must be a mapping with 'type' (float, int or categorical)")
            dist = _parse_distribution(spec, at)
            when = cls._parse_when(spec.get("when"), declared, at)
            encoded = spec["type"] == "categorical" and any(isinstance(c, (list, Mapping)) for c in spec["choices"])
            param = Param(str(path), dist, when, encoded)
            params.append(param)
            declared[param.path] = param
        return cls(params)

    @staticmethod
    def _parse_when(raw: Any, declared: Mapping[str, Param], where: str) -> dict[str, tuple]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(f"{where}.when must map parameter paths to a value or a list of values")
        when: dict[str, tuple] = {}
        for other, values in raw.items():
            if other not in declared:
                raise ConfigError(f"{where}.when refers to '{other}', which is not a parameter declared above it; "
                                  f"declared so far: {', '.join(declared) or 'none'}")
            parent = declared[other]
            values = tuple(values) if isinstance(values, list) else (values,)
            if parent.kind == "float":
                raise ConfigError(f"{where}.when: '{other}' is a float parameter; conditions need categorical or int")
            for value in values:
                if not parent.possible(value):
                    raise ConfigError(f"{where}.when: {value!r} is not a possible value of '{other}'")
            when[other] = values
        return when

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.params]

    def all_continuous(self) -> bool:
        return all(p.kind == "float" and not p.when for p in self.params)

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stored trial parameters (``FrozenTrial.params``) → dotted path → config value."""
        by_path = {p.path: p for p in self.params}
        return {path: by_path[path].decode(value) if path in by_path else value for path, value in params.items()}

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample every active parameter, in file order; returns dotted path → value."""
        values: dict[str, Any] = {}
        for param in self.params:
            if all(other in values and values[other] in allowed for other, allowed in param.when.items()):
                values[param.path] = param.suggest(trial)
        return values

    def validate(self, base: Mapping[str, Any]) -> None:
        """Check every path is a value key of the run config built from ``base``.

        First the path is walked through the config resolved with the parameter's conditions
        (their first values): a path that goes below a value, or names a whole section without
        mapping choices (merged into the section key by key), is rejected here. Then the
        parameter is tried alone through :func:`resolve`, which rejects unknown keys (naming
        the valid ones) and values that cannot run.
        """
        for param in self.params:
            conditions = {other: allowed[0] for other, allowed in param.when.items()}
            structure = self._resolve(param, base, conditions)
            node: Any = structure
            parts = param.path.split(".")
            for depth, part in enumerate(parts):
                if not isinstance(node, Mapping):
                    raise ConfigError(f"search-space key '{param.path}': '{'.'.join(parts[:depth])}' is a value, "
                                      "not a section")
                if part not in node:
                    break                      # an unknown key: resolving the example names the closest one
                node = node[part]
            else:
                if isinstance(node, Mapping) and not isinstance(param.example(), Mapping):
                    raise ConfigError(f"search-space key '{param.path}' names a section, not a value; valid keys "
                                      f"under it: {', '.join(f'{param.path}.{k}' for k in node)}")
            self._resolve(param, base, {**conditions, param.path: param.example()})

    @staticmethod
    def _resolve(param, base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """``resolve(base, values)``, its errors prefixed with the search-space key."""
        try:
            return resolve(base, nest(values))
        except (ConfigError, KeyError) as exc:
            message = exc.args[0] if exc.args else exc
            raise ConfigError(f"search-space key '{param.path}': {message}") from None
