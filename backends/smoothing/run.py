"""Run a compiled detection plan: models, base AP, per-image certificates, attack, report."""

from __future__ import annotations

import functools
import time

import attrs
import torch

from threatlang.report import Record, Status, Summary, Table
from threatlang.runloop import run_items
from threatlang.runtime import generator
from threatlang.stats import InsufficientSamples, per_side_confidence

from .detection.attack import dag_attack, supports_dag
from .detection.certify import detection_stats
from .detection.encoding import Binning, Sorting
from .detection.metrics import Counts, average_precision, smoothed_counts, step_ap
from .detection.pipeline import SmoothingSetup, certify_image, combo_key, encodings_for
from .detection.plot import plot_certified_boxes
from .detection.scenes import CLASS_NAMES
from .detection.types import Detections, from_torchvision
from .models_io import build_denoiser, build_detector, load_scenes
from .summary import SmoothingSummary, as_metrics

__all__ = ["run_detection"]

_BINS = {
    "none": Binning.NONE,
    "label": Binning.LABEL,
    "location": Binning.LOCATION,
    "label_location": Binning.LOCATION_LABEL,
}


def _targets(scenes, i, device):
    return (
        torch.from_numpy(scenes.boxes[i]).to(device),
        torch.from_numpy(scenes.labels[i]).to(device),
    )


@torch.no_grad()
def _base_detections(detector, test, device, batch=128) -> Detections:
    x = torch.from_numpy(test.images).to(device)
    parts = []
    for s in range(0, x.shape[0], batch):
        out = detector(x[s : s + batch])
        parts.append(out if isinstance(out, Detections) else from_torchvision(out))
    return Detections.cat(parts)


def _counts_json(result) -> dict:
    return {
        key: {
            f"{t:g}": [c.correct, c.predicted, c.ground_truth, k.correct, k.predicted]
            for t, (c, k) in per.items()
        }
        for key, per in result.counts.items()
    }


def _certify_item(setup, seed: int, device: str, headline, payload) -> Record:
    """One image; the shared detector setup is bound with functools.partial, so an executor
    that leaves the process (Ray) ships it once per worker, not once per image."""
    index, image, boxes, labels = payload
    start = time.perf_counter()
    gen = generator(seed, f"image-{index}", device)
    result = certify_image(setup, image.to(device), boxes, labels, gen)
    low = min(setup.thresholds)
    cert = next(
        c for c in result.certificates if combo_key(c.encoding) == headline and c.threshold == low
    )
    possible = torch.isfinite(cert.lower[:, 0])
    _, certified = result.counts[headline][low]
    values = {
        "counts": _counts_json(result),
        "headline": headline,
        "threshold": low,
        "slots": possible.nonzero().flatten(),
        "median": cert.median[possible],
        "lower": cert.lower[possible],
        "upper": cert.upper[possible],
        "worst_case_iou": result.worst_iou[(headline, low)][possible],
        "gt_boxes": boxes,
        "gt_labels": labels,
    }
    seconds = time.perf_counter() - start
    m = certified.ground_truth
    if m > 0 and certified.correct == m:
        return Record(f"image-{index}", Status.CERTIFIED, values, seconds)
    why = f"{certified.correct} of {m} objects certified at objectness {low:g} ({headline})"
    return Record(f"image-{index}", Status.UNKNOWN, values, seconds, reason=why)


def _pool(records, key: str, thresholds) -> tuple[list[Counts], list[Counts]]:
    clean = {t: Counts() for t in thresholds}
    cert = {t: Counts() for t in thresholds}
    for r in records:
        per = r.values.get("counts", {}).get(key, {})
        for t in thresholds:
            c = per.get(f"{t:g}")
            if c is not None:
                clean[t] = clean[t] + Counts(c[0], c[1], c[2])
                cert[t] = cert[t] + Counts(c[3], c[4], c[2])
    order = sorted(thresholds, reverse=True)  # recall grows as the threshold falls
    return [clean[t] for t in order], [cert[t] for t in order]


def _base_step_counts(base: Detections, test, thresholds, tau, device) -> list[Counts]:
    out = []
    for t in sorted(thresholds, reverse=True):
        total = Counts()
        for i in range(len(test)):
            keep = base.valid[i] & (base.scores[i] >= t)
            med = torch.cat([base.boxes[i][keep], base.labels[i][keep, None].float()], 1)
            total = total + smoothed_counts(med, *_targets(test, i, device), tau)
        out.append(total)
    return out


def _attack_phase(plan, ctx, setup, records, detector, denoiser, test, device) -> dict:
    """DAG on the smoothed detector; empirical recall of the smoothed detector under attack,
    beside the certified recall of the same images (which the attack must not undercut)."""
    if plan.attack is None:
        return {}
    if not supports_dag(detector):
        return {"attack_skipped": "detector exposes no differentiable raw head for DAG"}
    with ctx.timings.measure("attack"):
        return _dag(plan, ctx, setup, records, detector, denoiser, test, device)


def _dag(plan, ctx, setup, records, detector, denoiser, test, device) -> dict:
    opts = plan.attack_options
    images = min(opts.images, len(test))
    low = min(setup.thresholds)
    enc = _headline_encoding(plan, setup)
    headline = combo_key(enc)
    one = attrs.evolve(setup, encodings=(enc,), thresholds=(low,))
    _, certified = _pool(records[:images], headline, (low,))
    attacked, violations = Counts(), 0
    gen = ctx.generator("dag-attack")
    for i in ctx.progress.track(range(images), total=images, description="DAG attack"):
        image = torch.from_numpy(test.images[i]).to(device)
        boxes, labels = _targets(test, i, device)
        x_adv = dag_attack(
            detector, denoiser, image, boxes, labels, plan.eps, setup.sigma,
            plan.attack.steps, opts.noise_samples, gen, plan.attack_step,
        )  # fmt: skip
        r = certify_image(one, x_adv, boxes, labels, ctx.generator(f"attack-image-{i}"))
        found = r.counts[headline][low][0]
        attacked = attacked + found
        _, sure = _pool(records[i : i + 1], headline, (low,))
        violations += int(found.correct < sure[0].correct)  # a certified object was lost
    clean_recall = _pool(records[:images], headline, (low,))[0][0].recall
    return {
        "attack_images": images,
        "attack_recall": attacked.recall,
        "attack_clean_recall": clean_recall,
        "attack_certified_recall": certified[0].recall,
        "soundness_violations": violations,
    }


def _headline_encoding(plan, setup):
    sort, binning = plan.headline
    want = (_BINS[binning.value], Sorting(sort.value))
    return next(e for e in setup.encodings if (e.binning, e.sorting) == want)


def _plot(plan, ctx, records, test) -> list:
    n = min(plan.options.plot_images, len(records))
    if n == 0:
        return []
    images, certs, gts = [], [], []
    for r in records[:n]:
        v = r.values
        med = torch.tensor([[float(a) for a in row] for row in v["median"]]).reshape(-1, 5)
        lo = torch.tensor([[float(a) for a in row] for row in v["lower"]]).reshape(-1, 5)
        hi = torch.tensor([[float(a) for a in row] for row in v["upper"]]).reshape(-1, 5)
        wc = torch.tensor([float(a) for a in v["worst_case_iou"]])
        ok = torch.isfinite(hi).all(-1) & (lo[:, 4] == hi[:, 4]) & (wc >= plan.tau)
        images.append(torch.from_numpy(test.images[int(r.id.split("-")[1])]))
        certs.append((med, lo, hi, ok))
        gts.append(torch.tensor(v["gt_boxes"], dtype=torch.float32).reshape(-1, 4))
    title = (
        f"bin {plan.headline[1].value}, sort {plan.headline[0].value}: sigma {plan.smooth.sigma:g},"
        f" ||delta|| < {plan.eps:g}; green: certified, red X: not certified"
    )
    return [
        plot_certified_boxes(
            ctx.artifact("certified_boxes.png"), images, certs, CLASS_NAMES, title, gts
        )
    ]


def _insufficient(ctx, plan, stats: InsufficientSamples, images: int) -> Summary:
    for i in range(images):
        values = {"min_samples": stats.min_n}
        ctx.records.append(Record(f"image-{i}", Status.UNKNOWN, values, reason=stats.reason))
    s = plan.smooth
    summary = SmoothingSummary(
        mode="detection", status="unknown", reason=stats.reason, images=images, sigma=s.sigma,
        eps=plan.eps, samples=stats.n, confidence=s.confidence, min_samples=stats.min_n,
    )  # fmt: skip
    return Summary(as_metrics(summary))


def _bounds_per_image(plan, num_classes: int) -> int:
    """Every one-sided bound one image reports: slots x 5 coordinates x 2 sides, per threshold
    and encoding (a union bound over all of them gives the simultaneous confidence)."""
    cells = plan.grid * plan.grid
    per_bin = {
        "none": 1,
        "label": num_classes,
        "location": cells,
        "label_location": cells * num_classes,
    }
    slots = sum(per_bin[b.value] for b in plan.bins) * plan.slots_per_bin * len(plan.sorts)
    return slots * 5 * 2 * len(plan.options.thresholds)


def run_detection(plan, ctx) -> Summary:
    device = torch.device(ctx.device)
    train, test = load_scenes(plan, ctx)
    num_classes = len(CLASS_NAMES)
    s = plan.smooth
    bounds = _bounds_per_image(plan, num_classes) if plan.options.simultaneous else 2
    per_bound = per_side_confidence(s.confidence, bounds) if bounds > 2 else s.confidence
    stats = detection_stats(s.samples, plan.eps, s.sigma, per_bound)
    if isinstance(stats, InsufficientSamples):  # unknown for every image, before any compute
        return _insufficient(ctx, plan, stats, len(test))
    detector = build_detector(plan, ctx, train, num_classes)
    denoiser = build_denoiser(plan, ctx, train)
    size = tuple(test.images.shape[-2:])
    encodings = encodings_for(
        [Sorting(o.value) for o in plan.sorts], [_BINS[b.value] for b in plan.bins],
        num_classes, size, plan.slots_per_bin, plan.grid,
    )  # fmt: skip
    thresholds = tuple(plan.options.thresholds)
    base = _base_detections(detector, test, device)
    targets = [
        {"boxes": torch.from_numpy(b), "labels": torch.from_numpy(lab)}
        for b, lab in zip(test.boxes, test.labels, strict=True)
    ]
    ap50 = average_precision([base.image(i) for i in range(len(test))], targets, plan.tau)
    base_steps = _base_step_counts(base, test, thresholds, plan.tau, device)
    metrics = {
        "ap50": ap50,
        "base_step_ap50": step_ap(base_steps),
        "images": len(test),
        "sigma": s.sigma,
        "eps": plan.eps,
        "samples": s.samples,
        "confidence": s.confidence,
        "confidence_per_bound": per_bound,
        "simultaneous": plan.options.simultaneous,
        "iou_tau": plan.tau,
    }
    setup = SmoothingSetup(
        detector, denoiser, s.sigma, stats, encodings, thresholds, plan.tau, s.batch_size
    )
    headline = combo_key(_headline_encoding(plan, setup))
    items = [
        (f"image-{i}", (i, torch.from_numpy(test.images[i]), *_targets(test, i, "cpu")))
        for i in range(len(test))
    ]
    work = functools.partial(_certify_item, setup, ctx.seed, ctx.device, headline)
    with ctx.timings.measure("certify"):
        records = run_items(ctx, items, work, "smoothing + certifying")
    rows, combos = [("base detector", "-", ap50, "-")], {}
    for enc in encodings:
        key = combo_key(enc)
        clean, cert = _pool(records, key, thresholds)
        combos[key] = {
            "smoothed_ap50": step_ap(clean),
            "certified_ap50": step_ap(cert),
            "precision": [c.precision for c in clean],
            "recall": [c.recall for c in clean],
            "certified_precision": [c.precision for c in cert],
            "certified_recall": [c.recall for c in cert],
        }
        rows.append((enc.binning.value, enc.sorting.value, step_ap(clean), step_ap(cert)))
    hl = combos[headline]
    metrics.update(
        smoothed_ap50=hl["smoothed_ap50"],
        certified_ap50=hl["certified_ap50"],
        headline=headline,
        thresholds=sorted(thresholds, reverse=True),
        k_lower=stats.k_lower,
        k_upper=stats.k_upper,
        combinations=combos,
    )
    metrics.update(_attack_phase(plan, ctx, setup, records, detector, denoiser, test, device))
    metrics.update(
        train_seconds=ctx.timings.get("train"),
        certify_seconds=ctx.timings.get("certify"),
        attack_seconds=ctx.timings.get("attack") if plan.attack is not None else None,
    )
    tables = [
        Table(f"AP@{plan.tau:g} (Table 3.1)", ("binning", "sorting", "AP", "certified AP"), rows),
        Table(
            f"headline {headline}: precision/recall per objectness threshold (Appendix D)",
            ("threshold", "precision", "recall", "cert. precision", "cert. recall"),
            [
                (t, p, r, cp, cr)
                for t, p, r, cp, cr in zip(
                    sorted(thresholds, reverse=True),
                    hl["precision"],
                    hl["recall"],
                    hl["certified_precision"],
                    hl["certified_recall"],
                    strict=True,
                )
            ],  # fmt: skip
        ),
    ]
    summary = SmoothingSummary(mode="detection", **metrics)
    return Summary(as_metrics(summary), tables, _plot(plan, ctx, list(records), test))
