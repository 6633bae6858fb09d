"""The `mip` backend: certifying strategyproof auction networks (dissertation chapter 4).

A bid support is the threat, a RegretNet-style mechanism (sparsemax allocation, fractional-IR
or free payment) is the model, and `regret_at_most(r)` is the property: per held-out profile
and agent, a mixed-integer program maximises the agent's utility over its misreport, giving
the certified regret (sound or silent: time-outs are `unknown`); the optimal misreport is the
counterexample. Gurobi first; when Gurobi is missing or its licence is too small, SCIP (open
source, exact bilinear) and HiGHS (open-source MILP). Light on purpose: no torch or solver
import here.
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, DataOffer, Offer, Unsupported
from threatlang.backends.choices import AttackMethod, CertifyMethod, GeneratedData, Solver, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Certify,
    Train,
)
from threatlang.ir.properties import RegretAtMost
from threatlang.ir.refs import ModelKind

from .config import (
    MipCertifyOptions,
    MisreportOptions,
    RegretNetModelOptions,
    RegretNetTrainOptions,
    ValuationOptions,
)
from .summary import MipSummary

__all__ = ["BACKEND", "MipBackend"]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class MipBackend(Backend):
    """Train `regretnet`, attack `misreport` (PGD regret), certify `mip` (certified regret)."""

    name: ClassVar[str] = "mip"
    capabilities: ClassVar = Capabilities(
        families={"bid support"},
        properties={RegretAtMost},
        offers=[
            Offer(Train, Strategy.REGRETNET, RegretNetTrainOptions),
            Offer(Attack, AttackMethod.MISREPORT, MisreportOptions),
            Offer(Certify, CertifyMethod.MIP, MipCertifyOptions),
        ],
        data=[DataOffer(GeneratedData.VALUATIONS, ValuationOptions)],
        model_options=RegretNetModelOptions,
        architectures={"regretnet": "threatlang.backends.mip.architectures:regretnet"},
        required_modules=("torch", "highspy"),
        priority=40,
        summary=MipSummary,
        certifies=True,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        model = spec.model
        if model is not None:
            if model.kind not in (ModelKind.BUILTIN, ModelKind.STATE_DICT):
                out.append(Unsupported(model, "needs `regretnet` (builtin or a state dict of it)"))
        if spec.data is not None and spec.data.source != GeneratedData.VALUATIONS:
            out.append(Unsupported(spec.data, "auctions read `data valuations`"))
        for action in spec.actions:
            if (
                isinstance(action, Certify)
                and _solver(action) == Solver.SCIP
                and not _has("pyscipopt")
            ):
                out.append(Unsupported(action, "solver scip needs pyscipopt: use highs or gurobi"))
            if (
                isinstance(action, Certify)
                and _solver(action) == Solver.GUROBI
                and not _has("gurobipy")
            ):
                out.append(Unsupported(action, "solver gurobi needs gurobipy: use highs or auto"))
        if not any(isinstance(a, Certify | Attack) for a in spec.actions):
            out.append(Unsupported(spec, "needs `certify mip` or `attack misreport`"))
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self)


BACKEND = MipBackend()


def _solver(certify: Certify) -> str:
    return next((str(o.value) for o in certify.options if o.name == "solver"), Solver.AUTO)
