"""A third-party backend as a test plugin: it lives only here and is registered through the
`threatlang.backends` entry-point group, with no edit to threatlang itself.

It brings a new training strategy (`train least_squares`), a new certification method
(`certify corner_check`), a new generated data source (`data blobs { per_class N }`) with its
own options, and a builtin architecture. Its certificate is exact for its linear model: the
worst case of a linear margin over an l-inf box is at a corner, `m(x) - eps * ||d||_1`.
"""

from __future__ import annotations

import attrs

from threatlang.backends.base import (
    Backend,
    Capabilities,
    DataOffer,
    Offer,
    Plan,
    Record,
    Status,
    Summary,
    Table,
)
from threatlang.ir import Certify, LabelUnchanged, Spec, Train
from threatlang.runloop import run_items


@attrs.frozen
class CornerOptions:
    margin: float = 0.0  # certify only when the worst-case margin exceeds this


@attrs.frozen
class BlobOptions:
    per_class: int = 20


@attrs.frozen
class BlobSummary:
    #: fraction of test points the fitted linear model classifies correctly [fraction]
    clean_accuracy: float
    #: fraction whose worst corner of the l-inf box keeps the margin [fraction]
    certified_accuracy: float
    #: certified points whose closed-form worst corner is misclassified (0 unless unsound)
    soundness_violations: int


def blob_data(seed: int, per_class: int):
    """Two Gaussian blobs in 2-D, labels 0 and 1 (the `blobs` data source)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = per_class
    x = np.concatenate([rng.normal(-1, 0.3, (n, 2)), rng.normal(1, 0.3, (n, 2))])
    return x, np.repeat([0, 1], n)


def fit(x, y):
    """The builtin `blob_linear` model: least squares on one-hot targets (its bias column is
    fitted, then dropped: the margin is linear in x)."""
    import numpy as np

    features = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.lstsq(features, np.eye(2)[y], rcond=None)[0].T[:, :2]


@attrs.frozen
class BlobPlan(Plan):
    spec: Spec
    options: CornerOptions
    data: BlobOptions

    def describe(self) -> str:
        return f"corner check, margin > {self.options.margin}, {self.data.per_class} blobs/class"

    def run(self, ctx) -> Summary:
        import numpy as np

        x, y = blob_data(ctx.seed, self.data.per_class)
        w = fit(x, y)
        eps = self.spec.threat.eps
        items = [(f"blob-{i}", (f"blob-{i}", x[i], int(y[i]))) for i in range(len(y))]
        fn = _Certifier(w, eps, self.options.margin)
        records = run_items(ctx, items, fn, "certify corner_check")
        clean = float(np.mean([r.values["clean"] for r in records]))
        cert = float(np.mean([r.status is Status.CERTIFIED for r in records]))
        # the certificate is exact, so the attack is the closed-form worst corner itself
        violations = sum(
            r.status is Status.CERTIFIED and r.values["worst_margin"] <= 0 for r in records
        )
        metrics = attrs.asdict(BlobSummary(clean, cert, violations))
        return Summary(metrics, (Table("blobs", ("metric", "value"), [("certified", cert)]),))


@attrs.frozen
class _Certifier:
    w: object
    eps: float
    margin: float

    def __call__(self, payload) -> Record:
        import numpy as np

        record_id, x, label = payload
        diff = self.w[label] - self.w[1 - label]
        clean_margin = float(diff @ x)
        worst = clean_margin - self.eps * float(np.abs(diff).sum())  # min over the box
        certified = worst > self.margin  # False for NaN: numerical trouble certifies nothing
        return Record(
            record_id,
            Status.CERTIFIED if certified else Status.UNKNOWN,
            {"clean": clean_margin > 0, "worst_margin": worst, "x": x, "label": label},
            reason=None if certified else f"worst-corner margin {worst:.4g} <= {self.margin}",
        )


class BlobBackend(Backend):
    name = "blobs"
    capabilities = Capabilities(
        families={"input ball"},
        properties={LabelUnchanged},
        offers=[Offer(Train, "least_squares"), Offer(Certify, "corner_check", CornerOptions)],
        data=[DataOffer("blobs", BlobOptions)],
        architectures={"blob_linear": "blob_backend:blob_linear"},
        required_modules=("numpy",),
        summary=BlobSummary,
        certifies=True,
        priority=5,
    )

    def compile(self, spec: Spec) -> Plan:
        certify = next(a for a in spec.actions if isinstance(a, Certify))
        from threatlang.backends.base import bind_options

        return BlobPlan(
            spec,
            self.options(spec, certify),
            bind_options(BlobOptions, spec.data.options, "data blobs"),
        )


BACKEND = BlobBackend()


def blob_linear():  # pragma: no cover - the plan fits its weights in closed form
    raise NotImplementedError
