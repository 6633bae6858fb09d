"""Engine selection: ours, auto_LiRPA, or ``auto`` (ours where ours can bound the graph,
auto_LiRPA where only it can), and the bound configuration a certify block asks for."""

from __future__ import annotations

from torch import Tensor, nn

from threatlang.bounds import CaptureError, LowerSlope, UnsupportedLayer, UnsupportedOp, capture
from threatlang.bounds.crown import Method
from threatlang.bounds.engine import BoundConfig, BoundedNetwork
from threatlang.bounds.lirpa import LirpaNetwork, available

from .config import Engine, Intermediate, Slope

Bounder = BoundedNetwork | LirpaNetwork


def select_engine(model: nn.Module, engine: Engine, example: Tensor) -> Bounder:
    """The bound engine for ``model`` on inputs shaped like ``example``. Raises
    UnsupportedLayer (-> status unknown, with the reason) when no selected engine can take the
    graph, UsageError when ``auto_lirpa`` is asked for and not installed.

    Under ``auto``, auto_LiRPA is tried only for a model torch.export captured but our engine
    has no rule for: a model that could not be captured (data-dependent control flow) is never
    handed to a tracer that specialises to one probe input. Either engine's bounds are
    validated against the model before any certificate (:mod:`.validation`)."""
    if engine is Engine.OURS:
        return BoundedNetwork(model, example)
    if engine is Engine.AUTO_LIRPA:
        _capturable(model, example)
        return LirpaNetwork(model)
    try:
        return BoundedNetwork(model, example)
    except CaptureError:
        raise
    except UnsupportedLayer as ours:
        if not available():
            raise UnsupportedOp(
                ours.layer_name,
                getattr(ours, "where", ""),
                f"{ours.why} (engine auto: auto_LiRPA, which might bound it, is not installed)",
            ) from None
        return LirpaNetwork(model, why_not_ours=f"our engine: {ours}")


def _capturable(model: nn.Module, example: Tensor) -> None:
    """auto_LiRPA traces with ``torch.jit`` on one probe input, which silently keeps only the
    branch that input takes: hand it only models that ``torch.export`` captures whole."""
    try:
        capture(model, example)
    except CaptureError:
        raise
    except UnsupportedLayer:
        pass  # captured, but an op has no rule of ours: auto_LiRPA may have one


def bound_config(method: str, slope: Slope, intermediate: Intermediate) -> BoundConfig:
    """What ``certify <method> { slope ..., intermediate ... }`` asks of the engine."""
    if method == "ibp":
        return BoundConfig(Method.IBP)
    if method == "alpha_crown" or slope is Slope.OPTIMIZED:
        return BoundConfig(Method.ALPHA_CROWN, LowerSlope.ADAPTIVE)
    crown = Method.CROWN if intermediate is Intermediate.CROWN else Method.CROWN_IBP
    lower = LowerSlope.ADAPTIVE if slope is Slope.ADAPTIVE else LowerSlope.ZERO
    return BoundConfig(crown, lower)
