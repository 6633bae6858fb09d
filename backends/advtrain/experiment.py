"""Train several methods side by side and evaluate them (Tables 6.1/6.2 in miniature).

Methods start from the same initial weights and see the same batches in the same order; their
epochs are interleaved (epoch 1 of every method, then epoch 2, ...) so that load from other
processes spreads over all of them and the time-per-epoch ratios stay comparable.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

import attrs
import torch
from torch import Tensor, nn

from . import pyramid as pyr
from .config import MethodKind, MethodSpec
from .evaluate import CorruptionSuite, accuracy, corruption_errors
from .pat import PAT, PATConfig
from .schedule import RadiusSchedule
from .standard import Method, Standard
from .train import TrainConfig, Trainer
from .upat import UPAT, UPATConfig


@attrs.frozen
class Settings:
    """Everything a comparison needs besides data and model, resolved from the spec."""

    pyramid: pyr.PyramidConfig
    upat_radius: RadiusSchedule
    pat_radius: RadiusSchedule
    upat_step_size: float
    adv_weight: float
    train: TrainConfig
    upat_decay: RadiusSchedule | None = None  # for methods marked ``_schedule``
    pat_decay: RadiusSchedule | None = None


@attrs.frozen(eq=False)
class MethodResult:
    label: str
    clean_accuracy: float
    corruption_errors: dict
    epoch_seconds: tuple[float, ...]
    passes_per_step: float
    calls_per_step: float
    final_loss: float
    model: nn.Module
    method: Method

    @property
    def seconds_per_epoch(self) -> float:
        """Median epoch time: robust to a burst of load from other processes."""
        return statistics.median(self.epoch_seconds)


def make_method(
    spec: MethodSpec, s: Settings, input_shape: Sequence[int], seed: int, device: str
) -> Method:
    low, high = s.pyramid.low, s.pyramid.high
    pyramid = s.pyramid if spec.pyramid else pyr.flat_config(low, high)
    if spec.kind is MethodKind.STANDARD:
        return Standard()
    if spec.schedule and (s.upat_decay is None or s.pat_decay is None):
        raise ValueError(f"{spec.label} needs the decaying radius schedule in the settings")
    if spec.kind is MethodKind.UPAT:
        radius = s.upat_decay if spec.schedule else s.upat_radius
        cfg = UPATConfig(pyramid, radius, s.upat_step_size, s.adv_weight, spec.clean_loss)
        method: Method = UPAT(cfg, input_shape, device)
    else:
        radius = s.pat_decay if spec.schedule else s.pat_radius
        cfg = PATConfig(pyramid, radius, spec.steps, s.adv_weight, spec.clean_loss)
        method = PAT(cfg, torch.Generator().manual_seed(seed + 2))
    method.name = spec.label
    return method


def compare(
    specs: Sequence[MethodSpec],
    settings: Settings,
    new_model: Callable[[], nn.Module],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    seed: int,
    device: str = "cpu",
    suite: CorruptionSuite | None = None,
    track: Callable[[list], Iterable] = iter,
) -> dict[str, MethodResult]:
    """Train every method in ``specs`` (interleaved epochs), then evaluate each on ``test``."""
    x, y = train
    shape = tuple(x.shape[1:])
    # CPU generators on every device: draws are made there and moved, so runs match across devices
    trainers = {
        spec.label: Trainer(
            new_model().to(device),
            make_method(spec, settings, shape, seed, device),
            x,
            y,
            settings.train,
            torch.Generator().manual_seed(seed + 1),
        )
        for spec in specs
    }
    jobs = [(e, label) for e in range(settings.train.epochs) for label in trainers]
    for _epoch, label in track(jobs):  # `track` may wrap the jobs in a progress bar
        trainers[label].epoch()
    out = {}
    for label, t in trainers.items():
        fit = t.result()
        errors = corruption_errors(t.model, *test, suite) if suite is not None else {}
        out[label] = MethodResult(
            label=label,
            clean_accuracy=accuracy(t.model, *test),
            corruption_errors=errors,
            epoch_seconds=fit.seconds_per_epoch,
            passes_per_step=fit.passes_per_step,
            calls_per_step=fit.calls_per_step,
            final_loss=fit.final_loss,
            model=t.model,
            method=t.method,
        )
    return out
