"""Sample analysis: the EIPH score (Doucet's hemosiderin score) from annotations graded 0-4.

A label counts as grade g if its name ends in the digit g (``0`` ... ``4``, ``grade 3``, ``Hemosiderin 2``).
The score is sum_g g * (100 * n_g / n): 0 (no haemosiderophages) to 400.
"""

from __future__ import annotations

import re
from typing import Any

kind = "analysis"
title = "EIPH score (Doucet)"
time_limit = 60.0
_GRADE = re.compile(r"([0-4])\s*$")


def grade(label: str) -> int | None:
    m = _GRADE.search(label)
    return int(m.group(1)) if m else None


def analyse(annotations: list[dict[str, Any]], region: Any, params: dict[str, Any]) -> dict[str, Any]:
    counts = [0] * 5
    for a in annotations:
        g = grade(str(a.get("label", "")))
        if g is not None:
            counts[g] += 1
    n = sum(counts)
    score = sum(g * 100 * c / n for g, c in enumerate(counts)) if n else None
    return {"title": title, "figures": [
        {"kind": "number", "name": "EIPH score", "value": None if score is None else round(score, 1),
         "range": [0, 400]},
        {"kind": "number", "name": "graded cells", "value": n},
        {"kind": "bar", "name": "cells per grade", "labels": ["0", "1", "2", "3", "4"], "values": counts},
    ]}
