"""Canonical msgpack encoding and blake3 object ids.

Every stored object is ``msgpack([type_tag, body])`` in canonical form:

* maps have string keys, written in ascending order of their UTF-8 bytes;
* integers use msgpack's shortest form (what msgpack-python writes);
* floats are float64, never NaN or infinite, ``-0.0`` is written as ``0``,
  and a float with an integral value is written as an integer;
* strings are UTF-8 ``str``; raw bytes are ``bin``; no extension types.

An object's id is ``blake3(b"exactvc:" + type_tag + b"\\0" + encoded_bytes)``,
32 bytes, shown as 64 lowercase hex characters. The type tag inside the
domain prefix separates id spaces: bytes that decode as one type can never be
taken for another.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import blake3
import msgpack

from .errors import CorruptObject, InvalidInput

ID_LEN = 32
HEX_LEN = 64

_packer = msgpack.Packer(use_bin_type=True, autoreset=True, strict_types=False)


def canonicalize(value: Any) -> Any:
    """Return ``value`` with every map sorted and every float normalised.

    Raises InvalidInput for values that have no canonical form (NaN, non-string keys...).
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None or t is bytes:
        return value
    if t is dict:
        try:
            keys = sorted(value)  # str keys: code point order is UTF-8 byte order
        except TypeError:
            keys = None
        if keys is None or (keys and not isinstance(keys[0], str)):  # one str: all comparable, all str
            keys = sorted(value, key=_key_bytes)  # raises the error for a non-string key
        return {k: canonicalize(value[k]) for k in keys}
    if t is list or t is tuple:
        return [canonicalize(v) for v in value]
    if isinstance(value, bool) or isinstance(value, (str, bytes, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"non-finite number {value!r} cannot be stored")
        if value.is_integer():
            return int(value)
        return value
    if isinstance(value, dict):
        return canonicalize(dict(value))
    if isinstance(value, (list, tuple)):
        return [canonicalize(v) for v in value]
    raise InvalidInput(f"value of type {type(value).__name__} cannot be stored")


def _key_bytes(k: object) -> bytes:
    if not isinstance(k, str):
        raise InvalidInput(f"map key {k!r} is not a string")
    return k.encode("utf-8")


def pack(value: Any) -> bytes:
    """Encode an already-canonical value (see :func:`canonicalize`)."""
    return _packer.pack(value)


def pack_canonical(value: Any) -> bytes:
    return _packer.pack(canonicalize(value))


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise CorruptObject(f"bytes do not decode as msgpack: {exc}") from None


def object_id(type_tag: str, data: bytes) -> bytes:
    h = blake3.blake3(b"exactvc:")
    h.update(type_tag.encode("ascii"))
    h.update(b"\0")
    h.update(data)
    return h.digest()


def to_hex(oid: bytes) -> str:
    return oid.hex()


def from_hex(text: str) -> bytes:
    if len(text) != HEX_LEN:
        raise InvalidInput(f"object id must be {HEX_LEN} hex characters: {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"object id is not hexadecimal: {text!r}") from None


@functools.lru_cache(maxsize=1 << 20)
def key_hash(key: bytes) -> int:
    """64-bit hash of a tree key, used to place chunk boundaries (cached: re-cutting a node re-reads it)."""
    return int.from_bytes(blake3.blake3(b"exactvc:chunk\0" + key).digest(length=8), "big")
