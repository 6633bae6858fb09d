"""The shipped backends' conformance cases, registered with `threatlang.testing`.

Like cvxpy's solver test helpers (one problem factory, one set of `verify_*` checks, every
solver run through all of them), every certifying backend supplies one small `Case`: a tiny
spec, the files and objects it runs on, and its *strongest* attack or exact check; the checks
in `threatlang.testing.suite` are the same for every case (an out-of-tree backend
registers its own and runs the same checks). A case's attack is independent of the
certificate it tests (exhaustive search, sampling inside the set, a grid over misreports), so
a bound that is too optimistic is caught, not confirmed.

The data are tiny on purpose: 8x8 grey images whose class is their brightness (> 1/2), where a
small network is right and robust on most images, so every case certifies something; the
suite fails when a case certifies nothing (a soundness check over zero certificates cannot
fail).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from threatlang.testing import ALPHA, Case, Run, Trouble, clopper_pearson_upper, register


# ------------------------------------------------------------------------------ shared data
def bright_images(n: int, rng: np.random.Generator, gap: bool) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 1, 8, 8) in [0, 1] around a brightness b; the label says b > 1/2. With
    `gap`, b is dark (in [0.05, 0.3]) or bright (in [0.7, 0.95]); else b ~ U(0.05, 0.95), so
    a few test images lie near 1/2, where a patch or a ball can flip them."""
    if gap:
        b = rng.uniform(0.05, 0.3, n) + 0.65 * rng.integers(0, 2, n)
    else:
        b = rng.uniform(0.05, 0.95, n)
    noise = 0.08 * rng.standard_normal((n, 1, 8, 8))
    x = np.clip(b[:, None, None, None] + noise, 0.0, 1.0).astype(np.float32)
    return x, (b > 0.5).astype(np.int64)


@functools.cache
def bright_data(n_train: int = 256, n_test: int = 16):
    from threatlang.data.splits import ArrayDataset, DataSplits

    rng = np.random.default_rng(0)
    train, test = bright_images(n_train, rng, True), bright_images(n_test, rng, False)
    return DataSplits("bright", ArrayDataset(*train), ArrayDataset(*test), 2)


def write_npz(path: Path, data) -> Path:
    np.savez(path, x_train=data.train.x, y_train=data.train.y, x_test=data.test.x,
             y_test=data.test.y)  # fmt: skip
    return path


def mlp(seed: int = 0, hidden: int = 16):

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2))


@functools.cache
def _trained_state(noise: float) -> dict:
    """A small MLP fitted to the bright images (with Gaussian input noise when `noise` > 0)."""

    d = bright_data()
    x, y = torch.from_numpy(d.train.x), torch.from_numpy(d.train.y)
    net = mlp()
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(150):
        xi = x + noise * torch.randn(x.shape, generator=gen) if noise else x
        loss = nn.functional.cross_entropy(net(xi), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def trained_mlp(noise: float = 0.0):
    net = mlp()
    net.load_state_dict(_trained_state(noise))
    return net.eval()


def save_torchscript(model, path: Path) -> Path:

    torch.jit.trace(model, torch.zeros(1, 1, 8, 8)).save(str(path))
    return path


class NaNLogits(nn.Module):
    """The wrapped model, but its evaluation-mode logits are NaN (numerical trouble at
    certification time; a backend that trains in training mode first still can)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out if self.training else out + math.nan  # NaN, and still differentiable


def nan_model(kwargs: dict) -> dict:
    return {**kwargs, "model": NaNLogits(kwargs["model"])}


def _labels(run: Run) -> dict[str, int]:
    return {r.id: r.values.get("label") for r in run.result.records}


def _xs(run: Run, ids: list[str]):
    """The test images of ids `test-<i>` / `example-<i>` as a tensor (N, 1, 8, 8)."""

    data = bright_data()
    idx = [int(i.rsplit("-", 1)[1]) for i in ids]
    return torch.from_numpy(data.test.x[idx]), torch.from_numpy(data.test.y[idx])


# ------------------------------------------------------------------------- ibp: patches
IBP_PATCH = """threatlang 1
spec conformance_ibp_patch {
  model torchscript("{dir}/model.pt")
  data npz {
    path "{dir}/data.npz"
  }
  seed 0
  threat patch {
    shape square(2)
    locations all
    values [0, 1]
  }
  require label_unchanged
  attack pgd {
    steps 10
    locations anywhere
  }
  certify ibp
}
"""


def _prepare_files(directory: Path, noise: float = 0.0) -> dict:
    save_torchscript(trained_mlp(noise), directory / "model.pt")
    write_npz(directory / "data.npz", bright_data())
    return {}


def _prepare_objects(directory: Path, noise: float = 0.0) -> dict:
    """The model and data handed to run() as objects (the spec's files exist too)."""
    _prepare_files(directory, noise)
    return {"model": trained_mlp(noise), "data": bright_data()}


def exhaustive_patch_attack(run: Run, ids: list[str], levels: int = 5) -> dict[str, str]:
    """Every 2x2 patch location x every patch content on a grid of `levels` values per pixel
    (corners of the value box included): on this 64-16-2 MLP that is 49 x 625 points per image."""
    import itertools

    if not ids:
        return {}
    model = trained_mlp(0.25)
    x, y = _xs(run, ids)
    grid = torch.tensor(list(itertools.product(np.linspace(0, 1, levels), repeat=4)))
    contents = grid.float().view(-1, 1, 2, 2)
    broken = {}
    with torch.no_grad():
        for j, rid in enumerate(ids):
            for r in range(7):
                for c in range(7):
                    xs = x[j].expand(len(contents), -1, -1, -1).clone()
                    xs[:, :, r : r + 2, c : c + 2] = contents
                    wrong = model(xs).argmax(1) != y[j]
                    if bool(wrong.any()):
                        k = int(wrong.nonzero()[0])
                        broken[rid] = f"patch at ({r}, {c}) = {contents[k].flatten().tolist()}"
                        break
                if rid in broken:
                    break
    return broken


def _clean_ids(run: Run) -> set[str]:
    return {r.id for r in run.result.records if r.values.get("label") == r.values.get(
        "predicted", r.values.get("prediction"))}  # fmt: skip


def _accuracies(run: Run) -> list[tuple[str, float, float, float]]:
    m = run.result.summary.metrics
    empirical = m.get("empirical_accuracy")
    if empirical is None:  # no attack in the spec: the suite's own attack stands in
        ids = sorted(_clean_ids(run))
        empirical = (len(ids) - len(run.case.attack(run, ids))) / max(1, len(run.result.records))
    return [("accuracy", m["certified_accuracy"], empirical, m["clean_accuracy"])]


def _both(*patches: Callable[[Any], None]) -> Callable[[Any], None]:
    """Several patches as one (a backend with two engines: each must be caught)."""

    def patch(monkeypatch) -> None:
        for p in patches:
            p(monkeypatch)

    return patch


def _mip_result(status: str) -> Callable[[Any], None]:
    """Patch the mip backend's solver call to answer `status` (a `SolveStatus` name) with a
    NaN bound and no point."""

    def patch(monkeypatch) -> None:
        from threatlang.backends.mip import certify
        from threatlang.backends.mip.solvers import SolveStatus

        real = certify.solve

        def solve(*args, **kwargs):
            res, why = real(*args, **kwargs)
            return attrs.evolve(res, status=SolveStatus[status], bound=math.nan, x=None), why

        monkeypatch.setattr(certify, "solve", solve)

    return patch


def _nan_bound(path: str, field: str | None = None) -> Callable[[Any], None]:
    """Patch the bound function at `path` (module.function or module.Class.method) so the
    margins (or `field` of what it returns) come back NaN."""

    def patch(monkeypatch) -> None:
        import importlib

        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                owner = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for name in parts[cut:-1]:
                owner = getattr(owner, name)
            break
        real = getattr(owner, parts[-1])

        def nan(*args, **kwargs):
            out = real(*args, **kwargs)
            if field is None:
                return torch.full_like(out, math.nan)
            return attrs.evolve(out, **{field: torch.full_like(getattr(out, field), math.nan)})

        monkeypatch.setattr(owner, parts[-1], nan)

    return patch


IBP_PATCH_CASE = Case(
    id="ibp-patch",
    backend="ibp",
    spec=IBP_PATCH,
    prepare=functools.partial(_prepare_objects, noise=0.25),
    attack=exhaustive_patch_attack,
    clean=_clean_ids,
    ladder=_accuracies,
    troubles=(
        Trouble(
            "NaN patch bounds",
            patch=_nan_bound("threatlang.backends.ibp.certify.worst_margins", "margins"),
        ),
    ),
)


# ------------------------------------------------------------------------ ibp: l-inf ball
IBP_BALL = """threatlang 1
spec conformance_ibp_ball {
  model torchscript("{dir}/model.pt")
  data npz {
    path "{dir}/data.npz"
  }
  seed 0
  threat linf_ball {
    radius 0.04
  }
  require label_unchanged
  certify ibp
}
"""


def pgd_linf(run: Run, ids: list[str], eps: float = 0.04, steps: int = 50, restarts: int = 8):
    """PGD with random restarts on the margin inside the l-inf ball, kept in [0, 1]."""

    if not ids:
        return {}
    model = trained_mlp(0.25)
    x, y = _xs(run, ids)
    gen = torch.Generator().manual_seed(0)
    broken: dict[str, str] = {}
    for _ in range(restarts):
        d = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
        for _ in range(steps):
            d.requires_grad_(True)
            logits = model((x + d).clamp(0, 1))
            margin = logits.gather(1, y[:, None])[:, 0] - logits.scatter(
                1, y[:, None], -math.inf).amax(1)  # fmt: skip
            (grad,) = torch.autograd.grad(margin.sum(), d)
            d = (d.detach() - eps / 4 * grad.sign()).clamp(-eps, eps)
        with torch.no_grad():
            wrong = model((x + d).clamp(0, 1)).argmax(1) != y
        for j in wrong.nonzero().flatten().tolist():
            broken.setdefault(ids[j], "PGD found a point in the ball with another label")
    return broken


IBP_BALL_CASE = Case(
    id="ibp-ball",
    backend="ibp",
    spec=IBP_BALL,
    prepare=functools.partial(_prepare_objects, noise=0.25),
    attack=pgd_linf,
    clean=_clean_ids,
    ladder=_accuracies,
    troubles=(
        Trouble(
            "NaN ball bounds",
            patch=_nan_bound("threatlang.bounds.engine.BoundedNetwork.margins"),
        ),
    ),
)


# ---------------------------------------------------------------- smoothing: classification
SMOOTHING = """threatlang 1
spec conformance_smoothing {
  model torchscript("{dir}/model.pt")
  data npz {
    path "{dir}/data.npz"
  }
  seed 0
  threat l2_ball {
    around input
    radii [0.25]
  }
  require label_unchanged
  smooth classify {
    sigma 0.25
    samples 200 samples
    confidence 99%
    n0 32
  }
}
"""


def sample_inside_ball(run: Run, ids: list[str], points: int = 8, draws: int = 400):
    """Points on the sphere of the certified radius (random directions and the base model's
    gradient direction); at each, the smoothed classifier's vote with fresh noise. An item is
    broken when its label's vote share is below 1/2 with confidence 1 - ALPHA."""

    if not ids:
        return {}
    model = trained_mlp(0.25)
    x, y = _xs(run, ids)
    radius, sigma = 0.25, 0.25
    gen = torch.Generator().manual_seed(7)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(
        torch.nn.functional.cross_entropy(model(xg), y, reduction="sum"), xg
    )
    dirs = [grad] + [torch.randn(x.shape, generator=gen) for _ in range(points - 1)]
    broken = {}
    with torch.no_grad():
        for d in dirs:
            d = d / d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1) * radius
            for j, rid in enumerate(ids):
                noisy = x[j] + d[j] + sigma * torch.randn((draws, *x.shape[1:]), generator=gen)
                k = int((model(noisy).argmax(1) == y[j]).sum())
                if clopper_pearson_upper(k, draws, ALPHA) < 0.5:
                    broken.setdefault(rid, f"label share {k}/{draws} at a point on the sphere")
    return broken


def _smoothing_clean(run: Run) -> set[str]:
    """Items whose smoothed prediction at the point itself is the label."""
    return {r.id for r in run.result.records if r.values["prediction"] == r.values["label"]}


def _smoothing_ladder(run: Run) -> list[tuple[str, float, float, float]]:
    m = run.result.summary.metrics
    ids = sorted(_smoothing_clean(run))
    n = max(1, len(run.result.records))
    empirical = (len(ids) - len(sample_inside_ball(run, ids))) / n
    return [("smoothed accuracy", m["certified_accuracy"], empirical, m["smoothed_accuracy"])]


SMOOTHING_CASE = Case(
    id="smoothing",
    backend="smoothing",
    spec=SMOOTHING,
    prepare=functools.partial(_prepare_objects, noise=0.25),
    attack=sample_inside_ball,
    clean=_smoothing_clean,
    ladder=_smoothing_ladder,
    troubles=(Trouble("NaN logits", kwargs=nan_model),),
)


# ------------------------------------------------------------------------------ watermark
WATERMARK = """threatlang 1
spec conformance_watermark {
  model small_resnet
  data npz {
    path "{dir}/data.npz"
  }
  seed 0
  threat l2_ball {
    around parameters
    radii [0.05, 0.1]
  }
  require accuracy_at_least(0.5)
  train watermark {
    epochs 3
    lr 0.05
    batch 64
    trigger "unrelated"
    trigger_size 16
    target_label 0
    replay 2
    noise_samples 2
    baseline false
  }
  smooth median {
    sigma 0.05
    samples 100 samples
    confidence 99%
    probe_samples 8
  }
  attack parameter_pgd {
    steps 3
    noise_samples 2
  }
}
"""


def _watermark_prepare(directory: Path) -> dict:
    write_npz(directory / "data.npz", bright_data())
    return {"model": mlp(seed=3, hidden=32)}


def _watermarked(run: Run):
    """The embedded model (the run's checkpoint) and the trigger set it was embedded with."""
    import copy

    from threatlang.backends.watermark.config import TriggerKind
    from threatlang.backends.watermark.triggers import TriggerConfig, make_trigger_set
    from threatlang.runtime import stream_seed

    model = copy.deepcopy(run.kwargs["model"])
    model.load_state_dict(torch.load(run.out / "certified.pt", weights_only=True))
    d = bright_data()
    trig = make_trigger_set(TriggerConfig(TriggerKind.UNRELATED, 16, 0, seed=stream_seed(0, "trigger-set")), d.train.x,
                            d.train.y)  # fmt: skip
    x, y = torch.from_numpy(trig.x), torch.from_numpy(trig.y)
    with torch.no_grad():
        plain = float((model.eval()(x).argmax(1) == y).float().mean())
    # the check must speak about the trigger set the backend used: same plain accuracy
    assert plain == run.result.summary.metrics["trigger_accuracy"], "trigger set not rebuilt"
    return model.eval(), x, y


def _noisy_accuracies(model, params, x, y, sigma, draws, gen):
    from torch.func import functional_call

    out = []
    with torch.no_grad():
        for _ in range(draws):
            noisy = {k: v + sigma * torch.randn(v.shape, generator=gen) for k, v in params.items()}
            out.append(float((functional_call(model, noisy, (x,)).argmax(1) == y).float().mean()))
    return np.array(out)


def sample_parameter_ball(run: Run, ids: list[str], points: int = 6, draws: int = 200):
    """Parameter changes of exactly the certified radius (the trigger loss's gradient direction
    and random directions); at each, trigger accuracies under fresh parameter noise. A radius is
    broken when the median smoothed accuracy is below its certified bound with confidence
    1 - ALPHA (fewer than half the draws reach the bound, by a one-sided binomial test)."""
    from torch.func import functional_call

    if not ids:
        return {}
    model, x, y = _watermarked(run)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    live = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    loss = torch.nn.functional.cross_entropy(functional_call(model, live, (x,)), y)
    grads = torch.autograd.grad(loss, list(live.values()))
    gen = torch.Generator().manual_seed(11)
    dirs = [dict(zip(live, grads, strict=True))]
    dirs += [{k: torch.randn(v.shape, generator=gen) for k, v in theta.items()}
             for _ in range(points - 1)]  # fmt: skip
    broken = {}
    for rid in ids:
        rec = run.record(rid)
        radius, bound = rec.values["radius"], rec.values["certified_trigger_accuracy"]
        sigma = rec.values["sigma"]
        for d in dirs:
            norm = math.sqrt(sum(float(v.pow(2).sum()) for v in d.values()))
            moved = {k: theta[k] + radius * d[k] / norm for k in theta}
            acc = _noisy_accuracies(model, moved, x, y, sigma, draws, gen)
            k = int((acc >= bound - 1e-9).sum())
            if clopper_pearson_upper(k, draws, ALPHA) < 0.5:
                broken[rid] = f"{k}/{draws} noisy draws reach the certified {bound:g}"
                break
    return broken


def _watermark_clean(run: Run) -> set[str]:
    """Radii whose requirement holds at θ itself (the smoothed accuracy, unmoved)."""
    m = run.result.summary.metrics
    return {r.id for r in run.result.records if r.id.startswith("radius=")
            and m["smoothed_trigger_accuracy"] >= 0.5}  # fmt: skip


def _watermark_ladder(run: Run) -> list[tuple[str, float, float, float]]:
    m = run.result.summary.metrics
    rows = []
    for radius, cert in m["certified_trigger_accuracy"].items():
        pgd = m["parameter_pgd"][radius]["smoothed_median"]
        cert = 0.0 if cert is None else cert  # no certificate at this radius
        clean = m["smoothed_trigger_accuracy"]
        rows.append((f"smoothed trigger accuracy at radius {radius}", cert, pgd, clean))
    return rows


WATERMARK_CASE = Case(
    id="watermark",
    backend="watermark",
    spec=WATERMARK,
    prepare=_watermark_prepare,
    attack=sample_parameter_ball,
    clean=_watermark_clean,
    ladder=_watermark_ladder,
    troubles=(Trouble("NaN logits", kwargs=nan_model),),
    volatile=("noise_strategy",),  # `auto` keeps whichever of vmap/loop timed faster
    distributes=False,  # one certificate per radius, computed in one batched pass
)


# ------------------------------------------------------------------------------------ mip
MIP_LIMIT = 0.3  # the spec's regret limit: an untrained mechanism meets it at some profiles
MIP = """threatlang 1
spec conformance_mip {
  model regretnet {
    hidden 8
    layers 1
    payment fractional
  }
  data valuations {
    test_limit 6
    eval_profiles 64
  }
  seed 0
  threat bid_support {
    agents 1
    items 2
    valuations [0, 1]
    misreport all
  }
  require regret_at_most(0.3)
  attack misreport {
    steps 30
    restarts 2
  }
  certify mip {
    solver highs
    time_limit 30s
    threads 1
  }
}
"""


@functools.cache
def _mechanism_state() -> dict:

    from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig

    mech = Mechanism(MechanismConfig(1, 2, (8,)), generator=torch.Generator().manual_seed(5))
    return {k: v.clone() for k, v in mech.state_dict().items()}


def mechanism():
    from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig

    mech = Mechanism(MechanismConfig(1, 2, (8,)))
    mech.load_state_dict(_mechanism_state())
    return mech.eval()


def grid_regret(run: Run, ids: list[str], points: int = 201) -> dict[str, str]:
    """The exact check of a 1-agent, 2-item auction: the agent's utility at every misreport
    of a points x points grid over the bid box. An item is broken when some misreport gains
    more than the regret limit, or more than the certified upper bound of its record."""

    from threatlang.backends.mip.mechanisms import utilities

    if not ids:
        return {}
    mech = mechanism().double()
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g).view(-1, 1, 2)
    limit = MIP_LIMIT
    broken = {}
    with torch.no_grad():
        for rid in ids:
            rec = run.record(rid)
            v = torch.tensor(rec.values["profile"], dtype=torch.float64).view(1, 1, 2)
            truthful = float(utilities(mech, v, v)[0][0, 0])
            best = float(utilities(mech, bids, v.expand_as(bids))[0][:, 0].max()) - truthful
            claim = rec.values.get("regret_upper_bound")
            cap = limit if claim is None else min(limit, claim)
            if best > cap + 1e-6:
                broken[rid] = f"a misreport on the grid gains {best:.6g} > {cap:.6g}"
    return broken


def _mip_ladder(run: Run) -> list[tuple[str, float, float, float]]:
    """Items meeting the regret limit: certified (proven), empirical (PGD), clean (truthful
    bidding has zero regret, so every item)."""
    recs = run.result.records
    n = len(recs)
    cert = sum(r.status.value == "certified" for r in recs) / n
    emp = sum(r.values["empirical_regret"] <= MIP_LIMIT for r in recs) / n
    return [("profiles within the regret limit", cert, emp, 1.0)]


MIP_CASE = Case(
    id="mip",
    backend="mip",
    spec=MIP,
    prepare=lambda directory: {"model": mechanism()},
    attack=grid_regret,
    clean=lambda run: {r.id for r in run.result.records},
    ladder=_mip_ladder,
    troubles=(
        # a solve stopped with a finite best bound is certified at that bound (issue 22); one
        # stopped before any bound, or one whose bound is NaN, must not be
        Trouble("time-out before any bound", patch=_mip_result("TIME_LIMIT")),
        Trouble("NaN bound reported optimal", patch=_mip_result("OPTIMAL")),
    ),
    volatile=("solve_seconds", "seconds", "time", "runtime"),
)


# ------------------------------------------------------------------------------------ bab
BAB = """threatlang 1
spec conformance_bab {
  model torchscript("{dir}/net.pt")
  seed 0
  threat box {
    lower [-1, -1]
    upper [1, 1]
  }
  require outputs {
    linear "y[0] <= 0"
  }
  certify bab {
    time_limit 20s
    shards 4
  }
}
"""
BAB_BOX = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))


def _grid_max(net, lo, hi, points: int = 201):

    axes = [
        torch.linspace(float(a), float(b), points, dtype=torch.float64)
        for a, b in zip(lo, hi, strict=True)
    ]
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        y = net.double()(x)[:, 0]
    net.float()
    k = int(y.argmax())
    return float(y[k]), x[k].tolist()


@functools.cache
def _bab_state() -> dict:
    """A 2-16-16-1 ReLU net shifted so that `y[0] <= 0` holds on two of the four shards with a
    margin and fails on the other two (midway between the 2nd and 3rd largest shard maxima)."""

    from threatlang.backends.bab.run import shard_boxes

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                            nn.Linear(16, 1))  # fmt: skip
    maxima = sorted(_grid_max(net, a, b)[0] for a, b in shard_boxes(*BAB_BOX, 4))
    with torch.no_grad():
        net[-1].bias -= (maxima[1] + maxima[2]) / 2
    return {k: v.clone() for k, v in net.state_dict().items()}


def bab_net():

    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    net.load_state_dict(_bab_state())
    return net.eval()


def _bab_prepare(directory: Path) -> dict:

    torch.jit.trace(bab_net(), torch.zeros(1, 2)).save(str(directory / "net.pt"))
    return {"model": bab_net()}


def grid_over_shards(run: Run, ids: list[str]) -> dict[str, str]:
    """The exact check on a 2-D box: the property at every point of a 201 x 201 grid over each
    shard's box (the shards as the backend cuts them, `name#k`)."""
    from threatlang.backends.bab.run import shard_boxes

    shards = shard_boxes(*BAB_BOX, 4)
    net = bab_net()
    broken = {}
    for rid in ids:
        lo, hi = shards[int(rid.rsplit("#", 1)[1])]
        best, where = _grid_max(net, lo, hi)
        if best > 0:
            broken[rid] = f"y[0] = {best:.4g} > 0 at {where}"
    return broken


def _bab_ladder(run: Run) -> list[tuple[str, float, float, float]]:
    """Shards where the property holds: proved, not broken by the grid, all (no clean point)."""
    recs = run.result.records
    n = len(recs)
    cert = sum(r.status.value == "certified" for r in recs) / n
    emp = (n - len(grid_over_shards(run, [r.id for r in recs]))) / n
    return [("shards where y[0] <= 0", cert, emp, 1.0)]


BAB_CASE = Case(
    id="bab",
    backend="bab",
    spec=BAB,
    prepare=_bab_prepare,
    attack=grid_over_shards,
    clean=lambda run: {r.id for r in run.result.records},
    ladder=_bab_ladder,
    troubles=(
        # the root bound would prove some shards before any clock is read: NaN bounds must
        # not, and the 1 ms limit ends the branching they leave open
        Trouble(
            "NaN bounds",
            spec=lambda text: text.replace("time_limit 20s", "time_limit 1ms"),
            patch=_both(
                _nan_bound("threatlang.backends.bab.adapter.EngineNet.bound", "lower"),
                _nan_bound("threatlang.backends.bab.chain.ReluChain.bound", "lower"),
            ),
        ),
    ),
    volatile=("domains", "depth", "attack_seconds"),
)


CASES: tuple[Case, ...] = (
    IBP_PATCH_CASE,
    IBP_BALL_CASE,
    SMOOTHING_CASE,
    WATERMARK_CASE,
    MIP_CASE,
    BAB_CASE,
)


register(*CASES)
