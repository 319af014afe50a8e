"""Pure functions for the SEG-Y byte layout: formats, header fields, sample codecs.

Nothing here opens a file; :mod:`seisfacies.pipeline.segy` does the I/O. Byte positions
are the 1-based ones of the SEG-Y standard, taken from :mod:`segyio`'s
``TraceField`` and ``BinField`` enumerations rather than written as literals.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import segyio
import segyio._segyio  # noqa: F401  (segyio.tools.native calls it without importing it)

from .exceptions import SegyFormatError

TEXT_HEADER_SIZE = 3200
TEXT_LINE = 80  # characters per card image: 40 lines make the header
BINARY_HEADER_SIZE = 400
TRACE_HEADER_SIZE = 240

#: SEG-Y sample format code -> (numpy kind without byte order, item size).
#: Format 1 (IBM float) is carried as 4-byte words and converted separately.
SAMPLE_FORMATS: dict[int, tuple[str, int]] = {
    1: ("u4", 4),
    2: ("i4", 4),
    3: ("i2", 2),
    5: ("f4", 4),
    6: ("f8", 8),
    8: ("i1", 1),
    9: ("i8", 8),
    10: ("u4", 4),
    11: ("u2", 2),
    12: ("u8", 8),
    16: ("u1", 1),
}

SAMPLE_FORMAT_NAMES: dict[int, str] = {
    1: "4-byte IBM float",
    2: "4-byte signed integer",
    3: "2-byte signed integer",
    5: "4-byte IEEE float",
    6: "8-byte IEEE float",
    8: "1-byte signed integer",
    9: "8-byte signed integer",
    10: "4-byte unsigned integer",
    11: "2-byte unsigned integer",
    12: "8-byte unsigned integer",
    16: "1-byte unsigned integer",
}

BYTE_ORDER_PREFIX = {"big": ">", "little": "<"}


def _field_sizes(enum_type: type, end: int) -> dict[int, int]:
    """Size in bytes of each header field, from the gap to the next field's start."""
    starts = sorted({int(field) for field in enum_type.enums()})
    bounds = [*starts[1:], end]
    return {start: min(stop - start, 4) for start, stop in zip(starts, bounds) if stop > start}


TRACE_FIELD_SIZES = _field_sizes(segyio.TraceField, TRACE_HEADER_SIZE + 1)
BINARY_FIELD_SIZES = _field_sizes(segyio.BinField, TEXT_HEADER_SIZE + BINARY_HEADER_SIZE + 1)

INLINE_BYTE = int(segyio.TraceField.INLINE_3D)
CROSSLINE_BYTE = int(segyio.TraceField.CROSSLINE_3D)
CDP_X_BYTE = int(segyio.TraceField.CDP_X)
CDP_Y_BYTE = int(segyio.TraceField.CDP_Y)
COORDINATE_SCALAR_BYTE = int(segyio.TraceField.SourceGroupScalar)
OFFSET_BYTE = int(segyio.TraceField.offset)
TRACE_SAMPLES_BYTE = int(segyio.TraceField.TRACE_SAMPLE_COUNT)
TRACE_INTERVAL_BYTE = int(segyio.TraceField.TRACE_SAMPLE_INTERVAL)
DELAY_BYTE = int(segyio.TraceField.DelayRecordingTime)
#: Bytes 215-216: the scalar for the times in bytes 95-114 (the delay among them), as segyio applies it.
TIME_SCALAR_BYTE = int(segyio.TraceField.ScalarTraceHeader)


def trace_field_size(byte: int, option: str = "byte position") -> int:
    """Size of the trace header field that starts at 1-based ``byte``.

    Parameters
    ----------
    byte : int
        1-based byte position in the trace header.
    option : str

    Returns
    -------
    int

    >>> trace_field_size(189), trace_field_size(115)
    (4, 2)
    """
    if byte not in TRACE_FIELD_SIZES:
        raise SegyFormatError(
            f"{option} {byte} is not the start of a standard trace header field; "
            "use a SEG-Y trace header byte position such as 189 (inline) or 193 (crossline)"
        )
    return TRACE_FIELD_SIZES[byte]


def header_field(headers: np.ndarray, byte: int, size: int, endian: str) -> np.ndarray:
    """Read one integer field from raw headers shaped ``(n, header_size)``.

    ``byte`` is 1-based, counted from the start of each header.

    Parameters
    ----------
    headers : np.ndarray
        Trace headers.
    byte : int
        1-based byte position in the trace header.
    size : int
        Field size in bytes (2 or 4).
    endian : str
        "big" or "little".

    Returns
    -------
    np.ndarray

    >>> raw = np.zeros((2, 240), np.uint8); raw[1, 188:192] = [0, 0, 1, 2]
    >>> header_field(raw, 189, 4, "big").tolist()
    [0, 258]
    """
    columns = np.ascontiguousarray(headers[:, byte - 1 : byte - 1 + size])
    dtype = np.dtype(f"{BYTE_ORDER_PREFIX[endian]}i{size}")
    return columns.view(dtype).reshape(-1).astype(np.int64)


def binary_header_fields(binary: bytes, endian: str) -> dict[str, int]:
    """Decode the 400-byte binary header into ``{field name: value}``.

    Parameters
    ----------
    binary : bytes
        The 400-byte binary header.
    endian : str
        "big" or "little".

    Returns
    -------
    dict[str, int]
    """
    raw = np.frombuffer(binary, dtype=np.uint8)[None, :]
    fields = {}
    for field in segyio.BinField.enums():
        start = int(field)
        name = str(field)
        if name.startswith("Unassigned") or name in fields:
            continue
        size = BINARY_FIELD_SIZES[start]
        offset = start - TEXT_HEADER_SIZE
        if size == 3:  # no 3-byte integers in numpy; such gaps are padding
            size = 2
        fields[name] = int(header_field(raw, offset, size, endian)[0])
    return fields


def _binary_value(binary: bytes, field: segyio.BinField, endian: str) -> int:
    start = int(field) - TEXT_HEADER_SIZE - 1
    size = BINARY_FIELD_SIZES[int(field)]
    return int.from_bytes(binary[start : start + size], endian, signed=True)


@dataclass(frozen=True)
class BinaryHeaderSummary:
    """The binary header fields that fix the byte layout of the traces."""

    sample_format: int
    n_samples: int
    sample_interval: int
    n_extended_headers: int


def summarise_binary_header(binary: bytes, endian: str) -> BinaryHeaderSummary:
    """Pick the layout fields out of a binary header read with ``endian``.

    Parameters
    ----------
    binary : bytes
        The 400-byte binary header.
    endian : str
        "big" or "little".

    Returns
    -------
    BinaryHeaderSummary

    >>> b = bytearray(400); b[24:26] = (5).to_bytes(2, "big"); b[20:22] = (50).to_bytes(2, "big")
    >>> summarise_binary_header(bytes(b), "big").sample_format
    5
    """
    return BinaryHeaderSummary(
        sample_format=_binary_value(binary, segyio.BinField.Format, endian),
        n_samples=_binary_value(binary, segyio.BinField.Samples, endian) & 0xFFFF,
        sample_interval=_binary_value(binary, segyio.BinField.Interval, endian) & 0xFFFF,
        n_extended_headers=_binary_value(binary, segyio.BinField.ExtendedHeaders, endian),
    )


def detect_endian(binary: bytes) -> str:
    """Guess the byte order from the sample format code of the binary header.

    A valid code read in the wrong byte order is a multiple of 256, so at most
    one order gives a known format.

    Parameters
    ----------
    binary : bytes
        The 400-byte binary header.

    Returns
    -------
    str

    >>> b = bytearray(400); b[24:26] = (1).to_bytes(2, "little")
    >>> detect_endian(bytes(b))
    'little'
    """
    candidates = [
        endian
        for endian in ("big", "little")
        if summarise_binary_header(binary, endian).sample_format in SAMPLE_FORMATS
    ]
    if len(candidates) != 1:
        codes = {e: summarise_binary_header(binary, e).sample_format for e in ("big", "little")}
        raise SegyFormatError(
            f"cannot tell the byte order: the binary header's sample format reads as "
            f"{codes['big']} (big-endian) and {codes['little']} (little-endian); "
            f"expected one of {sorted(SAMPLE_FORMATS)}; pass --endian big or --endian little"
        )
    return candidates[0]


def sample_dtype(sample_format: int, endian: str) -> np.dtype:
    """The on-disk numpy dtype of one sample (IBM floats as raw 4-byte words).

    Parameters
    ----------
    sample_format : int
        SEG-Y sample format code (binary header bytes 3225-3226).
    endian : str
        "big" or "little".

    Returns
    -------
    np.dtype
    """
    kind, _ = SAMPLE_FORMATS[sample_format]
    return np.dtype(f"{BYTE_ORDER_PREFIX[endian]}{kind}")


def decode_samples(
    raw: np.ndarray, sample_format: int, endian: str, out: np.ndarray | None = None
) -> np.ndarray:
    """Turn raw sample bytes shaped ``(n_traces, n_bytes)`` into float32 values.

    Parameters
    ----------
    raw : np.ndarray
        Raw bytes.
    sample_format : int
        SEG-Y sample format code (binary header bytes 3225-3226).
    endian : str
        "big" or "little".
    out : np.ndarray, optional
        A C-contiguous float32 array ``(n_traces, n_samples)`` to decode into
        (IBM floats are converted there in place: no temporary copy).

    Returns
    -------
    np.ndarray
        ``out`` when given.

    >>> raw = np.array([[0x41, 0x10, 0, 0, 0xC2, 0x76, 0xA0, 0]], np.uint8)
    >>> decode_samples(raw, 1, "big").tolist()
    [[1.0, -118.625]]
    """
    words = raw.view(sample_dtype(sample_format, endian))
    if out is None:
        out = np.empty(words.shape, np.float32)
    if sample_format != 1:
        out[...] = words
        return out
    out.view(">u4")[...] = words  # the IBM words as big-endian bytes, as segyio's converter reads them
    native = segyio.tools.native(out, format=1, copy=False)
    if native is not out:  # converted elsewhere (an older segyio): keep the promise of ``out``
        out[...] = native
    return out


#: Values encoded at a time (1 MiB): a step's temporaries are reused from the allocator and stay in
#: cache. Whole 19 M-value blocks in fresh temporaries took 0.2 to 1.9 s here, in steps 0.07 s.
IBM_STEP = 2**18


def float32_to_ibm(values: np.ndarray, dtype: np.dtype | str = np.uint32) -> np.ndarray:
    """Encode float32 values as IBM System/360 single-precision words.

    Values that came from IBM floats encode back to the same words; others are
    truncated to IBM's 24-bit hexadecimal mantissa, as segyio does.

    Parameters
    ----------
    values : np.ndarray
        The samples.
    dtype : numpy.dtype or str
        The words' integer type: native ``uint32``, or ``">u4"`` to have them
        as a file's big-endian bytes.

    Returns
    -------
    np.ndarray
        The words, shaped as ``values``.

    >>> [hex(w) for w in float32_to_ibm(np.array([1.0, -118.625, 0.0], np.float32))]
    ['0x41100000', '0xc276a000', '0x0']
    >>> float32_to_ibm(np.array([1.0, -118.625], np.float32), ">u4").tobytes().hex()
    '41100000c276a000'
    """
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    words = np.empty(flat.shape, dtype)
    for start in range(0, flat.size, IBM_STEP):
        words[start : start + IBM_STEP] = _ibm_words(flat[start : start + IBM_STEP])
    return words.reshape(np.shape(values))


def _ibm_words(values: np.ndarray) -> np.ndarray:
    """IBM words (native uint32) of contiguous float32 ``values``."""
    # 32-bit words, in place where it can be (64-bit temporaries doubled the time of an export): a
    # float32's exponent always fits IBM's (16**-33 to 16**33), so nothing over- or underflows.
    bits = values.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    # value = 1.m * 2**(biased - 127) = 0.m' * 16**hex_exponent with 0.m' in [1/16, 1)
    shifted = (magnitude >> 23).view(np.int32) - 126
    hex_exponent = (shifted + 3) >> 2  # ceil(shifted / 4)
    words = (bits & np.uint32(0x7FFFFF)) | np.uint32(0x800000)  # 24 bits with the hidden one
    words >>= (4 * hex_exponent - shifted).view(np.uint32)  # the 0..3 bits lost to hex normalisation
    words |= (hex_exponent + 64).view(np.uint32) << 24
    words[magnitude == 0] = 0
    words |= bits & np.uint32(0x80000000)  # the sign, zeros' too
    return words


def encode_samples(values: np.ndarray, sample_format: int, endian: str) -> np.ndarray:
    """Encode float values shaped ``(n_traces, n_samples)`` as raw sample bytes.

    Integer formats refuse values they cannot hold (clipping would turn an
    unclassified -1 into class 0 in an unsigned file, silently).

    Parameters
    ----------
    values : numpy.ndarray
        Samples, ``(n_traces, n_samples)``.
    sample_format : int
        SEG-Y sample format code.
    endian : {"big", "little"}
        Byte order.

    Returns
    -------
    numpy.ndarray
        ``uint8`` bytes, ``(n_traces, n_samples * itemsize)``.

    >>> encode_samples(np.array([[-1.0]]), 16, "big")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.SegyFormatError: value -1 does not fit the 1-byte unsigned ... (0 to 255)
    """
    dtype = sample_dtype(sample_format, endian)
    if sample_format == 1:
        encoded = float32_to_ibm(values, dtype)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        outside = ~((rounded >= info.min) & (rounded <= info.max))  # NaN is outside too
        if outside.any():
            raise SegyFormatError(
                f"value {rounded[outside][0]:g} does not fit the {SAMPLE_FORMAT_NAMES[sample_format]} "
                f"samples of the source file ({info.min} to {info.max})"
            )
        encoded = rounded.astype(dtype)
    else:
        encoded = values.astype(dtype)
    return encoded.view(np.uint8).reshape(values.shape[0], values.shape[1] * dtype.itemsize)


#: Binary header offset (from the file's start) of the 2-byte sample format code, bytes 3225-3226.
SAMPLE_FORMAT_OFFSET = TEXT_HEADER_SIZE + 24
#: What a variable of fractions is written as where the source's samples are integers.
FLOAT_FORMAT = 5


def export_format(source_format: int, holds_fractions: bool) -> int:
    """The sample format to export in: the source's, or IEEE float where it would round fractions.

    Parameters
    ----------
    source_format : int
        The source file's format code.
    holds_fractions : bool
        The variable holds values between whole numbers (probability, uncertainty).

    Returns
    -------
    int

    >>> export_format(3, holds_fractions=True), export_format(3, False), export_format(1, True)
    (5, 3, 1)
    """
    integer = SAMPLE_FORMATS[source_format][0][0] in "iu" and source_format != 1  # 1: IBM float words
    return FLOAT_FORMAT if integer and holds_fractions else source_format


def with_sample_format(head: bytes, sample_format: int, endian: str) -> bytes:
    """The file's head (text and binary headers) with another sample format code.

    Parameters
    ----------
    head : bytes
        The textual header, binary header and extended headers, as read.
    sample_format : int
        The new code.
    endian : {"big", "little"}
        The file's byte order.

    Returns
    -------
    bytes

    >>> head = bytes(3600)
    >>> summarise_binary_header(with_sample_format(head, 5, "big")[3200:], "big").sample_format
    5
    """
    code = np.array([sample_format], dtype=BYTE_ORDER_PREFIX[endian] + "i2").tobytes()
    return head[:SAMPLE_FORMAT_OFFSET] + code + head[SAMPLE_FORMAT_OFFSET + 2 :]


def decode_text_header(raw: bytes) -> str:
    """Textual header as text: EBCDIC when it looks like EBCDIC, else ASCII; 80-character lines.

    A 3200-byte header reads as its 40 card images, one per line.

    Parameters
    ----------
    raw : bytes
        Raw bytes.

    Returns
    -------
    str

    >>> decode_text_header("C 1 hello".encode("cp037"))
    'C 1 hello'
    >>> lines = decode_text_header(b"C" * 3200).splitlines()
    >>> len(lines), {len(line) for line in lines}
    (40, {80})
    """
    ebcdic = raw[:1] == "C".encode("cp037") or sum(b >= 0x80 for b in raw) > len(raw) // 4
    text = raw.decode("cp037" if ebcdic else "ascii", errors="replace").replace("\x00", " ")
    if "\n" in text:  # an ASCII header with its own line breaks
        return text
    return "\n".join(text[start : start + TEXT_LINE] for start in range(0, len(text), TEXT_LINE))


def card_images(text: str) -> list[str]:
    """Text as a textual header's 40 card images of 80 characters (cut or padded with spaces).

    Parameters
    ----------
    text : str
        Lines of text.

    Returns
    -------
    list[str]

    >>> images = card_images("C 1 hello")
    >>> len(images), images[0].rstrip(), {len(image) for image in images}
    (40, 'C 1 hello', {80})
    """
    lines = text.splitlines()[: TEXT_HEADER_SIZE // TEXT_LINE]
    lines += [""] * (TEXT_HEADER_SIZE // TEXT_LINE - len(lines))
    return [line[:TEXT_LINE].ljust(TEXT_LINE) for line in lines]


def encode_text_header(text: str) -> bytes:
    """Text as a 3200-byte EBCDIC textual header (the inverse of :func:`decode_text_header`).

    Parameters
    ----------
    text : str
        Lines of text.

    Returns
    -------
    bytes

    >>> decode_text_header(encode_text_header("C 1 hello")).splitlines()[0].rstrip()
    'C 1 hello'
    """
    return "".join(card_images(text)).encode("cp037")


def to_base64(raw: bytes) -> str:
    """Bytes as base64 text, for Zarr attributes (which are JSON).

    Parameters
    ----------
    raw : bytes
        Raw bytes.

    Returns
    -------
    str
    """
    return base64.b64encode(raw).decode("ascii")


def from_base64(text: str) -> bytes:
    """Inverse of :func:`to_base64`.

    Parameters
    ----------
    text : str
        The text to read.

    Returns
    -------
    bytes
    """
    return base64.b64decode(text.encode("ascii"))
