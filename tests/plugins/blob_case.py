"""The test plugin's conformance case, registered the way an out-of-tree backend registers its
own (`threatlang.testing.register`); `test_outside_conformance.py` runs the shipped suite on it
in a fresh process where the plugin is installed through its entry point."""

from __future__ import annotations

import itertools

import blob_backend
import numpy as np

from threatlang.testing import Case, Run, Trouble, register

PER_CLASS = 15
RADIUS = 0.2
SPEC = f"""threatlang 1
spec blobs {{
  model blob_linear
  data blobs {{ per_class {PER_CLASS} }}
  seed 0
  threat linf_ball {{ radius {RADIUS} }}
  require label_unchanged
  train least_squares
  certify corner_check {{ margin 0.05 }}
}}
"""


def every_corner(run: Run, ids: list[str]) -> dict[str, str]:
    """The exact check of a linear margin over a 2-D box: its four corners."""
    x, y = blob_backend.blob_data(0, PER_CLASS)
    w = blob_backend.fit(x, y)
    broken = {}
    for rid in ids:
        rec = run.record(rid)
        point, label = np.array(rec.values["x"]), rec.values["label"]
        diff = w[label] - w[1 - label]
        for signs in itertools.product((-1, 1), repeat=2):
            corner = point + RADIUS * np.array(signs)
            if float(diff @ corner) <= 0:
                broken[rid] = f"corner {corner.tolist()} is misclassified"
                break
    return broken


def _clean(run: Run) -> set[str]:
    return {r.id for r in run.result.records if r.values["clean"]}


def _ladder(run: Run) -> list[tuple[str, float, float, float]]:
    m, n = run.result.summary.metrics, len(run.result.records)
    clean = sorted(_clean(run))
    empirical = (len(clean) - len(every_corner(run, clean))) / n
    return [("accuracy", m["certified_accuracy"], empirical, m["clean_accuracy"])]


def _nan_weights(monkeypatch) -> None:
    monkeypatch.setattr(blob_backend, "fit", lambda x, y: np.full((2, 2), np.nan))


BLOB_CASE = Case(
    id="blobs",
    backend="blobs",
    spec=SPEC,
    prepare=lambda directory: {},
    attack=every_corner,
    clean=_clean,
    ladder=_ladder,
    troubles=(Trouble("NaN weights", patch=_nan_weights),),
    distributes=True,
)

register(BLOB_CASE)
