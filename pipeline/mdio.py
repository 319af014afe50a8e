"""TGS MDIO v1: what makes a store one, and SEG-Y headers in the form MDIO keeps them.

An MDIO v1 post-stack dataset (``mdio.builder.templates``, version 1.1) is a
Zarr v3 group with dims ``inline``, ``crossline`` and ``time`` or ``depth``,
``cdp_x``/``cdp_y``, a data variable named by the root attribute
``attributes.defaultVariableName`` (``amplitude``), ``trace_mask``, the trace
headers as one structured variable ``headers`` (a field per SEG-Y rev 1
header entry, little-endian, packed) and, optionally, ``segy_file_header``,
a scalar whose attributes hold ``textHeader`` and ``binaryHeader``. Our
stores follow that layout (``ingest`` writes it), and every command reads
stores written by MDIO's ``segy_to_mdio`` in place.

Field names are MDIO's (the ``segy`` package's rev 1 standard), byte
positions segyio's; ``tests/test_mdio.py`` checks both against the ``segy``
package itself.
"""

from __future__ import annotations

import datetime

import numpy as np

from . import segy_format as fmt

#: The MDIO release whose v1 post-stack template these stores follow (checked by the tests).
API_VERSION = "1.1.3"
#: MDIO's template name per vertical dim.
TEMPLATE_NAMES = {"time": "PostStack3DTime", "depth": "PostStack3DDepth"}

#: The rev 1 trace header fields in MDIO's names, in byte order (bytes 1-232; 233-240 are unassigned).
TRACE_HEADER_NAMES = (
    *("trace_seq_num_line", "trace_seq_num_reel", "orig_field_record_num", "trace_num_orig_record"),
    *("energy_source_point_num", "ensemble_num", "trace_num_ensemble", "trace_id_code"),
    *("vertically_summed_traces", "horizontally_stacked_traces", "data_use", "source_to_receiver_distance"),
    *("receiver_group_elevation", "source_surface_elevation", "source_depth_below_surface"),
    *("receiver_datum_elevation", "source_datum_elevation", "source_water_depth", "receiver_water_depth"),
    *("elevation_depth_scalar", "coordinate_scalar", "source_coord_x", "source_coord_y"),
    *("group_coord_x", "group_coord_y", "coordinate_unit", "weathering_velocity", "subweathering_velocity"),
    *("source_uphole_time", "group_uphole_time", "source_static_correction", "receiver_static_correction"),
    *("total_static_applied", "lag_time_a", "lag_time_b", "delay_recording_time", "mute_time_start"),
    *("mute_time_end", "samples_per_trace", "sample_interval", "instrument_gain_type"),
    *("instrument_gain_const", "instrument_gain_initial", "correlated_data", "sweep_freq_start"),
    *("sweep_freq_end", "sweep_length", "sweep_type", "sweep_taper_start", "sweep_taper_end", "taper_type"),
    *("alias_filter_freq", "alias_filter_slope", "notch_filter_freq", "notch_filter_slope", "low_cut_freq"),
    *("high_cut_freq", "low_cut_slope", "high_cut_slope", "year_recorded", "day_of_year", "hour_of_day"),
    *("minute_of_hour", "second_of_minute", "time_basis_code", "trace_weighting_factor"),
    *("group_num_roll_switch", "group_num_first_trace", "group_num_last_trace", "gap_size"),
    *("taper_overtravel", "cdp_x", "cdp_y", "inline", "crossline", "shot_point", "shot_point_scalar"),
    *("trace_value_unit", "transduction_const_mantissa", "transduction_const_exponent", "transduction_unit"),
    *("device_trace_id", "times_scalar", "source_type_orientation", "source_energy_dir_mantissa"),
    *("source_energy_dir_exponent", "source_measurement_mantissa", "source_measurement_exponent"),
    "source_measurement_unit",
)

#: The rev 1 binary header fields in MDIO's names with their 1-based byte in the binary header.
#: The revision (bytes 301-302) is split into MDIO's major and minor byte.
BINARY_HEADER_FIELDS = (
    *(("job_id", 1), ("line_num", 5), ("reel_num", 9), ("data_traces_per_ensemble", 13)),
    *(("aux_traces_per_ensemble", 15), ("sample_interval", 17), ("orig_sample_interval", 19)),
    *(("samples_per_trace", 21), ("orig_samples_per_trace", 23), ("data_sample_format", 25)),
    *(("ensemble_fold", 27), ("trace_sorting_code", 29), ("vertical_sum_code", 31)),
    *(("sweep_freq_start", 33), ("sweep_freq_end", 35), ("sweep_length", 37), ("sweep_type_code", 39)),
    *(("sweep_trace_num", 41), ("sweep_taper_start", 43), ("sweep_taper_end", 45), ("taper_type_code", 47)),
    *(("correlated_data_code", 49), ("binary_gain_code", 51), ("amp_recovery_code", 53)),
    *(("measurement_system_code", 55), ("impulse_polarity_code", 57), ("vibratory_polarity_code", 59)),
    *(("fixed_length_trace_flag", 303), ("num_extended_text_headers", 305)),
)
_INT32_BINARY = {"job_id", "line_num", "reel_num"}
_REVISION_BYTE = 301


def is_mdio(attrs: dict) -> bool:
    """Whether root attributes are an MDIO v1 dataset's.

    Parameters
    ----------
    attrs : dict
        A store's root attributes.

    Returns
    -------
    bool

    >>> is_mdio({"apiVersion": "1.1.3", "attributes": {"defaultVariableName": "amplitude"}})
    True
    >>> is_mdio({"seisfacies_version": "0.1.0"})
    False
    """
    return str(attrs.get("apiVersion", "")).startswith("1.") and isinstance(attrs.get("attributes"), dict)


def data_variable(attrs: dict) -> str:
    """The variable that holds the samples: MDIO's ``defaultVariableName``, else ``amplitude``.

    Parameters
    ----------
    attrs : dict
        A store's root attributes.

    Returns
    -------
    str

    >>> data_variable({"apiVersion": "1.1.3", "attributes": {"defaultVariableName": "seismic"}})
    'seismic'
    >>> data_variable({})
    'amplitude'
    """
    if is_mdio(attrs):
        return str(attrs["attributes"].get("defaultVariableName", "amplitude"))
    return "amplitude"


#: Keys that only an MDIO v0 store (Zarr v2, ``mdio`` before 1.0) has.
V0_KEYS = ("data/chunked_012/.zarray", "metadata/live_mask/.zarray")


def dataset_attrs(vertical: str) -> dict:
    """The root attributes that make a post-stack store an MDIO v1 dataset.

    Parameters
    ----------
    vertical : str
        ``time`` or ``depth``.

    Returns
    -------
    dict

    >>> dataset_attrs("depth")["attributes"]
    {'surveyType': '3D', 'gatherType': 'stacked', 'defaultVariableName': 'amplitude'}
    """
    return {
        "apiVersion": API_VERSION,
        "createdOn": str(datetime.datetime.now(datetime.UTC)),
        "name": TEMPLATE_NAMES[vertical],
        "attributes": {"surveyType": "3D", "gatherType": "stacked", "defaultVariableName": "amplitude"},
    }


def _trace_field_layout() -> list[tuple[str, int, int]]:
    """(name, 0-based offset, size) of each named trace header field, from segyio's byte positions."""
    starts = sorted(fmt.TRACE_FIELD_SIZES)[: len(TRACE_HEADER_NAMES)]
    return [
        (name, start - 1, fmt.TRACE_FIELD_SIZES[start]) for name, start in zip(TRACE_HEADER_NAMES, starts)
    ]


def header_dtype(byte_order: str = "little", packed: bool = True) -> np.dtype:
    """The structured dtype of one trace's header.

    Parameters
    ----------
    byte_order : str
        ``little`` (MDIO's ``headers``) or ``big``/``little`` for a SEG-Y file's raw bytes.
    packed : bool
        True: fields back to back (MDIO, 232 bytes); False: at their SEG-Y offsets in 240 bytes.

    Returns
    -------
    np.dtype

    >>> header_dtype().itemsize, header_dtype("big", packed=False).itemsize
    (232, 240)
    >>> header_dtype().fields["inline"][0]
    dtype('int32')
    """
    prefix = fmt.BYTE_ORDER_PREFIX[byte_order]
    layout = _trace_field_layout()
    spec = {
        "names": [name for name, _, _ in layout],
        "formats": [f"{prefix}i{size}" for _, _, size in layout],
    }
    if not packed:
        spec |= {"offsets": [offset for _, offset, _ in layout], "itemsize": fmt.TRACE_HEADER_SIZE}
    return np.dtype(spec)


def headers_from_raw(raw: np.ndarray, byte_order: str) -> np.ndarray:
    """Raw 240-byte trace headers (``..., 240`` uint8) as MDIO's structured ``headers``.

    Parameters
    ----------
    raw : np.ndarray
        uint8, the last axis the 240 bytes of each header.
    byte_order : str
        The source file's byte order.

    Returns
    -------
    np.ndarray
        Structured, little-endian, packed; the shape of ``raw`` without its last axis.

    >>> raw = np.zeros((1, 240), np.uint8); raw[0, 188:192] = [0, 0, 1, 44]  # inline 300 at byte 189
    >>> int(headers_from_raw(raw, "big")["inline"][0])
    300
    """
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    viewed = raw.view(header_dtype(byte_order, packed=False))[..., 0]
    return viewed.astype(header_dtype())


def raw_from_headers(headers: np.ndarray, byte_order: str) -> np.ndarray:
    """MDIO's structured ``headers`` as raw 240-byte SEG-Y trace headers (the inverse).

    Parameters
    ----------
    headers : np.ndarray
        Structured, with MDIO's field names.
    byte_order : str
        The byte order to write.

    Returns
    -------
    np.ndarray
        uint8, shape ``headers.shape + (240,)``; unassigned bytes are 0.

    >>> raw = np.arange(240, dtype=np.uint8)[None]; raw[0, 232:] = 0
    >>> bool((raw_from_headers(headers_from_raw(raw, "big"), "big") == raw).all())
    True
    """
    placed = np.zeros(headers.shape, header_dtype(byte_order, packed=False))
    for name in TRACE_HEADER_NAMES:
        placed[name] = headers[name]
    return placed[..., None].view(np.uint8).reshape(*headers.shape, fmt.TRACE_HEADER_SIZE)


def binary_header_dict(binary: bytes, byte_order: str) -> dict[str, int]:
    """A 400-byte binary header as MDIO's ``binaryHeader`` attribute (its names, revision split).

    Parameters
    ----------
    binary : bytes
        The 400 bytes after the textual header.
    byte_order : str
        The file's byte order.

    Returns
    -------
    dict[str, int]

    >>> head = bytearray(400); head[16:18] = (4000).to_bytes(2, "big"); head[300] = 1
    >>> fields = binary_header_dict(bytes(head), "big")
    >>> fields["sample_interval"], fields["segy_revision_major"], fields["segy_revision_minor"]
    (4000, 1, 0)
    """
    prefix = fmt.BYTE_ORDER_PREFIX[byte_order]
    fields = {}
    for name, byte in BINARY_HEADER_FIELDS:
        kind = "i4" if name in _INT32_BINARY else "i2"
        fields[name] = int(np.frombuffer(binary, f"{prefix}{kind}", 1, byte - 1)[0])
    fields["segy_revision_major"] = int(binary[_REVISION_BYTE - 1])
    fields["segy_revision_minor"] = int(binary[_REVISION_BYTE])
    return fields


def binary_header_bytes(fields: dict[str, int], byte_order: str = "big") -> bytes:
    """MDIO's ``binaryHeader`` attribute back to 400 bytes (fields it lacks are 0).

    Parameters
    ----------
    fields : dict[str, int]
        Field name -> value, as :func:`binary_header_dict` gives.
    byte_order : str
        The byte order to write.

    Returns
    -------
    bytes

    >>> head = bytearray(400); head[20:22] = (75).to_bytes(2, "big"); head[300:302] = (1, 0)
    >>> binary_header_bytes(binary_header_dict(bytes(head), "big")) == bytes(head)
    True
    """
    prefix = fmt.BYTE_ORDER_PREFIX[byte_order]
    binary = bytearray(fmt.BINARY_HEADER_SIZE)
    for name, byte in BINARY_HEADER_FIELDS:
        kind = "i4" if name in _INT32_BINARY else "i2"
        value = np.array(fields.get(name, 0), f"{prefix}{kind}").tobytes()
        binary[byte - 1 : byte - 1 + len(value)] = value
    binary[_REVISION_BYTE - 1] = int(fields.get("segy_revision_major", 1)) & 0xFF
    binary[_REVISION_BYTE] = int(fields.get("segy_revision_minor", 0)) & 0xFF
    return bytes(binary)


def file_header_attrs(textual_header: str, binary: bytes, byte_order: str) -> dict:
    """The attributes of MDIO's ``segy_file_header`` variable.

    Parameters
    ----------
    textual_header : str
        The 40 card images, one line each.
    binary : bytes
        The 400-byte binary header.
    byte_order : str
        The file's byte order.

    Returns
    -------
    dict
        ``textHeader`` (40 lines of 80 characters) and ``binaryHeader``.
    """
    text = "\n".join(fmt.card_images(textual_header))
    return {"textHeader": text, "binaryHeader": binary_header_dict(binary, byte_order)}
