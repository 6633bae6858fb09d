"""Every new op as a user writes it, captured from one module with torch.export: the bounded
graph computes the model, and every method's bounds contain sampled outputs of input boxes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.bounds import LowerSlope, capture
from threatlang.bounds.crown import Method, bound_graph

from .opcheck import samples


class EveryOp(nn.Module):
    """Linear on the last dim of a 4-d input, the activations, ConvTranspose2d, both
    upsamplings, amax over channels, permute/transpose, strided slices, mean, constant pad,
    select, a matmul with a constant, sum, unsqueeze/expand/squeeze."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.up_t = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1)
        self.near = nn.Upsample(scale_factor=2)
        self.bilin = nn.Upsample(scale_factor=2, mode="bilinear")
        self.register_buffer("proj", torch.randn(14, 5) / 10)
        self.head = nn.Linear(18, 3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.lin(x)  # (N, 2, 4, 3)
        y = (
            F.hardtanh(y)
            + torch.clamp(y, min=0.1)
            + F.leaky_relu(y, -0.2)
            + y.abs()
            + torch.sigmoid(y)
            + torch.tanh(y)
        )
        z = self.up_t(y)
        z = self.near(z) + self.bilin(z)
        z = z.amax(1, keepdim=True) + z.permute(0, 1, 3, 2).transpose(2, 3)[:, :1, ::2].mean(
            (2, 3), keepdim=True
        )
        z = F.pad(z, (1, 1, 2, 0), value=0.5)
        h = (z[:, 0] @ self.proj).sum(-1)
        h = h + x[:, 0, 1, 2].unsqueeze(1).expand(-1, 18).squeeze(1) * 2
        return self.head(h)


def test_every_op_captured_is_bounded_soundly() -> None:
    """One capture (torch.export's cost dominates), boxes of two radii, every method."""
    torch.manual_seed(0)
    model = EveryOp().eval()
    x = torch.rand(2, 2, 4, 4)
    graph = capture(model, x)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x), model(x))
        for eps in (0.02, 0.2):
            lo, hi = x - eps, x + eps
            xs = samples(lo, hi, 800, gen)
            ys = model(xs.reshape(-1, *x.shape[1:])).reshape(800, 2, 3)
            for method in Method:
                for slope in (LowerSlope.ZERO, LowerSlope.ADAPTIVE):
                    res = bound_graph(graph, lo, hi, method, slope=slope, alpha_steps=3)
                    assert bool((res.lb <= ys.amin(0) + 1e-4).all()), (eps, method, slope)
                    assert bool((res.ub >= ys.amax(0) - 1e-4).all()), (eps, method, slope)
