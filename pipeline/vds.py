"""OpenVDS output: one store volume as a VDS file, written a column of bricks at a time.

A VDS holds a volume in bricks with axes (sample, crossline, inline),
fastest first, each with a name, unit and annotation range; the survey's
map position is its coordinate system (the x/y of inline 0, crossline 0 and
the x/y step of one inline and one crossline number). Class volumes are
discrete 8-bit channels; everything else is 32-bit float. Dead traces and
unclassified voxels hold the channel's no-value.

``openvds`` is an optional dependency (``pip install "seisfacies[vds]"``).
Its writer is one process writing one file, so the pages are filled here,
in the calling process, one column of bricks in memory at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .exceptions import StoreError

#: The no-value of float channels: Petrel's and SEG-Y tools' null.
NO_VALUE_FLOAT = -999.25
#: The no-value of class channels (classes are 0..254).
NO_VALUE_CLASS = 255
#: Brick edges OpenVDS offers; the one nearest the store's lateral chunk is used.
BRICK_SIZES = (32, 64, 128, 256)
#: Metadata category of what seisfacies adds (class names, the store variable).
CATEGORY = "seisfacies"


@dataclass(frozen=True)
class VdsAxis:
    """One axis: its VDS name and unit and the annotation of its first and last sample."""

    name: str  # Inline, Crossline, Time, Depth
    unit: str
    size: int
    first: float
    last: float


@dataclass(frozen=True)
class VdsVolume:
    """What to write: axes in store order (inline, crossline, vertical), the channel and metadata."""

    axes: tuple[VdsAxis, VdsAxis, VdsAxis]
    channel: str  # the channel's name: the store variable (and class)
    unit: str
    value_range: tuple[float, float]
    class_names: tuple[str, ...] = ()  # a discrete class volume when not empty
    #: x/y of annotation (inline 0, crossline 0), and of one inline and one crossline step
    coordinate_system: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None
    brick: int = 64

    @property
    def discrete(self) -> bool:
        """Whether the channel holds class numbers."""
        return bool(self.class_names)


def openvds_module():
    """``openvds``, or a one-line refusal that says how to install it.

    Returns
    -------
    module
    """
    try:
        import openvds
    except ImportError:
        raise StoreError(
            'writing .vds needs OpenVDS: pip install "seisfacies[vds]" (the openvds wheels, Python 3.11-3.13)'
        ) from None
    return openvds


def brick_size(lateral_chunk: int) -> int:
    """The VDS brick edge for a store chunked ``lateral_chunk`` traces wide: reads stay whole chunks.

    Parameters
    ----------
    lateral_chunk : int
        The store's chunk size along inline (or crossline).

    Returns
    -------
    int

    >>> brick_size(64), brick_size(128), brick_size(100), brick_size(1000)
    (64, 128, 128, 256)
    """
    return min(BRICK_SIZES, key=lambda size: (abs(np.log2(size / lateral_chunk)), -size))


def annotation_coordinate_system(
    origin, inline_step, crossline_step, first_inline, first_crossline, line_steps
):
    """The VDS survey coordinate system from a grid fit in grid indices.

    Parameters
    ----------
    origin : array-like
        x, y of grid index (0, 0).
    inline_step, crossline_step : array-like
        x, y step of one inline and one crossline *index*.
    first_inline, first_crossline : float
        The line numbers of index 0.
    line_steps : tuple of float
        Line-number step of one index, inline and crossline.

    Returns
    -------
    tuple
        x/y of annotation (0, 0), of one inline number and one crossline number.

    >>> annotation_coordinate_system((100.0, 0.0), (0.0, 50.0), (25.0, 0.0), 10, 1, (2, 1))
    ((75.0, -250.0), (0.0, 25.0), (25.0, 0.0))
    """
    per_inline = np.asarray(inline_step, float) / line_steps[0]
    per_crossline = np.asarray(crossline_step, float) / line_steps[1]
    zero = np.asarray(origin, float) - per_inline * first_inline - per_crossline * first_crossline
    return tuple(map(float, zero)), tuple(map(float, per_inline)), tuple(map(float, per_crossline))


def _descriptors(openvds, volume: VdsVolume):
    layout = openvds.VolumeDataLayoutDescriptor(
        getattr(openvds.VolumeDataLayoutDescriptor.BrickSize, f"BrickSize_{volume.brick}"),
        0,
        0,
        4,
        openvds.VolumeDataLayoutDescriptor.LODLevels.LODLevels_None,
        openvds.VolumeDataLayoutDescriptor.Options.Options_None,
    )
    axes = [
        openvds.VolumeDataAxisDescriptor(a.size, a.name, a.unit, a.first, a.last) for a in volume.axes[::-1]
    ]
    channel = openvds.VolumeDataChannelDescriptor
    if volume.discrete:
        descriptor = channel(
            channel.Format_U8,
            channel.Components_1,
            volume.channel,
            volume.unit,
            *volume.value_range,
            openvds.VolumeDataMapping.Direct,
            1,
            channel.Flags.DiscreteData,
            float(NO_VALUE_CLASS),
            1.0,
            0.0,
        )
    else:
        descriptor = channel(
            channel.Format_R32,
            channel.Components_1,
            volume.channel,
            volume.unit,
            *volume.value_range,
            NO_VALUE_FLOAT,
            openvds.VolumeDataMapping.Direct,
            channel.Flags.Default,
        )
    return layout, axes, [descriptor]


def _metadata(openvds, volume: VdsVolume, extra: dict[str, str]):
    container = openvds.MetadataContainer()
    known = openvds.KnownMetadata
    if volume.coordinate_system is not None:
        keys = (
            known.surveyCoordinateSystemOrigin(),
            known.surveyCoordinateSystemInlineSpacing(),
            known.surveyCoordinateSystemCrosslineSpacing(),
        )
        for key, value in zip(keys, volume.coordinate_system):
            container.setMetadataDoubleVector2(key.category, key.name, value)
    if volume.discrete:
        container.setMetadataString(CATEGORY, "ClassNames", json.dumps(list(volume.class_names)))
    for name, value in extra.items():
        container.setMetadataString(CATEGORY, name, value)
    return container


def write_vds(
    path: str,
    volume: VdsVolume,
    read_column: Callable[[slice, slice], np.ndarray],
    extra: dict[str, str] | None = None,
) -> int:
    """Write a VDS file, reading one column of bricks (inline, crossline, all samples) at a time.

    Parameters
    ----------
    path : str
        The local ``.vds`` file to create.
    volume : VdsVolume
        Axes, channel and metadata.
    read_column : callable
        ``(inline slice, crossline slice) -> (inline, crossline, vertical)`` values, already
        holding the no-value where there is none; float32, or uint8 for classes.
    extra : dict, optional
        More string metadata in the ``seisfacies`` category.

    Returns
    -------
    int
        Bricks written.
    """
    openvds = openvds_module()
    layout, axes, channels = _descriptors(openvds, volume)
    zip_ok = openvds.isCompressionMethodSupported(openvds.CompressionMethod.Zip)
    compression = getattr(openvds.CompressionMethod, "Zip" if zip_ok else "None")
    handle = openvds.create(
        path, "", layout, axes, channels, _metadata(openvds, volume, extra or {}), compression, 0.0
    )
    try:
        manager = openvds.getAccessManager(handle)
        pages = manager.createVolumeDataPageAccessor(
            openvds.DimensionsND.Dimensions_012, 0, 0, 8, manager.AccessMode.AccessMode_Create, 1024
        )
        column_key, column = None, None
        for chunk in range(pages.getChunkCount()):  # sample-fastest: a column's bricks come together
            page = pages.createPage(chunk)
            low, high = page.getMinMax()
            if column_key != (low[1], low[2]):
                column_key = (low[1], low[2])
                column = read_column(slice(low[2], high[2]), slice(low[1], high[1]))
            buffer = np.array(page.getWritableBuffer(), copy=False)
            buffer[:] = column[:, :, low[0] : high[0]]
            page.release()
        pages.commit()
        return pages.getChunkCount()
    finally:
        openvds.close(handle)
