"""Engine selection: ours, auto_LiRPA, or ``auto`` (ours where ours can bound the graph,
auto_LiRPA where only it can), and the bound configuration a certify block asks for."""

from __future__ import annotations

from torch import nn

from threatlang.bounds import LowerSlope, UnsupportedLayer, UnsupportedOp
from threatlang.bounds.crown import Method
from threatlang.bounds.engine import BoundConfig, BoundedNetwork
from threatlang.bounds.lirpa import LirpaNetwork, available

from .config import Engine, Intermediate, Slope

Bounder = BoundedNetwork | LirpaNetwork


def select_engine(model: nn.Module, engine: Engine = Engine.AUTO) -> Bounder:
    """The bound engine for ``model``. Raises UnsupportedLayer (-> status unknown, with the
    reason) when no selected engine can take the graph, UsageError when ``auto_lirpa`` is
    asked for and not installed."""
    if engine is Engine.OURS:
        return BoundedNetwork(model)
    if engine is Engine.AUTO_LIRPA:
        return LirpaNetwork(model)
    try:
        return BoundedNetwork(model)
    except UnsupportedLayer as ours:
        if not available():
            raise UnsupportedOp(
                ours.layer_name,
                getattr(ours, "where", ""),
                f"{ours.why} (engine auto: auto_LiRPA, which might bound it, is not installed)",
            ) from None
        return LirpaNetwork(model, why_not_ours=f"our engine: {ours}")


def bound_config(method: str, slope: Slope, intermediate: Intermediate) -> BoundConfig:
    """What ``certify <method> { slope ..., intermediate ... }`` asks of the engine."""
    if method == "ibp":
        return BoundConfig(Method.IBP)
    if method == "alpha_crown" or slope is Slope.OPTIMIZED:
        return BoundConfig(Method.ALPHA_CROWN, LowerSlope.ADAPTIVE)
    crown = Method.CROWN if intermediate is Intermediate.CROWN else Method.CROWN_IBP
    lower = LowerSlope.ADAPTIVE if slope is Slope.ADAPTIVE else LowerSlope.ZERO
    return BoundConfig(crown, lower)
