"""The fixed reference model that normalises mCE (ImageNet-C's role for AlexNet).

ImageNet-C divides each model's corruption errors by AlexNet's, so mCE compares across papers.
We have no AlexNet for digits or CIFAR-10 and download nothing, so the reference is defined
here, once: `ReferenceNet`, a small AlexNet-style CNN (conv 32 - pool - conv 64 - pool -
fc 128 - fc K, ReLU), trained with a fixed recipe (`RECIPE`: AdamW lr 1e-3, weight decay 0.01,
batch 64, 8 epochs, no augmentation) on the run's training split, on the CPU, from seed 0,
whatever the run's model, seed or device. The weights and the reference's corruption errors
are cached under the cache directory, keyed by a digest of the training data, the test data,
the architecture and recipe version, and (for the errors) the corruption suite; a second run
on the same data reuses them, so every run's mCE is measured against the same model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.runtime import build_model, generator, save_weights

from .corruptions import Corruption
from .evaluate import CorruptionSuite, corruption_errors

#: bump when ReferenceNet or RECIPE change: cached references of another version are not used
VERSION = "refnet-1"


@attrs.frozen
class Recipe:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0


RECIPE = Recipe()


class ReferenceNet(nn.Module):
    """conv(32, 3x3) - ReLU - maxpool 2 - conv(64, 3x3) - ReLU - maxpool 2 - fc 128 - fc K."""

    def __init__(self, shape: tuple[int, int, int], classes: int) -> None:
        super().__init__()
        c, h, w = shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
            nn.Linear(128, classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def data_key(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in (x, y, x_test, y_test):
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    h.update(f"{VERSION}/{attrs.astuple(RECIPE)}".encode())
    return h.hexdigest()


def train_reference(x: Tensor, y: Tensor, classes: int) -> ReferenceNet:
    """The recipe, on the CPU, from its own seed: the same weights for every run."""
    shape = tuple(x.shape[1:])
    model = build_model(RECIPE.seed, "mce-reference/init", lambda: ReferenceNet(shape, classes))
    g = generator(RECIPE.seed, "mce-reference/batches", "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=RECIPE.lr, weight_decay=RECIPE.weight_decay)
    model.train()
    for _ in range(RECIPE.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), RECIPE.batch_size):
            idx = order[i : i + RECIPE.batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@attrs.frozen
class Reference:
    """The reference's corruption errors and clean accuracy for one data set and suite."""

    errors: dict
    clean_accuracy: float
    key: str
    trained: bool  # trained by this call (False: loaded from the cache)


def reference_errors(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    classes: int,
    suite: CorruptionSuite,
    cache_dir: str,
    batch_size: int = 512,
) -> Reference:
    """The cached reference's errors under `suite` (training or evaluating it when missing)."""
    from .evaluate import accuracy

    cpu = [t.detach().cpu() for t in (*train, *test)]
    key = data_key(*(t.numpy() for t in cpu))
    folder = Path(cache_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{key}.pt"
    suite_key = hashlib.blake2b(suite.key().encode(), digest_size=8).hexdigest()
    errors_file = folder / f"{key}-{suite_key}.json"
    x, y, xt, yt = cpu
    trained = False
    if errors_file.exists():
        saved = json.loads(errors_file.read_text())
        errors = {(Corruption(k), int(s)): float(e) for k, s, e in saved["errors"]}
        return Reference(errors, float(saved["clean_accuracy"]), key, False)
    model = ReferenceNet(tuple(x.shape[1:]), classes)
    if weights.exists():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
    else:
        model = train_reference(x, y, classes)
        trained = True
        save_weights(model, weights)
    errors = corruption_errors(model, xt, yt, suite, batch_size)
    clean = accuracy(model, xt, yt)
    out = {"errors": [[k.value, s, e] for (k, s), e in errors.items()], "clean_accuracy": clean}
    tmp = errors_file.with_name(f".{errors_file.name}.tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, errors_file)
    return Reference(errors, clean, key, trained)
