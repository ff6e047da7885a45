"""The pipeline's configuration: which CRM exports go to which data extensions, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def _entry(raw: dict[str, Any], where: str) -> CrmExportConfig:
    try:
        entry = CrmExportConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
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
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    exports = tuple(
        _entry(e, f"{path.name}: crm_exports[{i}]") for i, e in enumerate(raw.get("crm_exports", []))
    )
    keys = [e.de_key.lower() for e in exports]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path.name}: two crm_exports use the same de_key")
    web = WebAnalyticsConfig(**raw["web_analytics"]) if raw.get("web_analytics") else WebAnalyticsConfig()
    return PipelineConfig(exports, web)


@cache
def default_config() -> PipelineConfig:
    return load_config()
