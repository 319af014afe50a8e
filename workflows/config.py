"""Typed, strict configuration for every step, built once on the client.

Unknown keys and wrong types are errors (pydantic ``extra="forbid"``); the
same models validate CLI options and workflow files.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class IngestConfig(StrictModel):
    chunks: str | None = Field(
        None, description="Chunk sizes: '64,64,256' or 'inline=64,crossline=64,time=256'."
    )
    iline_byte: int = Field(189, ge=1, le=240, description="Trace header byte of the inline number.")
    xline_byte: int = Field(193, ge=1, le=240, description="Trace header byte of the crossline number.")
    endian: Literal["auto", "big", "little"] = Field("auto", description="Byte order of the file.")
    domain: Literal["time", "depth"] = Field("time", description="What the vertical axis measures.")
    nonfinite: Literal["keep", "refuse"] = Field(
        "keep",
        description="NaN/infinite samples: keep them (and report the count) or refuse the file.",
    )
    sample_interval: float | None = Field(
        None,
        gt=0,
        description="Sample interval in ms (m in depth) instead of the headers'; needed when they give 0.",
        json_schema_extra={"metavar": "MS"},
    )
    overwrite: bool = Field(False, description="Replace an existing output.")


class ExportConfig(StrictModel):
    variable: str = Field(
        "amplitude",
        description="Store variable to write as samples, in the source file's sample format; "
        "probability and uncertainty from an integer-sampled source are written as 4-byte IEEE floats "
        "(format 5) so that fractions are not rounded. To a .vds file: classes as 8-bit, else 32-bit float.",
    )
    class_name: str | None = Field(
        None,
        description="With --variable probability: the class whose probability to write.",
        json_schema_extra={"cli_name": "--class", "metavar": "NAME"},
    )
    overwrite: bool = Field(False, description="Replace an existing output.")


class SynthConfig(StrictModel):
    shape: tuple[int, int, int] = Field(
        (96, 96, 128), description="Survey size.", json_schema_extra={"metavar": "IL XL NS"}
    )
    seed: int = Field(0, description="Random seed of the survey.")
    overwrite: bool = Field(False, description="Replace an existing output.")

    @field_validator("shape")
    @classmethod
    def _big_enough(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(shape) < 8:
            raise ValueError(f"{shape} is too small; each size must be at least 8")
        return shape


class LabelsConfig(StrictModel):
    classes: str | None = Field(
        None,
        description="Class names, in class-number order.",
        json_schema_extra={"metavar": "NAME,NAME,..."},
    )
    unlabelled: float | None = Field(
        None,
        description="Source value that means 'not labelled' (default -1).",
        json_schema_extra={"metavar": "VALUE"},
    )
    inlines: tuple[int, ...] | None = Field(
        None,
        description="Keep the labels of these inline numbers only (with --crosslines: of these lines only).",
        json_schema_extra={"metavar": "108,130,152"},
    )
    crosslines: tuple[int, ...] | None = Field(
        None,
        description="Keep the labels of these crossline numbers only (default: every trace).",
        json_schema_extra={"metavar": "310,340"},
    )
    between: tuple[str, ...] | None = Field(
        None,
        description="Label the intervals between these horizons of the store (`seisfacies horizons`), "
        "shallow to deep, instead of reading SOURCE: N horizons make N + 1 classes; a voxel whose "
        "interval lacks a bounding pick stays unlabelled.",
        json_schema_extra={"metavar": "TOP,MIDDLE,BASE"},
    )
    overwrite: bool = Field(False, description="Replace an existing output.")


class HorizonsConfig(StrictModel):
    names: str | None = Field(
        None,
        description="One horizon name per file (default: the file names); not with a name column.",
        json_schema_extra={"metavar": "NAME,NAME,..."},
    )
    columns: str = Field(
        "inline,crossline,time",
        description="The files' columns in order: inline,crossline or x,y (placed through the store's "
        "cdp_x/cdp_y), then time, depth or z in the store's units; `name` for a column of horizon names, "
        "`skip` for one to ignore.",
        json_schema_extra={"metavar": "COLUMNS"},
    )
    null: float | None = Field(
        -999.25, description="The value that marks a missing pick.", json_schema_extra={"metavar": "VALUE"}
    )
    fill: Literal["none", "nearest", "linear"] = Field(
        "none",
        description="Fill unpicked traces: none (leave NaN), nearest pick, or linear between picks "
        "(nearest beyond them).",
    )
    overwrite: bool = Field(False, description="Replace an existing output.")


class AttributesConfig(StrictModel):
    add: tuple[str, ...] = Field(
        ...,
        description="Attributes to compute from amplitude along the traces, each a store variable: envelope, "
        "phase (degrees), frequency (Hz; cycles per km in depth), rms[:WINDOW] (WINDOW in the store's units, "
        "default 9 samples).",
        json_schema_extra={"metavar": "envelope,phase,frequency,rms:24"},
    )
    overwrite: bool = Field(False, description="Replace existing attribute variables.")


class MapConfig(StrictModel):
    horizon: str = Field(
        ...,
        description="The horizon the map follows (`seisfacies horizons`).",
        json_schema_extra={"metavar": "NAME"},
    )
    window: tuple[float, ...] | None = Field(
        None,
        description="The window around the horizon in the store's units, from ABOVE to BELOW "
        "(negative: shallower); default -20,20.",
        json_schema_extra={"metavar": "ABOVE,BELOW"},
    )
    to: str | None = Field(
        None,
        description="Another horizon: the window is the interval between the two (not with --window).",
        json_schema_extra={"metavar": "OTHER"},
    )
    variable: str = Field(
        "facies",
        description="What to map: facies (the most common class, and each class's fraction), probability "
        "(mean per class), uncertainty (mean), amplitude (RMS), or another variable of the store (mean).",
        json_schema_extra={"metavar": "NAME"},
    )
    overwrite: bool = Field(False, description="Replace an existing output.")

    @field_validator("window")
    @classmethod
    def _two_offsets(cls, window: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if window is not None and (len(window) != 2 or window[0] > window[1]):
            raise ValueError(
                f"{','.join(map(str, window))} is not ABOVE,BELOW with ABOVE <= BELOW, e.g. -20,20"
            )
        return window


def _check_inputs(inputs: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Inputs name amplitude once, first, then each other input once."""
    if inputs is not None and (not inputs or inputs[0] != "amplitude" or len(set(inputs)) != len(inputs)):
        raise ValueError(
            f"{','.join(inputs)}: start with amplitude and name each input once, e.g. amplitude,envelope"
        )
    return inputs


class PatchesConfig(StrictModel):
    kind: Literal["trace", "section", "cube"] = Field("section", description="What a patch is.")
    size: int | None = Field(
        None, ge=2, le=1024, description="Window size in samples (trace 64, section 64, cube 32)."
    )
    stride: int | None = Field(
        None, ge=1, description="Spacing of candidate centres (trace 2, section 4, cube 4)."
    )
    per_class: int = Field(500, ge=1, description="Training patches per class.")
    orientation: Literal["inline", "crossline", "both"] = Field(
        "inline", description="Sections to crop (section kind)."
    )
    dense: bool | None = Field(
        None,
        description="Cube labels: the dense cube or the centre label.",
        json_schema_extra={"flag": "--dense/--centre"},
    )
    val_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of the blocks held out for validation."
    )
    split_block: int = Field(
        16, ge=1, description="Size of the spatial blocks that go wholly to train or validation."
    )
    augment: tuple[Literal["flip", "scale"], ...] = Field(
        (), description="Extra training copies: flip, scale.", json_schema_extra={"metavar": "flip,scale"}
    )
    scale_range: float = Field(
        0.1, ge=0.0, lt=1.0, description="Amplitude scaling of the scale augment: 1 +- this."
    )
    neighbours: int = Field(
        0,
        ge=0,
        le=16,
        description="Section patches: parallel sections on each side given as extra input channels.",
    )
    inputs: tuple[str, ...] = Field(
        ("amplitude",),
        description="What the model sees, as channels: amplitude (with its --neighbours), any attribute "
        "variable of the store (`seisfacies attributes`: envelope, phase, frequency, rms), and depth: each "
        "sample's relative position in its trace, 0 first, 1 last (section and cube patches).",
        json_schema_extra={"metavar": "amplitude,envelope,depth"},
    )
    seed: int = Field(0, description="Random seed of the draw and the split.")
    overwrite: bool = Field(False, description="Replace an existing output.")

    @field_validator("inputs")
    @classmethod
    def _amplitude_first(cls, inputs: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_inputs(inputs)


class TrainConfig(StrictModel):
    model: str = Field("cnn2d", description="mlp, cnn2d, cnn2d_patch or cnn3d (or a model you registered).")
    optimizer: Literal["gd", "sgd", "momentum", "rmsprop", "adam"] = Field(
        "adam", description="The update rule (the course's formulas)."
    )
    activation: Literal["sigmoid", "tanh", "relu", "leaky_relu", "elu"] | None = Field(
        None, description="Hidden-layer activation (default: the model's)."
    )
    epochs: int | None = Field(
        None,
        ge=1,
        description="Passes over the training patches (default: the model's, 9 for cnn2d, 12 for others).",
    )
    batch_size: int = Field(32, ge=1, description="Global mini-batch size.")
    lr: float = Field(2e-3, gt=0, description="Learning rate (alpha).")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty on the weights.")
    beta: float = Field(0.9, gt=0, lt=1, description="Momentum / RMSprop / Adam beta.")
    schedule: Literal["constant", "step", "cosine"] = Field("cosine", description="Learning-rate schedule.")
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="Data-parallel ranks, one per Dask worker. auto: as many as pay, at most one per GPU "
        "or, on CPUs, per host (ranks on one host share its cores), and one where a step is too small "
        "to outweigh its gradient all-reduce; the summary says when it used fewer workers than there are.",
        json_schema_extra={"metavar": "N|auto"},
    )
    shards: int | None = Field(
        None,
        ge=1,
        description="Shards of the training split (default: one per rank; a multiple of the ranks).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where each rank trains.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 mixed precision.")
    class_weights: Literal["balanced", "none"] = Field(
        "balanced", description="Weigh the loss by inverse class frequency, or not."
    )
    time_budget: float | None = Field(
        None, gt=0, description="Stop after the epoch that passes this many seconds."
    )
    seed: int = Field(0, description="Random seed of the weights and the shuffle.")
    inputs: tuple[str, ...] | None = Field(
        None,
        description="With a labelled store as SOURCE: the inputs of the patches cut first "
        "(as `seisfacies patches --inputs`); a patch store brings its own.",
        json_schema_extra={"metavar": "amplitude,envelope,depth"},
    )
    model_options: dict = Field(
        default_factory=dict, description='JSON model config, e.g. \'{"base": 8, "depth": 2}\'.'
    )
    resume: bool = Field(False, description="Continue from MODEL.pt's last epoch.")
    max_restarts: int = Field(0, ge=0, description="Restarts from the last checkpoint after a lost rank.")
    timeout: float = Field(
        1800.0,
        gt=0,
        description="Seconds a rank waits for the others in one collective before failing "
        "(a lost worker fails the run at once regardless).",
    )
    overwrite: bool = Field(False, description="Replace an existing output.")

    @field_validator("inputs")
    @classmethod
    def _amplitude_first(cls, inputs: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_inputs(inputs)


class PredictConfig(StrictModel):
    probabilities: bool = Field(
        False, description="Also write class probabilities (float16), calibrated by the model's temperature."
    )
    uncertainty: bool = Field(
        False, description="Also write `uncertainty`: 0 certain .. 1 every class equally likely."
    )
    mirror: bool = Field(
        True,
        description="Section CNNs: average with the mirrored sections' answer (twice the compute).",
        json_schema_extra={"flag": "--mirror/--no-mirror"},
    )
    smooth: int = Field(
        1,
        ge=0,
        le=16,
        description="Section CNNs: average each section's logits with N parallel sections on each side.",
    )
    class_order: Literal["auto", "depth", "voxel"] = Field(
        "auto",
        description="depth: decide each trace's facies together, classes following each other "
        "downwards in the order of their codes (stratigraphic intervals); voxel: each voxel's most "
        "likely class; auto: depth where no labelled trace the model trained on goes back up the codes.",
    )
    batch_size: int = Field(
        16,
        ge=1,
        description="Sections (or patch centres) per forward pass; on a GPU at least this many "
        "(a whole block in one pass where it fits).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where each task runs the model.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 mixed precision.")
    allow_partial: bool = Field(
        False,
        description="Predict with a partial checkpoint (a training that stopped before its last epoch); "
        "the store records that it is partial.",
    )
    overwrite: bool = Field(False, description="Replace an existing output.")


class EvaluateConfig(StrictModel):
    truth: str | None = Field(
        None,
        description="Label source to score against (default: the store's labels).",
        json_schema_extra={"metavar": "SOURCE"},
    )
    where: Literal["unlabelled", "labelled", "all"] = Field(
        "all", description="Which voxels to score, relative to the store's labels."
    )
    unlabelled: float | None = Field(
        None, description="Truth value meaning 'not labelled'.", json_schema_extra={"metavar": "VALUE"}
    )


class SuggestConfig(StrictModel):
    count: int = Field(3, ge=1, description="How many inlines to suggest.")


class PlotConfig(StrictModel):
    inline: int | None = Field(None, description="Inline number of the section.")
    crossline: int | None = Field(None, description="Crossline number of the section.")
    time: float | None = Field(None, description="Time (or depth) of a horizontal slice.")
    truth: str | None = Field(
        None,
        description="Label source of the true facies: adds a truth panel and one of the errors beside the "
        "prediction.",
        json_schema_extra={"metavar": "SOURCE"},
    )
    unlabelled: float | None = Field(
        None, description="Truth value meaning 'not labelled'.", json_schema_extra={"metavar": "VALUE"}
    )
    map: str | None = Field(
        None,
        description="Draw maps in map view instead of a section: a map variable (`map_top_facies`) or a "
        "horizon's name (its time or depth and every map along it).",
        json_schema_extra={"metavar": "NAME"},
    )
    mark_suggested: int = Field(
        0,
        ge=0,
        description="Mark the N inlines `seisfacies suggest` proposes to label next (needs `uncertainty`).",
        json_schema_extra={"metavar": "N"},
    )
    overwrite: bool = Field(False, description="Replace an existing output.")
