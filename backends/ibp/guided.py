"""Guided-patch certificate training (§2.4.2, (2.15)-(2.17)).

A small U-net maps an image to a predicted margin map of shape ``(labels, m-n+1, m-n+1)``:
one predicted lower bound per label and patch placement (2.15). For every draw, one placement
is sampled for a label other than the image's own (whose margin is identically 0) from the
softmax of that label's *negated* prediction (low margins are the dangerous ones), only the
sampled placements go through the bound engine, the U-net is regressed onto their actual margins by MSE on those placements only (2.16), and the classifier
is trained by cross-entropy on the worst sampled margins (2.17).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.bounds.engine import BoundedNetwork

from .margins import patch_margins, use_local
from .patches import PatchThreat, mask_tensor, offsets


@attrs.frozen
class GuidedConfig:
    k: int = attrs.field(default=10, validator=attrs.validators.ge(1))  # placements per image
    width: int = attrs.field(default=16, validator=attrs.validators.ge(1))  # U-net channels
    lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0.0))  # U-net Adam lr
    temperature: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))


class MarginUNet(nn.Module):
    """Two-level U-net; a final valid convolution of the patch's size turns the ``H x W``
    feature map into the ``(H-h+1) x (W-w+1)`` grid of placements (one channel per label)."""

    def __init__(
        self, in_channels: int, num_classes: int, patch_hw: tuple[int, int], width: int = 16
    ) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
        )
        self.dec = nn.Sequential(nn.Conv2d(3 * w, w, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(w, num_classes, patch_hw)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = F.interpolate(self.enc2(e1), size=e1.shape[-2:], mode="nearest")
        return self.head(self.dec(torch.cat([e1, e2], dim=1)))


def location_probabilities(pred: Tensor, valid: Tensor, temperature: float = 1.0) -> Tensor:
    """``(B, K, L)`` sampling distribution per label: softmax of ``-pred / T`` over the valid
    placements (``valid`` is a bool mask over the flattened grid of L placements)."""
    logits = (-pred.flatten(2) / temperature).masked_fill(~valid, float("-inf"))
    return torch.softmax(logits, dim=-1)


def sample_locations(
    probs: Tensor, k: int, gen: torch.Generator, y: Tensor
) -> tuple[Tensor, Tensor]:
    """``k`` draws per image, each for a label other than the image's own (whose margin
    ``z_y - z_y`` is always 0: a draw there would be wasted): draw ``i`` of image ``b`` serves
    label ``(y_b + 1 + i mod (K-1)) mod K`` and picks a grid index from that label's
    distribution. Returns (grid indices (B, k), labels (B, k))."""
    b, n_labels, n_loc = probs.shape
    if n_labels < 2:
        raise ValueError("guided sampling needs at least two labels")
    step = torch.arange(k, device=probs.device) % (n_labels - 1)
    labels = (y[:, None].to(probs.device) + 1 + step[None, :]) % n_labels  # (B, k), never y
    p = probs.gather(1, labels[..., None].expand(b, k, n_loc)).reshape(b * k, n_loc)
    idx = torch.multinomial(p.detach().to(gen.device), 1, generator=gen).reshape(b, k)
    return idx.to(probs.device), labels


class GuidedPatchLoss:
    """The guided certificate loss for one square/mask threat; owns the U-net and its optimizer.

    Calling it returns the classifier loss (2.17) and, as a side effect, takes one Adam step
    on the U-net with the MSE of (2.16).
    """

    def __init__(
        self,
        threat: PatchThreat,
        input_shape: tuple[int, int, int],
        num_classes: int,
        cfg: GuidedConfig = GuidedConfig(),
        device: torch.device | str = "cpu",
    ) -> None:
        if len(threat.masks) != 1:
            raise ValueError("guided-patch training takes a threat with a single patch shape")
        self.threat, self.cfg = threat, cfg
        self.mask = mask_tensor(threat.masks[0], device)
        hw = tuple(self.mask.shape)
        grid_h, grid_w = input_shape[1] - hw[0] + 1, input_shape[2] - hw[1] + 1
        rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
        self.grid = torch.stack([rows.flatten(), cols.flatten()], 1).to(device)  # (L, 2)
        allowed = offsets(threat.locations, tuple(input_shape[1:]), hw).to(device)
        self.valid = (allowed[:, None, :] == self.grid[None]).all(-1).any(0)  # (L,)
        self.unet = MarginUNet(input_shape[0], num_classes, hw, cfg.width).to(device)
        self.opt = torch.optim.Adam(self.unet.parameters(), lr=cfg.lr)
        self.last_mse = float("nan")

    def __call__(
        self, net: BoundedNetwork, x: Tensor, y: Tensor, scale: float, gen: torch.Generator
    ) -> Tensor:
        pred = self.unet(x.detach())  # (B, K, gh, gw)
        probs = location_probabilities(pred.detach(), self.valid, self.cfg.temperature)
        idx, _ = sample_locations(probs, self.cfg.k, gen, y)
        locs = self.grid[idx]  # (B, k, 2)
        t = self.threat
        local = use_local(tuple(x.shape[-2:]))
        m = patch_margins(net, x, y, self.mask, locs, t.low, t.high, scale=scale, local=local)
        pred_at = pred.flatten(2).gather(2, idx[:, None, :].expand(-1, pred.shape[1], -1))
        mse = F.mse_loss(pred_at, m.detach().transpose(1, 2))
        self.opt.zero_grad(set_to_none=True)
        mse.backward()
        self.opt.step()
        self.last_mse = float(mse.detach())
        return F.cross_entropy(-m.amin(1), y)
