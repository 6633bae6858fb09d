"""Certify a fuzz module through the public API with every method and engine, then attack
every certified item; tally what came back.

`certify_and_attack(blueprint)` returns one `Outcome` per item: a test image at one radius
of an l-inf or l2 ball, under a patch threat, or an input box under bab. An item is
- `certified` and survived the attack,
- `broken`: certified, and the attack found a point of its set where the label changes,
- `unknown` (with the backend's reason; `unknown_without_reason` breaks the project's rule),
- `falsified`: the backend found a counterexample,
- `refused`: the run was refused with a one-sentence error (UsageError, SpecError, ...),
- `crashed`: the run raised anything else (a traceback is not a refusal),
and a run that leaves the module's train/eval modes changed is `mode_changed`.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import enum
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np
import torch

import threatlang
from threatlang import ir
from threatlang.errors import CapabilityError, SpecError, UsageError
from threatlang.ir.properties import Conjunction, LinearConstraint, OutputsSatisfy
from threatlang.ir.threats import InputBox

from . import attacks
from .grammar import GRID, INPUT_SHAPE, Blueprint, FuzzNet, build

#: test images per module (the fast slice keeps this small)
IMAGES = 3
#: images bab runs on (one box each)
BAB_IMAGES = 1


class Kind(enum.Enum):
    CERTIFIED = "certified"
    BROKEN = "broken"
    UNKNOWN = "unknown"
    UNKNOWN_WITHOUT_REASON = "unknown_without_reason"
    FALSIFIED = "falsified"
    REFUSED = "refused"
    CRASHED = "crashed"
    MODE_CHANGED = "mode_changed"


#: outcomes that fail the fuzzer
FAILURES = (Kind.BROKEN, Kind.CRASHED, Kind.UNKNOWN_WITHOUT_REASON, Kind.MODE_CHANGED)


@attrs.frozen
class Config:
    """A method with its engine (None: the default, `auto`)."""

    method: str
    engine: str | None = None

    def __str__(self) -> str:
        return self.method + (f" (engine {self.engine})" if self.engine else "")

    def action(self) -> ir.Certify:
        if self.method == "bab":
            opts = [ir.Option("pgd_restarts", 2), ir.Option("pgd_steps", 10)]
            return ir.Certify("bab", time_limit=2.0, options=opts)
        opts = [ir.Option("engine", self.engine)] if self.engine else []
        return ir.Certify(self.method, options=opts)


#: every method on the default engine (`auto`: ours, auto_LiRPA where ours cannot bound the
#: model) and on auto_LiRPA
CONFIGS = tuple(
    Config(method, engine)
    for engine in (None, "auto_lirpa")
    for method in ("ibp", "crown", "alpha_crown")
)
#: the default slice leaves out alpha-CROWN on auto_LiRPA (a second per module; the slow slice
#: runs it)
FAST_CONFIGS = tuple(c for c in CONFIGS if c != Config("alpha_crown", "auto_lirpa"))
BAB = Config("bab")


@attrs.frozen
class Threat:
    """l-inf / l2 radii, or a square patch of `size` with values [low, high]."""

    kind: str  # "linf", "l2" or "patch"
    radii: tuple[float, ...] = ()
    size: int = 1
    low: float = 0.4
    high: float = 0.6

    def __str__(self) -> str:
        if self.kind == "patch":
            return f"{self.size}x{self.size} patch, values [{self.low}, {self.high}]"
        return f"{self.kind} ball, radii {list(self.radii)}"

    def ir(self):
        if self.kind == "patch":
            return ir.PatchSet(
                shapes=[ir.Square(self.size)],
                locations=ir.AllLocations(),
                values=ir.ValueRange(self.low, self.high),
            )
        return ir.LpBall("input", self.kind, list(self.radii))


DEFAULT_THREATS = (
    Threat("linf", (0.004, 0.02)),
    Threat("l2", (0.02, 0.3)),
    Threat("patch", size=1, low=0.25, high=0.75),  # vertices on the data grid
)


@attrs.frozen
class Outcome:
    blueprint: Blueprint
    config: Config
    threat: str
    item: str
    kind: Kind
    detail: str = ""

    def __str__(self) -> str:
        return (
            f"{self.kind.value}: {self.blueprint.describe()} | {self.config} | {self.threat} | "
            f"{self.item}" + (f" | {self.detail}" if self.detail else "")
        )


# -------------------------------------------------------------------------------- data
def grid_images(bp: Blueprint, n: int = IMAGES) -> torch.Tensor:
    """n images on the pixel grid (multiples of 1/GRID), none blank."""
    gen = torch.Generator().manual_seed(10_000 + bp.seed)
    x = torch.randint(0, GRID + 1, (n, *INPUT_SHAPE), generator=gen).float() / GRID
    x[:, :, 0, 0] = x[:, :, 0, 0].clamp(min=1 / GRID)
    return x


def labels(model: FuzzNet, x: torch.Tensor) -> torch.Tensor:
    """The labels are the module's own clean predictions in eval mode (a dropout that stays on
    makes this one draw), so every image is clean and something can certify."""
    with torch.no_grad():
        return _eval_copy(model)(x).argmax(1)


def _eval_copy(model: FuzzNet) -> FuzzNet:
    return copy.deepcopy(model).eval()


def _splits(x: torch.Tensor, y: torch.Tensor, classes: int):
    from threatlang.data.splits import ArrayDataset, DataSplits

    test = ArrayDataset(x.numpy(), y.numpy().astype(np.int64))
    return DataSplits("fuzz", ArrayDataset(test.x[:0], test.y[:0]), test, classes)


def _modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


# ------------------------------------------------------------------------------ running
def certify_and_attack(
    bp: Blueprint,
    threats: Iterable[Threat] = DEFAULT_THREATS,
    configs: Iterable[Config] = FAST_CONFIGS,
    bab: bool = True,
) -> list[Outcome]:
    """Every config on every threat (and bab on a box), then every certified item attacked."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(bp.seed)  # dropout that stays on draws the same masks every time
        return _certify_and_attack(bp, tuple(threats), tuple(configs), bab)


def _certify_and_attack(bp, threats, configs, bab) -> list[Outcome]:
    model = build(bp)
    x = grid_images(bp)
    y = labels(model, x)
    out: list[Outcome] = []
    attacked: dict = {}  # (image, threat, radius) -> what the attack found: attacked once
    with tempfile.TemporaryDirectory() as tmp, without_plots():
        for threat in threats:
            for config in configs:
                out += _one_run(bp, model, x, y, threat, config, Path(tmp) / "run", attacked)
        if bab:
            eps = DEFAULT_THREATS[0].radii[-1]
            for i in range(min(BAB_IMAGES, len(x))):
                out += _bab_run(bp, model, x[i], int(y[i]), eps, Path(tmp) / f"bab{i}")
    return out


@contextlib.contextmanager
def without_plots():
    """The ibp backend draws its accuracy figure on every run, three quarters of a fuzz run's
    time; the fuzzer reads records only, so the drawing is skipped (the path is still named)."""
    try:
        from threatlang.backends.ibp import run as ibp_run
    except ImportError:
        ibp_run = None
    real = getattr(ibp_run, "write_plot", None)
    if real is None:
        yield
        return
    ibp_run.write_plot = lambda path, *args, **kwargs: path
    try:
        yield
    finally:
        ibp_run.write_plot = real


def _run(bp, model, spec, data, out_dir):
    """threatlang.run, and what it changed in the module's modes; an exception is returned."""
    before = _modes(model)
    try:
        result = threatlang.run(spec, model=model, data=data, output=out_dir, overwrite=True,
                                quiet=True)  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a crash is an outcome to count
        result = err
    changed = _modes(model) != before
    if changed:
        model.train(bp.train_mode)  # put it back for the next run
    return result, changed


def _failed(bp, config, threat, result, changed) -> list[Outcome]:
    out = []
    if changed:
        out.append(Outcome(bp, config, str(threat), "the module", Kind.MODE_CHANGED,
                           "run() left the module's train/eval modes changed"))  # fmt: skip
    if isinstance(result, Exception):
        refused = isinstance(result, UsageError | SpecError | CapabilityError)
        kind = Kind.REFUSED if refused else Kind.CRASHED
        text = str(result).strip().splitlines()[0] if str(result).strip() else ""
        out.append(Outcome(bp, config, str(threat), "the run", kind,
                           f"{type(result).__name__}: {text}"[:300]))  # fmt: skip
    return out


def _one_run(bp, model, x, y, threat: Threat, config: Config, out_dir, attacked) -> list[Outcome]:
    spec = ir.Spec(name="fuzz", threat=threat.ir(), require=ir.LabelUnchanged(),
                   actions=[config.action()], seed=0)  # fmt: skip
    result, changed = _run(bp, model, spec, _splits(x, y, bp.classes), out_dir)
    out = _failed(bp, config, threat, result, changed)
    if isinstance(result, Exception):
        return out
    victim = _eval_copy(model)
    gen = torch.Generator().manual_seed(bp.seed)
    for rec in result.records:
        i = int(rec.id.rsplit("-", 1)[1])
        radii = rec.values.get("radii")
        if radii is None:  # a patch: one item per record
            items = [(rec.id, rec.status.value == "certified", None)]
        else:
            items = [(f"{rec.id} at radius {r:g}", c, r)
                     for r, c in zip(radii, rec.values["certified_at"], strict=True)]  # fmt: skip
        for name, certified, radius in items:
            if certified:
                key = (i, threat, radius)
                if key not in attacked:
                    attacked[key] = _attack(victim, x[i], int(y[i]), threat, radius, gen)
                broken = attacked[key]
                kind = Kind.BROKEN if broken else Kind.CERTIFIED
                out.append(Outcome(bp, config, str(threat), name, kind, broken or ""))
            else:
                out.append(_not_certified(bp, config, str(threat), name, rec))
    return out


def _attack(victim, x, label: int, threat: Threat, radius: float | None, gen) -> str | None:
    found = attacks.repeat_clean(victim, x, label)
    if found or radius is None and threat.kind == "patch":
        return found or attacks.patch_attack(
            victim, x, label, threat.size, threat.low, threat.high, gen
        )
    return attacks.ball_attack(victim, x, label, radius, threat.kind, gen)


def _not_certified(bp, config, threat, name, rec) -> Outcome:
    if rec.status.value == "falsified":
        return Outcome(bp, config, threat, name, Kind.FALSIFIED, rec.reason or "")
    if not rec.reason:
        return Outcome(bp, config, threat, name, Kind.UNKNOWN_WITHOUT_REASON, rec.status.value)
    return Outcome(bp, config, threat, name, Kind.UNKNOWN, rec.reason)


def _bab_run(bp, model, x, label: int, eps: float, out_dir) -> list[Outcome]:
    lower, upper = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    parts = [
        LinearConstraint(
            [1.0 if j == label else -1.0 if j == k else 0.0 for j in range(bp.classes)], ">", 0.0
        )  # fmt: skip
        for k in range(bp.classes)
        if k != label
    ]
    spec = ir.Spec(
        name="fuzz_box",
        domain=ir.Domain(INPUT_SHAPE),
        threat=InputBox(lower.flatten().tolist(), upper.flatten().tolist()),
        require=OutputsSatisfy(Conjunction(parts)),
        actions=[BAB.action()],
        seed=0,
    )
    threat = f"box of l-inf radius {eps:g}"
    result, changed = _run(bp, model, spec, None, out_dir)
    out = _failed(bp, BAB, threat, result, changed)
    if isinstance(result, Exception):
        return out
    victim = _eval_copy(model)
    gen = torch.Generator().manual_seed(bp.seed)
    for rec in result.records:
        if rec.status.value == "certified":
            broken = attacks.repeat_clean(victim, x, label) or attacks.box_attack(
                victim, lower, upper, label, gen
            )
            kind = Kind.BROKEN if broken else Kind.CERTIFIED
            out.append(Outcome(bp, BAB, threat, rec.id, kind, broken or ""))
        else:
            out.append(_not_certified(bp, BAB, threat, rec.id, rec))
    return out


# ------------------------------------------------------------------------------ tallies
def reason_class(text: str) -> str:
    """A reason with its numbers and quoted names blanked, so like reasons count together."""
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return re.sub(r"'[^']*'", "'…'", text)[:160]


@attrs.define
class Tally:
    """Outcome counts over many modules: kinds, reasons of unknowns and refusals, and the
    failing outcomes themselves (to print)."""

    kinds: collections.Counter = attrs.field(factory=collections.Counter)
    reasons: collections.Counter = attrs.field(factory=collections.Counter)
    by_construct: dict = attrs.field(factory=lambda: collections.defaultdict(collections.Counter))
    failures: list = attrs.field(factory=list)
    modules: int = 0

    def add(self, outcomes: list[Outcome]) -> None:
        self.modules += 1
        for o in outcomes:
            self.kinds[o.kind] += 1
            if o.kind in (Kind.UNKNOWN, Kind.REFUSED, Kind.CRASHED):
                self.reasons[(o.kind.value, reason_class(o.detail))] += 1
            for name in o.blueprint.constructs:
                self.by_construct[name][o.kind] += 1
            if o.kind in FAILURES:
                self.failures.append(o)

    def lines(self) -> list[str]:
        out = [f"modules: {self.modules}"]
        out += [f"{k.value}: {self.kinds.get(k, 0)}" for k in Kind]
        return out


def failure_report(outcomes: list[Outcome], limit: int = 12) -> str:
    bad = sorted((o for o in outcomes if o.kind in FAILURES), key=lambda o: FAILURES.index(o.kind))
    text = "\n".join(str(o) for o in bad[:limit])
    more = len(bad) - limit
    return text + (f"\n... and {more} more" if more > 0 else "")


__all__ = [
    "CONFIGS",
    "DEFAULT_THREATS",
    "FAST_CONFIGS",
    "FAILURES",
    "Config",
    "Kind",
    "Outcome",
    "Tally",
    "Threat",
    "certify_and_attack",
    "failure_report",
]
