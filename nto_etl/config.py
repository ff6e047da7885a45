"""The pipeline's configuration: which CRM exports go to which data extensions, and how."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import pandera.pandas as pa
import yaml

from nto_etl.contracts import MODELS
from nto_etl.mce.imports import UPDATE_TYPES

DEFAULT_CONFIG = Path(__file__).with_name("pipeline.yaml")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class CrmExportConfig:
    dataset: str
    de_key: str
    de_name: str
    update_type: str = "AddAndUpdate"
    allow_overwrite: bool = False
    max_reject_share: float = 0.05
    delta: bool = True

    @property
    def model(self) -> type[pa.DataFrameModel]:
        return MODELS[self.dataset]

    @property
    def file_prefix(self) -> str:
        return self.dataset


@dataclass(frozen=True)
class WebAnalyticsConfig:
    dataset: str = "web_page_views"
    file_prefix: str = "page_views"
    max_reject_share: float = 0.05

    @property
    def model(self) -> type[pa.DataFrameModel]:
        return MODELS[self.dataset]


@dataclass(frozen=True)
class PipelineConfig:
    crm_exports: tuple[CrmExportConfig, ...]
    web_analytics: WebAnalyticsConfig = field(default_factory=WebAnalyticsConfig)

    def export(self, dataset: str) -> CrmExportConfig:
        for e in self.crm_exports:
            if e.dataset == dataset:
                return e
        raise KeyError(dataset)


# What YAML must give for each annotated type: `allow_overwrite: "false"` is text, and would be true.
YAML_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "bool": (bool,), "float": (int, float)}


def _typed(cls: type[Any], raw: Any, where: str) -> Any:
    """`cls(**raw)`, refusing a mapping that is not one, an unknown or missing key, or a value
    of the wrong type, with where it is."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {raw!r}")
    for f in fields(cls):
        value = raw.get(f.name)
        wanted = YAML_TYPES[str(f.type)]
        if f.name in raw and (
            not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool))
        ):
            raise ConfigError(
                f"{where}: {f.name} must be {' or '.join(t.__name__ for t in wanted)}, got {value!r}"
            )
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _entry(raw: Any, where: str) -> CrmExportConfig:
    entry: CrmExportConfig = _typed(CrmExportConfig, raw, where)
    if entry.dataset not in MODELS:
        raise ConfigError(f"{where}: unknown dataset {entry.dataset!r}; known: {', '.join(MODELS)}")
    if len(entry.de_key) > 36:
        raise ConfigError(f"{where}: de_key {entry.de_key!r} is longer than 36 characters")
    if entry.update_type not in UPDATE_TYPES:
        raise ConfigError(
            f"{where}: update_type {entry.update_type!r} is not one of {', '.join(UPDATE_TYPES)}"
        )
    if entry.update_type == "Overwrite" and not entry.allow_overwrite:
        raise ConfigError(
            f"{where}: update_type Overwrite erases previously imported rows; set allow_overwrite: true"
        )
    if not 0 <= entry.max_reject_share <= 1:
        raise ConfigError(f"{where}: max_reject_share must be between 0 and 1")
    return entry


def load_config(path: Path = DEFAULT_CONFIG) -> PipelineConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("crm_exports", []), list):
        raise ConfigError(
            f"{path.name}: expected crm_exports: a list of exports, and web_analytics: settings"
        )
    exports = tuple(
        _entry(e, f"{path.name}: crm_exports[{i}]") for i, e in enumerate(raw.get("crm_exports", []))
    )
    for name, values in (
        ("de_key", [e.de_key.lower() for e in exports]),
        ("dataset", [e.dataset for e in exports]),
    ):
        if repeated := sorted({v for v in values if values.count(v) > 1}):
            raise ConfigError(f"{path.name}: two crm_exports use the same {name} ({', '.join(repeated)})")
    web = (
        _typed(WebAnalyticsConfig, raw["web_analytics"], f"{path.name}: web_analytics")
        if raw.get("web_analytics")
        else WebAnalyticsConfig()
    )
    if web.dataset not in MODELS:
        raise ConfigError(
            f"{path.name}: web_analytics: unknown dataset {web.dataset!r}; known: {', '.join(MODELS)}"
        )
    return PipelineConfig(exports, web)


@cache
def default_config() -> PipelineConfig:
    return load_config()
