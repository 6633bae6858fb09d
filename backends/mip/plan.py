"""The compiled auction spec: what is trained, attacked and certified, every default resolved
(printable, no torch; `run.py` imports this module, never the other way round at import)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import Attack, Certify, Train
from threatlang.ir.threats import BidSupport

from .config import (
    MipCertifyOptions,
    MisreportOptions,
    Payment,
    RegretNetModelOptions,
    RegretNetTrainOptions,
    ValuationOptions,
)

#: the misreport search when the spec has no `attack misreport` (the certify stage still
#: reports PGD regret beside the certified regret)
DEFAULT_ATTACK = (200, 0.02, 2)
DEFAULT_TRAIN_PROFILES = 4096
DEFAULT_TEST_PROFILES = 20


@attrs.frozen
class TrainStep:
    """`train regretnet`: ``steps`` batches of fresh profiles (epochs x profiles per epoch)."""

    epochs: int
    batch_size: int
    lr: float
    steps: int
    teacher_steps: int
    options: RegretNetTrainOptions


@attrs.frozen
class MisreportStep:
    """PGD on each bidder's report (empirical regret) and the menu search (menu revenue)."""

    steps: int
    step_size: float
    restarts: int
    options: MisreportOptions


@attrs.frozen
class MipPlan(Plan):
    spec: Spec
    support: BidSupport
    model: RegretNetModelOptions
    train: TrainStep | None
    attack: MisreportStep
    certify: MipCertifyOptions | None
    train_profiles: int
    test_profiles: int
    valuations: ValuationOptions
    regret_limit: float | None

    @property
    def agents(self) -> tuple[int, ...]:
        s = self.support
        return tuple(range(s.agents)) if s.agent is None else (s.agent,)

    @property
    def ir(self) -> bool:
        return self.model.payment is Payment.FRACTIONAL

    def describe(self) -> str:
        s, m = self.support, self.model
        lines = [
            f"mip plan for spec {self.spec.name}: {s.agents} agent(s) x {s.items} item(s), "
            f"valuations U[{s.low:g}, {s.high:g}]",
            f"  mechanism: trunk {m.layers} x {m.hidden} ReLU, sparsemax allocation with dummy, "
            + (
                "fractional (IR) payment"
                if self.ir
                else "free payment (IR penalty)"
                + (", clipped at 0 after training" if m.clip_payments else ", never clipped")
            ),
        ]
        if self.train is not None:
            t, o = self.train, self.train.options
            grid = (
                f", also from the best of {o.misreport_grid} grid bids" if o.misreport_grid else ""
            )
            decay = f", lr / 10 after {o.lr_decay_at:g} of the steps" if o.lr_decay_at < 1 else ""
            lines.append(
                f"  train regretnet: {t.steps} steps ({t.epochs} epochs x {self.train_profiles} "
                f"fresh profiles) of batch {t.batch_size}, Adam lr {t.lr:g}{decay}; misreports "
                f"{o.misreport_steps} ascent steps at {o.misreport_lr:g}{grid}; lambda0 "
                f"{o.lambda_init:g}, rho {o.rho:g} (+{o.rho_increment:g}); stability weight "
                f"{o.stability:g}"
            )
            if o.objective.value == "menu":
                lines.append(
                    f"    objective: menu revenue (softmax best response at temperature "
                    f"{o.menu_temperature:g} over {o.menu_grid} grid bids, the truthful bid and "
                    "the outside option) with the regret terms of eq. 4.2"
                )
            if o.distill:
                lines.append(
                    f"    distilled from a softmax RegretNet teacher ({t.teacher_steps} steps), "
                    f"weight {o.distill_weight:g} on the mean squared output difference"
                )
        a = self.attack
        lines.append(
            f"  attack misreport: {a.steps} ascent steps at {a.step_size:g}, {a.restarts} "
            f"restart(s) on {self.valuations.eval_profiles} profiles (revenue, empirical regret, "
            f"IR violations); menu revenue from the best of {a.options.grid} grid bids per "
            "bidder, refined by the same ascent"
        )
        if self.certify is not None:
            o = self.certify
            lines.append(
                f"  certify mip: {self.test_profiles} held-out profiles x agents "
                f"{list(self.agents)}; solver {o.solver}, {o.threads} thread(s), time limit "
                f"{o.time_limit:g}s each, big-M from {o.bounds.value} bounds, gap {o.gap:g} "
                f"(spatial branching {o.branch_gap:g}, at most {o.max_nodes} nodes); "
                "a solve stopped at its limit is certified at its best bound, with the gap"
            )
            if o.support:
                lines.append(
                    f"  certify mip over the whole support, per agent: cells of (true values, "
                    f"other bids), each bounded through the menu's convexity (one-copy MIPs at "
                    f"its corners and over its simplices), best-first, time limit "
                    f"{o.support_time_limit:g}s each; stopped there, the largest open bound is "
                    "reported with its gap"
                )
        if self.regret_limit is not None:
            scope = (
                "over the whole support (every profile, every agent)"
                if self.certify is not None and self.certify.support
                else "at every held-out profile and agent"
            )
            lines.append(f"  require: regret <= {self.regret_limit:g} {scope}")
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def compile_plan(spec: Spec, backend) -> MipPlan:
    """Bind every option to its declared class (the backend's offers) and resolve defaults."""
    support = spec.threat
    assert isinstance(support, BidSupport)
    model = bind_options(
        RegretNetModelOptions, spec.model.options if spec.model else (), "model regretnet"
    )
    data = spec.data
    train_profiles = data.train_limit if data and data.train_limit else DEFAULT_TRAIN_PROFILES
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    attack = next((a for a in spec.actions if isinstance(a, Attack)), None)
    certify = next((a for a in spec.actions if isinstance(a, Certify)), None)
    return MipPlan(
        spec=spec,
        support=support,
        model=model,
        train=None if train is None else _train(spec, train, backend, train_profiles),
        attack=_attack(spec, attack, backend),
        certify=None if certify is None else _certify(spec, certify, backend),
        train_profiles=train_profiles,
        test_profiles=data.test_limit if data and data.test_limit else DEFAULT_TEST_PROFILES,
        valuations=bind_options(ValuationOptions, data.options if data else (), "data valuations"),
        regret_limit=spec.require.r if spec.require is not None else None,
    )


def _train(spec: Spec, train: Train, backend, profiles: int) -> TrainStep:
    o = backend.options(spec, train)
    per_epoch = max(1, -(-profiles // train.batch_size))
    teacher_epochs = train.epochs if o.teacher_epochs is None else o.teacher_epochs
    return TrainStep(
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        steps=train.epochs * per_epoch,
        teacher_steps=teacher_epochs * per_epoch,
        options=attrs.evolve(o, teacher_epochs=teacher_epochs),
    )


def _attack(spec: Spec, attack: Attack | None, backend) -> MisreportStep:
    steps, step_size, restarts = DEFAULT_ATTACK
    if attack is None:
        return MisreportStep(steps, step_size, restarts, MisreportOptions())
    return MisreportStep(
        attack.steps,
        step_size if attack.step_size is None else attack.step_size,
        attack.restarts,
        backend.options(spec, attack),
    )


def _certify(spec: Spec, certify: Certify, backend) -> MipCertifyOptions:
    """The certify options with every default resolved (the action's own time limit and
    thread count win over the option defaults)."""
    o = backend.options(spec, certify)
    return attrs.evolve(
        o,
        time_limit=o.time_limit if certify.time_limit is None else certify.time_limit,
        threads=o.threads if certify.threads is None else certify.threads,
    )
