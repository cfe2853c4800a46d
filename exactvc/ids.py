"""Annotation ids: 128-bit, time-ordered (UUID version 7 layout), shown as UUID text.

UUID text keeps them compatible with QuPath, whose objects carry UUIDs: an
imported QuPath id is kept as it is; ids made here sort by creation time.
"""

from __future__ import annotations

import os
import random
import threading
import time

from .errors import InvalidInput

_lock = threading.Lock()
_rng = random.Random(os.urandom(16))
# a forked child must not repeat its parent's random stream
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(16)))
_last = [0, 0]  # last ms timestamp, last counter


def new_annotation_id() -> bytes:
    """A fresh 16-byte id: 48-bit ms timestamp, version 7, 12-bit counter, 62 random bits.

    Ids made in one process are strictly increasing, even within one millisecond.
    """
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            _last[1] += 1
            if _last[1] >= 0x1000:
                ms += 1
                _last[1] = 0
        else:
            _last[1] = int.from_bytes(os.urandom(1), "big")  # random start within the ms
        _last[0] = ms
        counter = _last[1]
    rand = _rng.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return value.to_bytes(16, "big")


def format_id(key: bytes) -> str:
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_id(text: str) -> bytes:
    if type(text) is str and len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        try:  # the usual form, without the uuid module
            b = bytes.fromhex(text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])
        except ValueError:
            b = b""
        if len(b) == 16:
            return b
    try:
        import uuid  # here: the standard library module costs start-up time for every command

        return uuid.UUID(text.strip()).bytes
    except (ValueError, AttributeError):
        raise InvalidInput(f"not an annotation id (UUID expected): {text!r}") from None
