"""auto_LiRPA as a second bound engine (optional dependency, imported on first use).

Bounds a batch of boxes (a patch set is a batch of boxes, one per placement) or l2 balls with
auto_LiRPA's IBP, CROWN or alpha-CROWN, always in ``conv_mode: matrix`` (its default patches
mode asserts on constant multiplications). :class:`LirpaNetwork` has the margin interface of
:class:`.engine.BoundedNetwork`, so certification code can take either.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io

import torch
from torch import Tensor, nn

from threatlang.errors import UsageError

from . import UnsupportedOp
from .crown import Method
from .engine import BoundConfig, margin_matrix
from .inputs import BoxInput, InputSet, L2Input

INSTALL = (
    "auto_LiRPA is not installed: install its 0.7.1 release with "
    "`pip install --no-deps auto_lirpa-0.7.1-py3-none-any.whl` (or from its source repository, "
    "Verified-Intelligence/auto_LiRPA) and then `pip install appdirs pyyaml tqdm packaging "
    "graphviz`."
)

_METHOD = {
    Method.IBP: "IBP",
    Method.CROWN_IBP: "CROWN-IBP",
    Method.CROWN: "CROWN",
    Method.ALPHA_CROWN: "alpha-CROWN",
}


def available() -> bool:
    return importlib.util.find_spec("auto_LiRPA") is not None


def _lirpa():
    try:
        import auto_LiRPA
        from auto_LiRPA.perturbations import PerturbationLpNorm
    except ImportError:
        raise UsageError(INSTALL) from None
    return auto_LiRPA, PerturbationLpNorm


def _without_dropout(model: nn.Module) -> nn.Module:
    """A copy with dropout layers replaced by identities (the eval-mode network; auto_LiRPA
    0.7.1's dropout op fails under recent torch)."""
    model = copy.deepcopy(model).eval()
    for child in list(model.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.modules.dropout._DropoutNd):
                setattr(child, attr, nn.Identity())
    return model


class LirpaNetwork:
    """auto_LiRPA's ``BoundedModule`` of ``model``, built on first use for the input shape.

    Failures (an op auto_LiRPA cannot bound) raise :class:`UnsupportedOp` with its message,
    prefixed by ``why_not_ours`` when engine ``auto`` fell back to it."""

    def __init__(self, model: nn.Module, why_not_ours: str | None = None) -> None:
        _lirpa()  # a clear sentence now when it is missing
        self.model = model
        self.why_not_ours = why_not_ours
        self._bounded = None
        self._shape: tuple[int, ...] | None = None
        self.alpha_steps: int | None = None

    def _fail(self, err: Exception) -> UnsupportedOp:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        why = f"auto_LiRPA failed ({type(err).__name__}: {msg})"
        if self.why_not_ours:
            why = f"{self.why_not_ours}; {why}"
        return UnsupportedOp(type(self.model).__name__, "", why)

    def bounded(self, like: Tensor):
        shape = tuple(like.shape[1:])
        if self._bounded is None or self._shape != shape:
            lirpa, _ = _lirpa()
            try:  # its graph parser prints a failed trace's traceback to stdout: keep it quiet
                with contextlib.redirect_stdout(io.StringIO()):
                    self._bounded = lirpa.BoundedModule(
                        _without_dropout(self.model),
                        torch.zeros(1, *shape, dtype=like.dtype, device=like.device),
                        bound_opts={"conv_mode": "matrix", "verbosity": 0},
                        device=str(like.device),
                        verbose=0,
                    )
            except Exception as err:  # auto_LiRPA raises many kinds for unsupported graphs
                raise self._fail(err) from None
            self._shape = shape
        return self._bounded

    def logits(self, x: Tensor) -> Tensor:
        return self.model(x)

    def bounded_forward(self, x: Tensor) -> Tensor:
        """auto_LiRPA's own graph run concretely: what its bounds are about."""
        with torch.no_grad():
            return self.bounded(x)(x)

    def ibp_sound_for(self, inputs: InputSet) -> bool:
        """auto_LiRPA 0.7.1's IBP returns a zero-width interval for an l2 ball whose first op
        is elementwise (``x - 0.5``): never take it for l2 balls."""
        return not isinstance(inputs, L2Input)

    def bounds(
        self,
        inputs: InputSet,
        spec: Tensor,
        method: Method,
        upper: bool = False,
        alpha_steps: int = 20,
    ) -> tuple[Tensor, Tensor | None]:
        """(lower, upper or None) bounds (N, S) of ``spec . output`` over the input set
        (``spec``: (N, S, K))."""
        lirpa, ptb_cls = _lirpa()
        if not self.ibp_sound_for(inputs) and method in (Method.IBP, Method.CROWN_IBP):
            raise UnsupportedOp(
                "auto_LiRPA",
                "",
                "auto_LiRPA 0.7.1's interval bounds are unsound for l2 balls; use crown or "
                "alpha_crown with it, or our engine",
            )
        if isinstance(inputs, BoxInput):
            box = inputs.value
            x = box.centre
            ptb = ptb_cls(norm=float("inf"), x_L=box.lo, x_U=box.hi)
        elif isinstance(inputs, L2Input):
            x = inputs.x0
            ptb = ptb_cls(norm=2, eps=inputs.eps)
        else:
            raise TypeError(f"auto_LiRPA engine cannot take {type(inputs).__name__}")
        bm = self.bounded(x)
        if method is Method.ALPHA_CROWN:
            bm.set_bound_opts({"optimize_bound_args": {"iteration": alpha_steps, "lr_alpha": 0.1}})
        try:
            with torch.no_grad() if method is not Method.ALPHA_CROWN else torch.enable_grad():
                lb, ub = bm.compute_bounds(
                    x=(lirpa.BoundedTensor(x, ptb),),
                    method=_METHOD[method],
                    C=spec,
                    bound_upper=upper,
                )
        except Exception as err:
            raise self._fail(err) from None
        return lb.detach(), (ub.detach() if upper and ub is not None else None)

    def margins(self, inputs: InputSet, y: Tensor, cfg: BoundConfig = BoundConfig()) -> Tensor:
        """Lower bounds (N, K) on ``z_y - z_j``; column ``y`` is 0."""
        x = inputs.box().centre
        k = int(self.model(x[:1]).shape[1])
        c = margin_matrix(y, k, x.dtype)
        lb, _ = self.bounds(inputs, c, cfg.method, alpha_steps=cfg.alpha_steps)
        return lb.scatter(1, y[:, None], 0.0)
