"""The compiled `certify bab` spec: which box, which property, which options (no torch)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import Certify
from threatlang.ir.properties import OutputsSatisfy, constraints
from threatlang.ir.threats import BoxUnion, InputBox

from .config import BabCertifyOptions, BabOptions, Engine

VERDICTS = (
    "holds = proved for every input in the box (record status certified); "
    "violated = a counterexample the original model confirms (falsified); "
    "unknown = neither within the limits, with the reason (timeout at the time limit, "
    "unknown otherwise)"
)


@attrs.frozen
class BabPlan(Plan):
    spec: Spec
    box: InputBox | BoxUnion
    prop: OutputsSatisfy
    options: BabOptions

    @property
    def input_shape(self) -> tuple[int, ...]:
        d = self.spec.domain
        return tuple(d.shape) if d is not None else (self.box.dims,)

    def describe(self) -> str:
        o = self.options
        atoms = len(constraints(self.prop.formula))
        branching = (
            f"auto (inputs when <= {o.input_split_max_dims} dimensions, else ReLUs)"
            if o.branching == "auto"
            else o.branching
        )
        lines = [
            f"bab plan for spec {self.spec.name}: "
            + (
                f"a union of {len(self.box.boxes)} input boxes (one verdict, one time limit)"
                if isinstance(self.box, BoxUnion)
                else "an input box"
            )
            + f" of {self.box.dims} dimensions, "
            f"a property of {atoms} linear output constraint(s)",
            (
                f"  bound: CROWN on our engine (float64), {o.batch} domains per engine call"
                if o.engine is Engine.CROWN
                else "  engine: Marabou on the ONNX file, one query per term of the negation "
                "(the options below apply to our engine only)"
            ),
            f"  attack first: PGD {o.pgd_restarts} restarts x {o.pgd_steps} steps per term; "
            "every open domain's centre and worst corner checked, PGD inside the hardest",
            f"  branching: {branching}; input splits try {o.split_candidates} dimensions and keep "
            f"the best; at most {o.max_domains} open domains",
            f"  time limit {o.time_limit:g}s"
            + (f" per shard, {o.shards} shards as work items" if o.shards > 1 else ""),
            f"  verdicts: {VERDICTS}",
        ]
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def compile_plan(spec: Spec) -> BabPlan:
    box, prop = spec.threat, spec.require
    assert isinstance(box, InputBox | BoxUnion) and isinstance(prop, OutputsSatisfy)
    certify = next(a for a in spec.actions if isinstance(a, Certify))
    options = bind_options(BabCertifyOptions, certify.options, "certify bab")
    return BabPlan(spec, box, prop, options.resolve(certify.time_limit))
