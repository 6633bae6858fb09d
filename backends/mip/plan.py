"""The compiled auction spec: what is trained, attacked and certified (printable, no torch)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import Attack, Certify, Train
from threatlang.ir.threats import BidSupport

from .config import MipCertifyOptions, RegretNetTrainOptions, ValuationOptions


@attrs.frozen
class ModelChoice:
    hidden: int = 128
    layers: int = 1
    payment: str = "fractional"

    @property
    def ir(self) -> bool:
        return self.payment == "fractional"


@attrs.frozen
class MipPlan(Plan):
    spec: Spec
    support: BidSupport
    model: ModelChoice
    train: Train | None
    train_options: RegretNetTrainOptions
    attack: Attack | None
    certify: Certify | None
    certify_options: MipCertifyOptions
    train_profiles: int
    test_profiles: int
    valuations: ValuationOptions
    regret_limit: float | None

    @property
    def agents(self) -> tuple[int, ...]:
        s = self.support
        return tuple(range(s.agents)) if s.agent is None else (s.agent,)

    def describe(self) -> str:
        s, m = self.support, self.model
        lines = [
            f"mip plan for spec {self.spec.name}: {s.agents} agent(s) x {s.items} item(s), "
            f"valuations U[{s.low:g}, {s.high:g}]",
            f"  mechanism: trunk {m.layers} x {m.hidden} ReLU, sparsemax allocation with dummy, "
            + ("fractional (IR) payment" if m.ir else "free payment (IR penalty), clipped at 0"),
        ]
        if self.train is not None:
            t, o = self.train, self.train_options
            lines.append(
                f"  train regretnet: {t.epochs} epochs over {self.train_profiles} profiles, batch "
                f"{t.batch_size}, lr {t.lr:g}; misreports {o.misreport_steps} steps at {o.misreport_lr:g}; "
                f"lambda0 {o.lambda_init:g}, rho {o.rho:g}; stability weight {o.stability:g}"
                + ("; distilled from a softmax RegretNet teacher" if o.distill else "")
            )
        if self.attack is not None:
            a = self.attack
            lines.append(
                f"  attack misreport: {a.steps} steps, {a.restarts} restart(s) on "
                f"{self.valuations.eval_profiles} profiles (revenue, empirical regret, IR violations)"
            )
        if self.certify is not None:
            o = self.certify_options
            limit = f"{o.time_limit:g}s"
            lines.append(
                f"  certify mip: {self.test_profiles} held-out profiles x agents {list(self.agents)}; "
                f"solver {o.solver}, {o.threads} thread(s), time limit {limit} each, big-M from {o.bounds.value} bounds; "
                "time-outs are unknown"
            )
        if self.regret_limit is not None:
            lines.append(f"  require: regret <= {self.regret_limit:g} for every profile and agent")
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def compile_plan(spec: Spec) -> MipPlan:
    support = spec.threat
    assert isinstance(support, BidSupport)
    opts = {o.name: o.value for o in spec.model.options} if spec.model is not None else {}
    model = ModelChoice(
        hidden=int(opts.get("hidden", 128)),
        layers=int(opts.get("layers", 1)),
        payment=str(opts.get("payment", "fractional")),
    )
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    attack = next((a for a in spec.actions if isinstance(a, Attack)), None)
    certify = next((a for a in spec.actions if isinstance(a, Certify)), None)
    data = spec.data
    return MipPlan(
        spec=spec,
        support=support,
        model=model,
        train=train,
        train_options=bind_options(RegretNetTrainOptions, train.options if train else (), "train"),
        attack=attack,
        certify=certify,
        certify_options=_certify_options(certify),
        train_profiles=(data.train_limit if data and data.train_limit else 4096),
        test_profiles=(data.test_limit if data and data.test_limit else 20),
        valuations=bind_options(ValuationOptions, data.options if data else (), "data valuations"),
        regret_limit=spec.require.r if spec.require is not None else None,
    )


def _certify_options(certify: Certify | None) -> MipCertifyOptions:
    """The certify options with every default resolved (the action's own time limit and
    thread count win over the option defaults)."""
    o = bind_options(MipCertifyOptions, certify.options if certify else (), "certify mip")
    if certify is None:
        return o
    return attrs.evolve(
        o,
        time_limit=certify.time_limit or o.time_limit,
        threads=certify.threads or o.threads,
    )
