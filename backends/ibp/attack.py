"""Patch attacks: IFGSM / PGD on the patch contents, with a search over locations (§2.3.2).

Every (image, location) pair is attacked independently and in batches, on a margin loss
``max_{j != y} z_j - z_y``; an image counts as broken once any pair is misclassified. The
``CORNERS`` search is the weak adversary of §2.3; ``ANYWHERE`` tries every placement of the
threat (or ``max_locations`` of them drawn per image).
"""

from __future__ import annotations

import enum

import attrs
import torch
from torch import Tensor, nn

from .patches import (
    LocationKind,
    Locations,
    PatchThreat,
    apply_patch,
    chunks,
    gather_windows,
    mask_tensor,
    offsets,
)


class AttackMethod(enum.Enum):
    IFGSM = "ifgsm"  # start from the clean pixels
    PGD = "pgd"  # start from uniform random contents


class LocationSearch(enum.Enum):
    CORNERS = "corners"
    ANYWHERE = "anywhere"


@attrs.frozen
class AttackConfig:
    method: AttackMethod = AttackMethod.PGD
    search: LocationSearch = LocationSearch.ANYWHERE
    steps: int = attrs.field(default=20, validator=attrs.validators.ge(0))
    step_size: float = attrs.field(default=0.25, validator=attrs.validators.gt(0.0))  # x (high-low)
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    max_locations: int | None = None
    chunk: int = attrs.field(default=64, validator=attrs.validators.ge(1))


@attrs.frozen
class AttackResult:
    success: Tensor  # (B,) bool
    adversarial: Tensor  # (B, C, H, W): a misclassified patched image where success
    location: Tensor  # (B, 2)
    shape_index: Tensor  # (B,)


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per row ``max_{j != y} z_j - z_y``: positive exactly when misclassified."""
    true = logits.gather(-1, y[..., None]).squeeze(-1)
    other = logits.scatter(-1, y[..., None], float("-inf")).amax(-1)
    return other - true


def _optimise(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    offs: Tensor,
    threat: PatchThreat,
    cfg: AttackConfig,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Attack all (image, placement) pairs of a chunk; returns (broken (B, L), images)."""
    b, c = x.shape[:2]
    n_loc, (mh, mw) = offs.shape[-2], mask.shape
    lo, hi = threat.low, threat.high
    if cfg.method == AttackMethod.PGD:
        u = torch.rand((b, n_loc, c, mh, mw), generator=gen, device=gen.device).to(x.device)
        content = lo + (hi - lo) * u
    else:
        full = offs if offs.dim() == 3 else offs.unsqueeze(0)
        content = gather_windows(x, full, (mh, mw)).clone()
    yy = y[:, None].expand(b, n_loc)
    best_broken = torch.zeros(b, n_loc, dtype=torch.bool, device=x.device)
    best_imgs = apply_patch(x, mask, offs, content)
    for step in range(cfg.steps + 1):
        content = content.detach().requires_grad_(step < cfg.steps)
        imgs = apply_patch(x, mask, offs, content)
        logits = model(imgs.reshape(b * n_loc, *x.shape[1:])).reshape(b, n_loc, -1)
        loss = margin_loss(logits, yy)
        broken = loss.detach() > 0
        new = broken & ~best_broken
        best_imgs = torch.where(new[..., None, None, None], imgs.detach(), best_imgs)
        best_broken |= broken
        if step == cfg.steps or bool(best_broken.any(1).all()):
            break
        (grad,) = torch.autograd.grad(loss.sum(), content)
        content = (content + cfg.step_size * (hi - lo) * grad.sign()).clamp(lo, hi)
    return best_broken, best_imgs


def patch_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: AttackConfig = AttackConfig(),
    *,
    seed: int = 0,
    gen: torch.Generator | None = None,
) -> AttackResult:
    """Search patch contents and locations for a misclassification of each image. Random
    contents and location samples are drawn from `gen` (a run's `attack` stream), or from a
    CPU generator seeded with `seed` when none is given (library use)."""
    model.eval()
    if gen is None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
    b = x.shape[0]
    success = torch.zeros(b, dtype=torch.bool, device=x.device)
    adv = x.clone()
    where = torch.zeros(b, 2, dtype=torch.long, device=x.device)
    which = torch.zeros(b, dtype=torch.long, device=x.device)
    with torch.no_grad():
        success |= model(x).argmax(1) != y
    locs = (
        threat.locations
        if cfg.search is LocationSearch.ANYWHERE
        else Locations(LocationKind.CORNERS)
    )
    for s_idx, m in enumerate(threat.masks):
        mask = mask_tensor(m, x.device)
        offs = offsets(locs, tuple(x.shape[-2:]), tuple(mask.shape)).to(x.device)
        if cfg.max_locations is not None and offs.shape[0] > cfg.max_locations:
            pick = torch.stack(
                [
                    torch.randperm(offs.shape[0], generator=gen, device=gen.device)[
                        : cfg.max_locations
                    ]
                    for _ in range(b)
                ]
            )
            offs = offs[pick.to(offs.device)]  # (B, L, 2)
        for _ in range(cfg.restarts):
            for part in chunks(offs, cfg.chunk):
                todo = ~success
                if not bool(todo.any()):
                    break
                idx = todo.nonzero().squeeze(1)
                part_b = part[idx] if part.dim() == 3 else part
                broken, imgs = _optimise(model, x[idx], y[idx], mask, part_b, threat, cfg, gen)
                hit = broken.any(1)
                first = broken.float().argmax(1)
                rows = idx[hit]
                adv[rows] = imgs[hit, first[hit]]
                pl = part_b[hit, first[hit]] if part_b.dim() == 3 else part_b[first[hit]]
                where[rows] = pl
                which[rows] = s_idx
                success[rows] = True
    return AttackResult(success, adv, where, which)
