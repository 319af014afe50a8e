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
    overwrite: bool = False


class ExportConfig(StrictModel):
    variable: str = "amplitude"
    overwrite: bool = False


class SynthConfig(StrictModel):
    shape: tuple[int, int, int] = (96, 96, 128)
    seed: int = 0
    overwrite: bool = False
