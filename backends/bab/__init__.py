"""The `bab` backend: complete verdicts by branch and bound (`certify bab`).

An input box (`threat box { ... }`) and linear output constraints in `all`/`any`
(`require outputs { ... }`), as in VNN-COMP's ACAS Xu: CROWN bounds from our engine over
batches of domains, input splitting for low-dimensional inputs and ReLU splitting otherwise,
PGD first. Verdicts: `holds` (proved: status certified), `violated` (a counterexample the
original model confirms, onnxruntime for ONNX: falsified), `unknown` with the reason (timeout
at the time limit). Light on purpose: no torch import here.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, Offer, Unsupported
from threatlang.ir import Spec
from threatlang.ir.actions import Certify
from threatlang.ir.properties import OutputsSatisfy
from threatlang.ir.refs import ModelKind

from .config import BabCertifyOptions
from .summary import BabSummary

__all__ = ["BACKEND", "BabBackend"]


class BabBackend(Backend):
    """`certify bab` over an input box with a `require outputs` property."""

    name: ClassVar[str] = "bab"
    capabilities: ClassVar = Capabilities(
        families={"input box"},
        properties={OutputsSatisfy},
        offers=[Offer(Certify, "bab", BabCertifyOptions)],
        required_modules=("torch",),
        priority=45,
        certifies=True,
        summary=BabSummary,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        if not any(isinstance(a, Certify) for a in spec.actions):
            out.append(Unsupported(spec, "needs `certify bab`"))
        model = spec.model
        if model is not None and model.kind is ModelKind.BUILTIN:
            out.append(
                Unsupported(
                    model,
                    'certifies a model file: onnx("net.onnx"), torchscript(...), '
                    "state_dict(...) { arch ... } or python(...)",
                )
            )
        out.extend(_marabou_problems(spec))
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec)


def _marabou_problems(spec: Spec) -> list[Unsupported]:
    """`engine marabou` needs maraboupy and an ONNX file (Marabou reads the network itself)."""
    import importlib.util

    asked = [
        o
        for a in spec.actions
        if isinstance(a, Certify)
        for o in a.options
        if o.name == "engine" and str(o.value) == "marabou"
    ]
    if not asked:
        return []
    out = []
    if importlib.util.find_spec("maraboupy") is None:
        out.append(
            Unsupported(
                asked[0], "engine marabou needs maraboupy: pip install 'threatlang[marabou]'"
            )
        )
    if spec.model is not None and spec.model.kind is not ModelKind.ONNX:
        out.append(
            Unsupported(spec.model, "engine marabou reads the network from an onnx(...) file")
        )
    return out


BACKEND = BabBackend()
