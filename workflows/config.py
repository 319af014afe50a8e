"""Typed, strict configuration for every step, built once on the client.

Unknown keys and wrong types are errors (pydantic ``extra="forbid"``); the
same models validate CLI options and workflow files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class IngestConfig(StrictModel):
    chunks: str | None = None
    iline_byte: int = Field(189, ge=1, le=240)
    xline_byte: int = Field(193, ge=1, le=240)
    endian: Literal["auto", "big", "little"] = "auto"
    domain: Literal["time", "depth"] = "time"
    nonfinite: Literal["keep", "refuse"] = "keep"
    sample_interval: float | None = Field(None, gt=0)
    overwrite: bool = False


class ExportConfig(StrictModel):
    variable: str = "amplitude"
    overwrite: bool = False


class SynthConfig(StrictModel):
    shape: tuple[int, int, int] = (96, 96, 128)
    seed: int = 0
    overwrite: bool = False


class LabelsConfig(StrictModel):
    classes: str | None = None
    unlabelled: float | None = None
    inlines: tuple[int, ...] | None = None  # keep labels on these inline numbers only
    overwrite: bool = False


class PatchesConfig(StrictModel):
    kind: Literal["trace", "section", "cube"] = "section"
    size: int | None = Field(None, ge=2, le=1024)
    stride: int | None = Field(None, ge=1)
    per_class: int = Field(500, ge=1)
    orientation: Literal["inline", "crossline", "both"] = "inline"
    dense: bool | None = None
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    split_block: int = Field(16, ge=1)
    augment: tuple[Literal["flip", "scale"], ...] = ()
    scale_range: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    overwrite: bool = False


class TrainConfig(StrictModel):
    model: str = "cnn2d"
    optimizer: Literal["gd", "sgd", "momentum", "rmsprop", "adam"] = "adam"
    activation: Literal["sigmoid", "tanh", "relu", "leaky_relu", "elu"] | None = None
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    beta: float = Field(0.9, gt=0, lt=1)
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    workers: int = Field(1, ge=1)
    shards: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    class_weights: Literal["balanced", "none"] = "balanced"
    time_budget: float | None = Field(None, gt=0)
    seed: int = 0
    model_options: dict = Field(default_factory=dict)
    resume: bool = False
    max_restarts: int = Field(0, ge=0)
    timeout: float = Field(120.0, gt=0)
    overwrite: bool = False


class PredictConfig(StrictModel):
    probabilities: bool = False
    batch_size: int = Field(16, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    overwrite: bool = False


class EvaluateConfig(StrictModel):
    truth: str | None = None
    where: Literal["unlabelled", "labelled", "all"] = "all"
    unlabelled: float | None = None


class PlotConfig(StrictModel):
    inline: int | None = None
    crossline: int | None = None
    time: float | None = None
    overwrite: bool = False


class _Step(StrictModel):
    """Workflow step options: a command's config plus its path arguments."""

    _paths: tuple[str, ...] = ()

    def options(self) -> dict:
        return self.model_dump(exclude=set(self._paths))


class SynthStep(SynthConfig, _Step):
    _paths = ("out",)
    out: str


class IngestStep(IngestConfig, _Step):
    _paths = ("segy", "store")
    segy: str
    store: str


class LabelsStep(LabelsConfig, _Step):
    _paths = ("store", "source")
    store: str
    source: str


class PatchesStep(PatchesConfig, _Step):
    _paths = ("store", "patches")
    store: str
    patches: str


class TrainStep(TrainConfig, _Step):
    _paths = ("source", "model_path")
    source: str
    model_path: str


class PredictStep(PredictConfig, _Step):
    _paths = ("store", "model_path")
    store: str
    model_path: str


class EvaluateStep(EvaluateConfig, _Step):
    _paths = ("store",)
    store: str


class PlotStep(PlotConfig, _Step):
    _paths = ("store", "out")
    store: str
    out: str


class ExportStep(ExportConfig, _Step):
    _paths = ("store", "out")
    store: str
    out: str
