"""The run's figure: clean / empirical / certified accuracy, and the training curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def write_plot(
    path: Path,
    accuracies: Mapping[str, float],
    losses: Sequence[float],
    title: str,
    loss_title: str = "training",
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if losses else 1, figsize=(9 if losses else 4.5, 3.4))
    ax = axes[0] if losses else axes
    names = list(accuracies)
    ax.bar(
        names, [accuracies[n] for n in names], color=["#4c72b0", "#dd8452", "#55a868"][: len(names)]
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    for i, n in enumerate(names):
        ax.text(i, accuracies[n] + 0.02, f"{accuracies[n]:.1%}", ha="center")
    ax.set_title(title)
    if losses:
        axes[1].plot(range(1, len(losses) + 1), losses, marker="o")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("training loss")
        axes[1].set_title(loss_title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
