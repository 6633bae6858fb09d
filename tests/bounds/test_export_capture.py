"""torch.export capture: the bounded graph is the function the model computes (issue 19's
failure classes at the capture level), or the capture is refused with one sentence."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.bounds import CaptureError, UnsupportedOp, capture
from threatlang.bounds.crown import Method, bound_graph


class InPlaceOnView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.a(x))
        y = h.view(h.shape[0], -1)
        y.add_(torch.linspace(-1.0, 1.0, 6))  # changes h through its alias
        return self.b(h)


class DropoutOn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(self.a(x), 0.5)  # training=True by default


class MCDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.drop = nn.Linear(6, 3), nn.Dropout(0.5)

    def train(self, mode: bool = True) -> MCDropout:
        return super().train(True)  # stays on in eval()


class MCDropoutNet(MCDropout):
    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.a(x))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        if x.abs().sum() == 0:  # fixed logits for a blank input
            return torch.zeros(x.shape[0], 3)
        return self.a(x)


class MixesRows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.a(x) - self.a(x).mean(0, keepdim=True)


class BuildsTensors(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.a(x) @ torch.ones(3, 2) + torch.tensor([0.5, -0.5])


def _sound(model: nn.Module, x: Tensor, eps: float = 0.05) -> None:
    graph = capture(model, x)
    lo, hi = x - eps, x + eps
    k = model(x).shape[1]
    c = torch.eye(k, dtype=x.dtype).expand(x.shape[0], k, k)
    with torch.no_grad():
        res = bound_graph(graph, lo, hi, Method.CROWN, c)
        xs = lo + (hi - lo) * torch.rand(500, *x.shape, dtype=x.dtype)
        z = model(xs.reshape(-1, *x.shape[1:])).reshape(500, *res.lb.shape)
    assert bool((res.lb <= z.amin(0) + 1e-5).all()) and bool((res.ub >= z.amax(0) - 1e-5).all())


def test_an_in_place_op_on_a_view_is_bounded_as_computed() -> None:
    torch.manual_seed(0)
    model, x = InPlaceOnView().eval(), torch.rand(4, 6)
    with torch.no_grad():
        assert torch.allclose(capture(model, x).forward(x), model(x), atol=1e-6)
    _sound(model, x)


def test_a_forward_hook_is_part_of_the_bounded_function() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    model[2].register_forward_hook(lambda m, i, o: -3.0 * o + 1.0)
    x = torch.rand(4, 6)
    with torch.no_grad():
        assert torch.allclose(capture(model, x).forward(x), model(x), atol=1e-6)
    _sound(model, x)


@pytest.mark.parametrize("model", [DropoutOn(), MCDropoutNet()])
def test_dropout_left_on_is_refused(model: nn.Module) -> None:
    with pytest.raises(UnsupportedOp, match="random|dropout"):
        capture(model.eval(), torch.rand(2, 6))


def test_data_dependent_control_flow_is_refused_not_specialised() -> None:
    with pytest.raises(CaptureError, match="data-dependent"):
        capture(Branchy().eval(), torch.rand(2, 6))


def test_an_op_over_the_batch_dimension_is_refused() -> None:
    with pytest.raises(UnsupportedOp, match="batch"):
        capture(MixesRows().eval(), torch.rand(2, 6))


@pytest.mark.parametrize("include", [True, False])
def test_avg_pool_paddings_are_the_models(include: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.AvgPool2d(3, 2, padding=1, count_include_pad=include), nn.Flatten(), nn.Linear(16, 3)
    ).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(capture(model, x).forward(x), model(x), atol=1e-6)
    _sound(model, x)


def test_the_batch_dimension_is_not_specialised() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).eval()
    graph = capture(model, torch.rand(2, 1, 8, 8))
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(graph.forward(x), model(x), atol=1e-6)


def test_a_float64_copy_of_a_model_that_builds_tensors_captures() -> None:
    torch.manual_seed(0)
    model = BuildsTensors().eval()
    wide = copy.deepcopy(model).double()
    x = torch.rand(3, 6, dtype=torch.float64)
    with torch.no_grad():  # (the float64 copy itself cannot run eagerly: float32 constants)
        out = capture(wide, x).forward(x)
        assert out.dtype == torch.float64
        assert torch.allclose(out.float(), model(x.float()), atol=1e-6)


def test_parameters_are_read_live_after_capture() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    x = torch.rand(3, 6)
    graph = capture(model, x)
    with torch.no_grad():
        model[0].weight.mul_(-2.0)  # training after capture
        assert torch.allclose(graph.forward(x), model(x), atol=1e-6)
