"""Train several methods side by side and evaluate them (Tables 6.1-6.5 in miniature).

Methods start from the same initial weights and see the same batches in the same order; their
epochs are interleaved (epoch 1 of every method, then epoch 2, ...) so that load from other
processes spreads over all of them and the time-per-epoch ratios stay comparable. Training and
evaluation are separate stages, so a resumed run loads the trained models and evaluates them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

import attrs
from torch import Tensor, nn

from threatlang.runtime import generator

from . import pyramid as pyr
from .config import MethodKind, MethodSpec
from .evaluate import CorruptionSuite, accuracy, corruption_errors_many
from .pat import PAT, PATConfig
from .schedule import RadiusSchedule
from .standard import Method, Standard
from .train import TrainConfig, Trainer
from .upat import UPAT, UPATConfig


@attrs.frozen
class Settings:
    """Everything a comparison needs besides data and model, resolved from the plan.

    A method trains at its own radius when it has one (a radius sweep), else at UPAT's or
    PAT's; the radius decays by (6.5) from ``decay_start`` to ``decay_end`` (default 10% of the
    radius) when ``decay_all`` or when the method is a ``_schedule`` variant."""

    pyramid: pyr.PyramidConfig
    upat_radius: float
    pat_radius: float
    upat_step_size: float
    adv_weight: float
    train: TrainConfig
    decay_all: bool = False
    decay_start: int = 0
    decay_end: float | None = None

    def radius(self, spec: MethodSpec) -> RadiusSchedule:
        r = spec.radius
        if r is None:
            r = self.pat_radius if spec.kind is MethodKind.PAT else self.upat_radius
        if not (self.decay_all or spec.schedule):
            return RadiusSchedule.constant(r)
        end = 0.1 * r if self.decay_end is None else self.decay_end
        epochs = self.train.epochs
        return RadiusSchedule(r, end, self.decay_start, max(epochs, self.decay_start + 1))


@attrs.frozen(eq=False)
class TrainFacts:
    """What training one method measured: epoch times, passes, the final loss."""

    label: str
    epoch_seconds: tuple[float, ...]
    passes_per_step: float
    calls_per_step: float
    final_loss: float
    method: Method

    @property
    def seconds_per_epoch(self) -> float:
        """Median epoch time: robust to a burst of load from other processes."""
        return statistics.median(self.epoch_seconds)


def make_method(
    spec: MethodSpec, s: Settings, input_shape: Sequence[int], seed: int, device: str
) -> Method:
    """The training method of ``spec``; PAT's random starts come from the stream
    ``pat/<label>`` of the run ``seed``, on ``device``."""
    low, high = s.pyramid.low, s.pyramid.high
    pyramid = s.pyramid if spec.pyramid else pyr.flat_config(low, high)
    if spec.kind is MethodKind.STANDARD:
        return Standard()
    radius = s.radius(spec)
    if spec.kind is MethodKind.UPAT:
        cfg = UPATConfig(pyramid, radius, s.upat_step_size, s.adv_weight, spec.clean_loss)
        method: Method = UPAT(cfg, input_shape, device)
    else:
        cfg = PATConfig(pyramid, radius, spec.steps, s.adv_weight, spec.clean_loss)
        method = PAT(cfg, generator(seed, f"pat/{spec.label}", device))
    method.name = spec.label
    return method


def train_side_by_side(
    specs: Sequence[MethodSpec],
    settings: Settings,
    models: dict[str, nn.Module],
    train: tuple[Tensor, Tensor],
    seed: int,
    device: str = "cpu",
    track: Callable[[list], Iterable] = iter,
) -> dict[str, TrainFacts]:
    """Train ``models[label]`` in place with each method in ``specs``, epochs interleaved.

    Every method draws its batches (and augmentation) from its own copy of the stream
    ``train/batches`` of the run ``seed``, made on ``device``: all see the same batches."""
    x, y = train
    shape = tuple(x.shape[1:])
    trainers = {
        spec.label: Trainer(
            models[spec.label],
            make_method(spec, settings, shape, seed, device),
            x,
            y,
            settings.train,
            generator(seed, "train/batches", device),
        )
        for spec in specs
    }
    jobs = [(e, label) for e in range(settings.train.epochs) for label in trainers]
    for _epoch, label in track(jobs):  # `track` may wrap the jobs in a progress bar
        trainers[label].epoch()
    out = {}
    for label, t in trainers.items():
        fit = t.result()
        out[label] = TrainFacts(
            label, fit.seconds_per_epoch, fit.passes_per_step, fit.calls_per_step,
            fit.final_loss, t.method,
        )  # fmt: skip
    return out


def evaluate_models(
    models: dict[str, nn.Module], test: tuple[Tensor, Tensor], suite: CorruptionSuite | None
) -> dict[str, tuple[float, dict]]:
    """Clean accuracy and corruption errors of every model (each corrupted batch made once)."""
    errors = corruption_errors_many(models, *test, suite) if suite is not None else {}
    return {label: (accuracy(m, *test), errors.get(label, {})) for label, m in models.items()}
