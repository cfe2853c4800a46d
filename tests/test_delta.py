"""Binary deltas: any base and target round-trip, and small edits give small deltas."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exactvc.delta import apply_delta, delta_size, make_delta

edits_st = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 5000),
                              st.binary(min_size=1, max_size=80)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(base=st.binary(max_size=5000), edits=edits_st)
def test_delta_rebuilds_the_target(base: bytes, edits: list[tuple[str, int, bytes]]) -> None:
    new = bytearray(base)
    for kind, pos, data in edits:
        pos = min(pos, len(new))
        if kind == "insert":
            new[pos:pos] = data
        elif kind == "delete":
            del new[pos : pos + len(data)]
        else:
            new[pos : pos + len(data)] = data
    ops = make_delta(base, bytes(new))
    assert apply_delta(base, ops) == bytes(new)
    assert delta_size(ops) <= len(new) + 8 * (2 * len(edits) + 3)


def test_a_changed_length_and_record_in_a_leaf_give_a_small_delta() -> None:
    """The leaf layout (lengths, then records): one record grows by a byte, the delta stays near its size."""
    import os
    import struct

    recs = [os.urandom(150) for _ in range(64)]
    old = struct.pack("<64I", *map(len, recs)) + b"".join(recs)
    recs[40] = os.urandom(151)
    new = struct.pack("<64I", *map(len, recs)) + b"".join(recs)
    ops = make_delta(old, new)
    assert apply_delta(old, ops) == new
    assert delta_size(ops) < 151 + 4 + 64
