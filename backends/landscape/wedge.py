"""The wedge toy problem of §7.3 and its decision-boundary figure (Figure 7.2).

Two classes on the arms of a wedge "Λ" (apex at (0, 1), feet at (±1, 0)), separated by a
vertical margin around ``x = 0``; 11 training and 5 test points. For one-hidden-layer ReLU
networks of growing width we draw decision boundaries from three sources: the poisoned network
(fits the training points, misclassifies the test points: the worst case the class allows),
SGD, and Guess & Check. The poisoned boundaries grow wild with width; SGD's and G&C's stay tame.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from threatlang.runtime import generator

from .config import GuessCheckConfig, PoisonConfig, SGDConfig, WedgeConfig
from .guess_check import guess_and_check
from .levels import below
from .losses import accuracy
from .models import FlatModel, mlp
from .poison import poison
from .sgd import sgd


def sample_wedge(
    count: int, config: WedgeConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` points uniform on the wedge's two arms (alternating arms, so the classes are
    balanced); label 1 on the right arm."""
    g = generator
    side = torch.arange(count, device=g.device) % 2
    t = config.margin + (1 - config.margin) * torch.rand(count, generator=g, device=g.device)
    offset = (torch.rand(count, generator=g, device=g.device) - 0.5) * config.thickness
    sign = side.float() * 2 - 1
    x = sign * t
    y = 1 - t + offset
    return torch.stack([x, y], dim=1), side.long()


@attrs.frozen
class Boundary:
    """One trained network: method, width, its parameters, and its accuracy on the wedge."""

    method: str
    width: int
    theta: torch.Tensor = attrs.field(eq=False, repr=False)
    train_accuracy: float
    test_accuracy: float
    population_accuracy: float


def run_wedge(
    config: WedgeConfig, seed: int, device: str = "cpu"
) -> tuple[tuple[Boundary, ...], dict]:
    """Train ``draws`` networks per (method, width); returns them and the data used. One
    random stream, `wedge` of the run seed, on the run's device."""
    g = generator(seed, "wedge", device)
    xtr, ytr = sample_wedge(config.train, config, g)
    xte, yte = sample_wedge(config.test, config, g)
    xpop, ypop = sample_wedge(config.population, config, g)
    window = (below(config.loss_below),)
    out: list[Boundary] = []
    for width in config.widths:
        fm = FlatModel(mlp(2, (width,), 2).to(device))

        def acc(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, fm: FlatModel = fm) -> float:
            return float(accuracy(fm.logits(theta[None], x), y)[0])

        for _ in range(config.draws):
            theta0 = fm.default_init(g)
            bad = poison(
                fm,
                xtr,
                ytr,
                xte,
                yte,
                theta0,
                PoisonConfig(
                    steps=config.poison_steps, lr=config.poison_lr, val_weight=config.poison_weight
                ),
            )
            sgd_config = SGDConfig(lr=config.sgd_lr, max_steps=config.sgd_steps)
            fitted = sgd(fm, xtr, ytr, theta0, window, sgd_config, g)
            gc = guess_and_check(
                fm, xtr, ytr, window, GuessCheckConfig(max_guesses=config.max_guesses), g
            )
            for method, theta in (
                ("poisoned", bad.theta),
                ("sgd", None if fitted.hits[0] is None else fitted.hits[0].theta),
                ("guess_and_check", None if gc.hits[0] is None else gc.hits[0].theta),
            ):
                if theta is None:
                    continue  # no model met the stopping conditions within the budget
                out.append(
                    Boundary(
                        method,
                        width,
                        theta,
                        acc(theta, xtr, ytr),
                        acc(theta, xte, yte),
                        acc(theta, xpop, ypop),
                    )
                )
    data = {"train": (xtr, ytr), "test": (xte, yte), "population": (xpop[:400], ypop[:400])}
    return tuple(out), data


METHODS = ("poisoned", "sgd", "guess_and_check")
TITLES = {"poisoned": "poisoned", "sgd": "SGD", "guess_and_check": "Guess & Check"}


def plot_wedge(boundaries: tuple[Boundary, ...], data: dict, widths: tuple[int, ...], path) -> None:
    """Rows: poisoned, SGD, G&C; columns: hidden width; each panel overlays the draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.linspace(-1.3, 1.3, 161, dtype=np.float32)
    ys = np.linspace(-0.4, 1.4, 111, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    fig, axes = plt.subplots(
        len(METHODS), len(widths), figsize=(2.4 * len(widths), 2.2 * len(METHODS)), squeeze=False
    )
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    colours = plt.cm.tab10.colors
    for r, method in enumerate(METHODS):
        for c, width in enumerate(widths):
            ax = axes[r][c]
            fm = FlatModel(mlp(2, (width,), 2))
            drawn = [b for b in boundaries if b.method == method and b.width == width]
            for k, b in enumerate(drawn):
                with torch.no_grad():
                    z = fm.logits_one(b.theta.cpu(), grid)
                margin = (z[:, 1] - z[:, 0]).reshape(gx.shape).numpy()
                if margin.min() < 0 < margin.max():
                    ax.contour(
                        gx, gy, margin, levels=[0.0], colors=[colours[k % 10]], linewidths=1.2
                    )
            if "population" in data:
                xp = data["population"][0].cpu().numpy()
                ax.scatter(xp[:, 0], xp[:, 1], c="0.85", s=3, zorder=0)
            for x, y, marker in ((xtr, ytr, "o"), (xte, yte, "x")):
                x, y = x.cpu().numpy(), y.cpu().numpy()
                ax.scatter(
                    x[:, 0], x[:, 1], c=np.where(y == 1, "tab:red", "tab:blue"), marker=marker, s=18
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{width} hidden units", fontsize=9)
            if c == 0:
                ax.set_ylabel(TITLES[method], fontsize=9)
    fig.suptitle("Wedge toy problem: decision boundaries (o train, x test)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
