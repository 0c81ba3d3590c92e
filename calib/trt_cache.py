"""TensorRT's INT8 calibration cache, in TensorRT's own text format, read and written without TensorRT.

Why our own reader/writer: a rebuild on TensorRT 10 (JetPack 6) with a cache skips calibration, so a
cache for another model, another TensorRT version or another calibration algorithm must be caught
before TensorRT silently applies its scales. TensorRT itself only warns, or quietly uses what it finds.

The format (what ``IInt8EntropyCalibrator2.write_calibration_cache`` hands over, also what ``trtexec
--calib`` reads)::

    TRT-100300-EntropyCalibration2
    images: 3c010a14
    /backbone/conv1/Conv_output_0: 3d8f2c51

- line 1: ``TRT-<version>-<algorithm>``; ``<version>`` is TensorRT's ``NV_TENSORRT_VERSION``:
  ``major*10000 + minor*100 + patch`` from TensorRT 10 on (10.3.0 → ``100300``), ``major*1000 +
  minor*100 + patch`` before (8.5.1 → ``8501``). ``<algorithm>`` is ``EntropyCalibration2``,
  ``MinMaxCalibration``, ``EntropyCalibration`` or ``LegacyCalibration``.
- one line per tensor: ``<name>: <hex>``, the scale's IEEE-754 float32 bit pattern in hex. edgedet
  writes all 8 digits; NVIDIA's tools print the bits unpadded (``std::hex`` of the uint32), so 1–8 digits
  are read (``3c010a14``, but also ``0`` or ``1a2b3c``). Names may contain ``:`` and spaces, so the
  split is on the last ``": "``.

Pure Python (no numpy, no torch): runs on any machine, tested bit-exactly on a CPU.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import EdgedetError
from edgedet.fileio import atomic_write_text

#: ``--calib-method`` choice → the algorithm name TensorRT writes in the header.
ALGORITHMS = {"entropy": "EntropyCalibration2", "minmax": "MinMaxCalibration"}

_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{1,8}$")


@dataclass(frozen=True)
class CacheHeader:
    """The first line of a cache: TensorRT's version number (as TensorRT encodes it) and the algorithm."""

    version_tag: str
    algorithm: str

    def __str__(self) -> str:
        return f"TRT-{self.version_tag}-{self.algorithm}"


def version_tag(version: str) -> str:
    """TensorRT's ``NV_TENSORRT_VERSION`` for ``"10.3.0"`` (→ ``"100300"``) or ``"8.5.1.7"`` (→ ``"8501"``).

    A string of digits only is taken as an already encoded tag and returned as it is.
    """
    version = str(version).strip()
    if version.isdigit():
        return version
    parts = version.split(".")
    try:
        major, minor, patch = (int(p) for p in (parts + ["0", "0"])[:3])
    except ValueError:
        raise EdgedetError(f"not a TensorRT version: {version!r}") from None
    if major >= 10:
        return str(major * 10000 + minor * 100 + patch)
    return str(major * 1000 + minor * 100 + patch)


def encode_scale(scale: float) -> str:
    """float → 8 lower-case hex digits of its big-endian float32 bits (``1.0`` → ``3f800000``)."""
    if not math.isfinite(scale):
        raise EdgedetError(f"calibration scale must be finite, not {scale!r}")
    return struct.pack(">f", scale).hex()


def decode_scale(digits: str) -> float:
    """1–8 hex digits of float32 bits (unpadded, as NVIDIA's tools write them) → the value, exactly."""
    if not _HEX.match(digits):
        raise ValueError(f"not 1-8 hex digits: {digits!r}")
    return struct.unpack(">f", bytes.fromhex(digits.rjust(8, "0")))[0]


def format_cache(version: str, algorithm: str, scales: Mapping[str, float]) -> str:
    """The cache text for ``scales`` (tensor name → scale), in insertion order."""
    header = CacheHeader(version_tag(version), algorithm)
    if not _HEADER.match(str(header)):
        raise EdgedetError(f"bad calibration algorithm name {algorithm!r}")
    lines = [str(header)]
    for name, scale in scales.items():
        if not name or "\n" in name:
            raise EdgedetError(f"bad tensor name in calibration cache: {name!r}")
        lines.append(f"{name}: {encode_scale(float(scale))}")
    return "\n".join(lines) + "\n"


def parse_cache(text: str, *, source: str = "calibration cache") -> tuple[CacheHeader, dict[str, float]]:
    """Header and scales of a cache's text; :class:`EdgedetError` naming the first bad line."""
    lines = text.splitlines()
    m = _HEADER.match(lines[0].strip()) if lines else None
    if m is None:
        first = lines[0][:60] if lines else "an empty file"
        raise EdgedetError(f"{source} is not a TensorRT calibration cache (starts with {first!r}, "
                           "not 'TRT-<version>-<algorithm>')")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, digits = line.rpartition(": ")
        try:
            if not sep or not name:
                raise ValueError("no 'name: scale'")
            scales[name] = decode_scale(digits.strip())
        except ValueError:
            raise EdgedetError(f"{source} line {number} is not 'name: <1-8 hex digits>': {line[:80]!r}") from None
    return CacheHeader(m.group(1), m.group(2)), scales


def write_cache(path: str | Path, version: str, algorithm: str, scales: Mapping[str, float], *,
                overwrite: bool = True) -> Path:
    """Write a cache atomically (``version`` as ``"10.3.0"`` or an encoded tag like ``"100300"``)."""
    return atomic_write_text(path, format_cache(version, algorithm, scales), overwrite=overwrite)


def read_cache(path: str | Path) -> tuple[CacheHeader, dict[str, float]]:
    """``(header, scales)`` of a cache file; :class:`EdgedetError` if it is missing or malformed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgedetError(f"cannot read calibration cache {path}: {e.strerror or e}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise EdgedetError(f"{path} is not a TensorRT calibration cache (not text)") from None
    return parse_cache(text, source=str(path))


def check_cache(path: str | Path, *, expected_algorithm: str, trt_version: str,
                tensor_names: Iterable[str]) -> tuple[CacheHeader, dict[str, float]]:
    """Read a cache and refuse it unless it was written by this TensorRT version, with this algorithm,
    for this network; returns ``(header, scales)``.

    The tensor-name rule: every name in the cache must be a tensor of the network, and the cache must not
    be empty. TensorRT leaves out tensors it does not quantize (int32 outputs, shape tensors), so a valid
    cache may name fewer tensors than the network has; a name the network lacks means the cache was made
    for another model (or another export of it), whose scales would be wrong here.
    ``expected_algorithm`` is TensorRT's name (``EntropyCalibration2``) or the ``--calibrator`` choice.
    """
    header, scales = read_cache(path)
    algorithm = ALGORITHMS.get(expected_algorithm, expected_algorithm)
    tag = version_tag(trt_version)
    rebuild = "delete it (or pass another --calib-cache) and calibrate again with --calib-images DIR"
    if header.version_tag != tag:
        raise EdgedetError(f"calibration cache {path} is for TensorRT {header.version_tag} ({header}), this is "
                           f"TensorRT {trt_version} ({tag}); {rebuild}")
    if header.algorithm != algorithm:
        raise EdgedetError(f"calibration cache {path} was made by {header.algorithm}, not {algorithm}; "
                           f"pass the matching --calibrator or {rebuild}")
    if not scales:
        raise EdgedetError(f"calibration cache {path} holds no scales; {rebuild}")
    known = set(tensor_names)
    foreign = [n for n in scales if n not in known]
    if foreign:
        raise EdgedetError(f"calibration cache {path} names {len(foreign)} tensor(s) this network lacks "
                           f"(first: {foreign[0]!r}): it was made for another model; {rebuild}")
    return header, scales
