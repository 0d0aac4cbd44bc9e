"""The benchmark's wire payload: who sent it, its sequence number and when it was *due*.

Every message starts with a 24-byte header (publisher id, channel index, step, sequence
number per publisher and channel, intended send time in ``perf_counter_ns``) and is padded
to the requested size. ``perf_counter_ns`` is CLOCK_MONOTONIC on Linux: one clock for every
process on the host, so a subscriber can subtract a publisher's timestamp.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("<HHIQQ")
HEADER_SIZE = HEADER.size
MIN_SIZE = HEADER_SIZE


class Header(NamedTuple):
    """Decoded message header."""

    pub_id: int
    chan: int
    step: int
    seq: int
    intended_ns: int


def encode(pub_id: int, chan: int, step: int, seq: int, intended_ns: int, pad: bytes) -> bytes:
    """Header plus ``pad`` (``pad`` is ``size - HEADER_SIZE`` bytes, built once by the caller)."""
    return HEADER.pack(pub_id, chan, step, seq, intended_ns) + pad


def padding(size: int) -> bytes:
    """Filler so that a message is exactly ``size`` bytes."""
    if size < MIN_SIZE:
        raise ValueError(f"message size {size} is below the {MIN_SIZE}-byte header")
    return b"x" * (size - HEADER_SIZE)


def decode(payload: bytes) -> Header:
    """Read the header back; ignores the padding."""
    return Header(*HEADER.unpack_from(payload))
