"""Receptive-field IBP for patches: the clean pass once, a patch-local correction per placement.

Outside a patch's receptive field every layer equals the clean forward pass, so for each
placement we only carry a *window* of each feature map (the positions the patch can reach,
at most ``floor((h + k - 2) / s) + 1`` rows after a k/s layer) and gather its context from
the clean activations. A Flatten+Linear then needs only the weight columns under the window:
``W x = W x_clean + W[:, window] (x - x_clean)[window]``. All placements of a chunk go
through each layer as one batched call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from threatlang.bounds import BoundOp, Box, Geometry, propagate
from threatlang.bounds.affine import BoundFlatten, BoundLinear
from threatlang.bounds.engine import BoundedNetwork

from .patches import gather_windows, window_box


def local_prefix(net: BoundedNetwork) -> tuple[int, bool]:
    """(number of leading local ops, whether a Flatten+Linear pair follows them)."""
    n = 0
    while n < len(net.body) and net.body[n].geometry is not None:
        n += 1
    rest = net.body[n:]
    flat_linear = (
        len(rest) >= 2 and isinstance(rest[0], BoundFlatten) and isinstance(rest[1], BoundLinear)
    )
    return n, flat_linear


def _ceil_div(a: Tensor, b: int) -> Tensor:
    return -torch.div(-a, b, rounding_mode="floor")


def _crop(
    clean: Tensor,
    win: Box,
    offs: Tensor,
    start: Tensor,
    size: tuple[int, int],
    pad: tuple[int, int],
    pad_value: float,
) -> Box:
    """Boxes ``(B, L, C, *size)`` of the padded map region at ``start`` (padded coords):
    clean values, overwritten by the window ``win`` placed at ``offs`` (unpadded coords)."""
    b, c = clean.shape[:2]
    h, w = win.centre.shape[-2:]
    xp = F.pad(clean, (pad[1], pad[1], pad[0], pad[0]), value=pad_value) if any(pad) else clean
    base = gather_windows(xp, start, size)
    dev = clean.device
    ri = start[..., 0, None] + torch.arange(size[0], device=dev) - pad[0] - offs[..., 0, None]
    ci = start[..., 1, None] + torch.arange(size[1], device=dev) - pad[1] - offs[..., 1, None]
    valid = ((ri >= 0) & (ri < h))[..., :, None] & ((ci >= 0) & (ci < w))[..., None, :]
    valid = valid.unsqueeze(-3)  # (B', L, 1, sh, sw)
    rj, cj = ri.clamp(0, h - 1), ci.clamp(0, w - 1)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    li = torch.arange(win.centre.shape[1], device=dev)[None, :, None, None]

    def take(t: Tensor) -> Tensor:
        return t[bi, li, :, rj[..., :, None], cj[..., None, :]].permute(0, 1, 4, 2, 3)

    centre = torch.where(valid, take(win.centre), base)
    radius = torch.where(valid, take(win.radius), torch.zeros_like(base))
    return Box(centre, radius)


def local_step(
    op: BoundOp, geo: Geometry, clean: Tensor, win: Box, offs: Tensor
) -> tuple[Box, Tensor]:
    """Apply a local op to a windowed state; returns the output window and its offsets."""
    b, l_ = win.centre.shape[:2]
    if geo.kernel == (1, 1) and geo.stride == (1, 1) and geo.padding == (0, 0):
        out = op.interval_valid(win.reshape(b * l_, *win.centre.shape[2:]))
        return out.reshape(b, l_, *out.centre.shape[1:]), offs
    size_in = clean.shape[-2:]
    start, sizes, crop = [], [], []
    for d in range(2):
        k, s, p = geo.kernel[d], geo.stride[d], geo.padding[d]
        n_out = (size_in[d] + 2 * p - k) // s + 1
        h = win.centre.shape[-2 + d]
        size = min((h + k - 2) // s + 1, n_out)
        lo = _ceil_div(offs[..., d] + p - k + 1, s).clamp(0, n_out - size)
        start.append(lo)
        sizes.append(size)
        crop.append((size - 1) * s + k)
    start_t = torch.stack(start, dim=-1)
    box = _crop(
        clean,
        win,
        offs,
        start_t * torch.tensor(geo.stride, device=offs.device),
        tuple(crop),
        geo.padding,
        geo.pad_value,
    )
    out = op.interval_valid(box.reshape(b * l_, *box.centre.shape[2:]))
    return out.reshape(b, l_, *out.centre.shape[1:]), start_t


def flat_linear(op: BoundLinear, clean: Tensor, win: Box, offs: Tensor) -> Box:
    """Flatten + Linear on a windowed state: clean output plus the window's columns only.

    Placements whose windows start at the same feature-map position share one gathered weight
    block (after strided layers most do), so rows are grouped by window position and each
    group is one matmul; the weight gather is per distinct position, not per placement.
    """
    b, l_, c, h, w = win.centre.shape
    weight = op.module.weight.reshape(-1, *clean.shape[1:])
    flat_offs = offs.expand(b, l_, 2).reshape(-1, 2)
    uniq, inv = torch.unique(flat_offs, dim=0, return_inverse=True)
    if uniq.shape[0] * 4 > offs.shape[0] * offs.shape[1]:  # few repeats: one block per placement
        return _flat_linear_gathered(op, weight, clean, win, offs)
    rows = uniq[:, 0, None] + torch.arange(h, device=clean.device)
    cols = uniq[:, 1, None] + torch.arange(w, device=clean.device)
    wg = weight[:, :, rows[:, :, None], cols[:, None, :]]  # (out, C, U, h, w)
    wg = wg.permute(2, 0, 1, 3, 4).flatten(2)  # (U, out, C*h*w)
    delta = (win.centre - gather_windows(clean, offs, (h, w))).reshape(b * l_, -1)
    radius = win.radius.reshape(b * l_, -1)
    order = torch.argsort(inv)
    counts = torch.bincount(inv, minlength=uniq.shape[0]).tolist()
    parts_c, parts_r = [], []
    for u, group in enumerate(torch.split(order, counts)):
        if len(group):
            parts_c.append(delta[group] @ wg[u].T)
            parts_r.append(radius[group] @ wg[u].abs().T)
    back = torch.argsort(order)
    clean_out = op.module(clean.flatten(1))
    centre = clean_out.repeat_interleave(l_, 0) + torch.cat(parts_c)[back]
    return Box(centre, torch.cat(parts_r)[back])


def _flat_linear_gathered(
    op: BoundLinear, weight: Tensor, clean: Tensor, win: Box, offs: Tensor
) -> Box:
    b, l_, c, h, w = win.centre.shape
    rows = offs[..., 0, None] + torch.arange(h, device=clean.device)
    cols = offs[..., 1, None] + torch.arange(w, device=clean.device)
    wg = weight[:, :, rows[..., :, None], cols[..., None, :]]  # (out, C, B', L, h, w)
    wg = wg.permute(2, 3, 0, 1, 4, 5).flatten(3)  # (B', L, out, C*h*w)
    delta = (win.centre - gather_windows(clean, offs, (h, w))).flatten(2)
    clean_out = op.module(clean.flatten(1)).unsqueeze(1)
    centre = clean_out + _per_placement_matmul(wg, delta)
    radius = _per_placement_matmul(wg.abs(), win.radius.flatten(2))
    return Box(centre.reshape(b * l_, -1), radius.reshape(b * l_, -1))


def _per_placement_matmul(wg: Tensor, v: Tensor) -> Tensor:
    """``out[b, l] = wg[b or 0, l] @ v[b, l]``; one bmm over placements when ``wg`` is shared."""
    if wg.shape[0] == 1 and v.shape[0] > 1:
        return torch.bmm(wg[0], v.permute(1, 2, 0)).permute(2, 0, 1)
    return (wg @ v.unsqueeze(-1)).squeeze(-1)


def densify(clean: Tensor, win: Box, offs: Tensor) -> Box:
    """Full maps ``(B * L, C, H, W)`` from a windowed state."""
    b, l_ = win.centre.shape[:2]
    start = torch.zeros_like(offs)
    box = _crop(clean, win, offs, start, tuple(clean.shape[-2:]), (0, 0), 0.0)
    return box.reshape(b * l_, *clean.shape[1:])


def local_body_box(
    net: BoundedNetwork,
    x: Tensor,
    mask: Tensor,
    offs: Tensor,
    low: float,
    high: float,
    scale: float = 1.0,
) -> Box:
    """IBP box ``(B * L, ...)`` at the output of ``net.body`` for every image and placement."""
    n_local, has_flat_linear = local_prefix(net)
    if offs.dim() == 2:
        offs = offs.unsqueeze(0)
    win = window_box(x, mask, offs, low, high, scale)
    clean = x
    for op in net.body[:n_local]:
        win, offs = local_step(op, op.geometry, clean, win, offs)
        clean = op.forward(clean)
    rest = net.body[n_local:]
    if has_flat_linear:
        box = flat_linear(rest[1], clean, win, offs)
        rest = rest[2:]
    else:
        box = densify(clean, win, offs)
    return propagate(rest, box)
