"""Running an auction plan: build or train the mechanism, measure it, certify held-out profiles."""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch

from threatlang.report import Summary
from threatlang.runloop import run_items

from .bounds import BoundMethod
from .certify import CertifyConfig
from .economics import evaluate_economics
from .mechanisms import AllocationKind, Mechanism, MechanismConfig, PaymentKind
from .plan import MipPlan
from .regret import AttackConfig, empirical_regret
from .results import ir_table, plot_misreports, regret_table
from .solvers import SolverKind
from .solvers.gurobi import available as gurobi_available
from .solvers.gurobi import licence_is_limited
from .train import TrainConfig, train_mechanism
from .valuations import SupportBox, sample_profiles
from .work import CertifyJob, certify_item, item_id


def _config(
    plan: MipPlan, payment: PaymentKind, allocation=AllocationKind.SPARSEMAX
) -> MechanismConfig:
    s, m = plan.support, plan.model
    return MechanismConfig(s.agents, s.items, (m.hidden,) * m.layers, allocation, payment)


def _train(plan: MipPlan, ctx, mech: Mechanism, box, gen, teacher=None, epochs=None) -> None:
    t, o = plan.train, plan.train_options
    profiles = sample_profiles(box, plan.train_profiles, gen)
    steps = (epochs or t.epochs) * max(1, -(-plan.train_profiles // t.batch_size))
    cfg = TrainConfig(
        steps=steps,
        batch_size=t.batch_size,
        lr=t.lr,
        attack=AttackConfig(o.misreport_steps, o.misreport_lr, 1),
        lambda_init=o.lambda_init,
        rho=o.rho,
        rho_increment=o.rho_increment,
        stability_weight=o.stability,
        distill_weight=o.distill_weight if teacher is not None else 0.0,
    )
    who = "teacher" if mech.config.allocation is AllocationKind.SOFTMAX else "mechanism"
    ctx.console.print(f"training {who}: {steps} steps")

    def log(entry) -> None:
        ctx.console.print(
            f"  step {entry.step}: revenue {entry.revenue:.4f}, regret {entry.regret:.5f}, "
            f"IR violation {entry.ir_violation:.5f}"
        )

    train_mechanism(mech, box, cfg, gen, teacher=teacher, on_step=log, profiles=profiles)


def _mechanism(plan: MipPlan, ctx, box: SupportBox, gen: torch.Generator) -> Mechanism:
    if ctx.model is not None:
        if not isinstance(ctx.model, Mechanism):
            raise TypeError(
                "the mip backend certifies threatlang.backends.mip.mechanisms.Mechanism"
            )
        return ctx.model
    payment = PaymentKind(plan.model.payment)
    mech = Mechanism(_config(plan, payment), generator=gen)
    ref = plan.spec.model
    if ref is not None and ref.kind.value == "state_dict":
        from threatlang.models_io import resolve_path

        mech.load_state_dict(torch.load(resolve_path(ref), map_location="cpu", weights_only=True))
        mech.clip_payments = payment is PaymentKind.FREE
        return mech.eval()
    cache = ctx.artifact("mechanism.pt")
    if ctx.resume and cache.exists():
        mech.load_state_dict(torch.load(cache, weights_only=True))
        mech.clip_payments = payment is PaymentKind.FREE
        return mech.eval()
    if plan.train is not None:
        teacher = None
        if plan.train_options.distill:
            cfg = _config(plan, PaymentKind.FRACTIONAL_SIGMOID, AllocationKind.SOFTMAX)
            teacher = Mechanism(cfg, generator=gen)
            _train(plan, ctx, teacher, box, gen, epochs=plan.train_options.teacher_epochs)
        _train(plan, ctx, mech, box, gen, teacher=teacher)
        torch.save(mech.state_dict(), cache)
    mech.clip_payments = payment is PaymentKind.FREE
    return mech.eval()


def _attack(plan: MipPlan) -> AttackConfig:
    a = plan.attack
    if a is None:
        return AttackConfig(200, 0.02, 2)
    return AttackConfig(a.steps, a.step_size or 0.02, a.restarts)


def run_plan(plan: MipPlan, ctx) -> Summary:
    """Small networks and single-threaded solvers: one torch thread is faster and fair."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(plan, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(plan: MipPlan, ctx) -> Summary:
    s = plan.support
    box = SupportBox(s.agents, s.items, s.low, s.high)
    gen = torch.Generator().manual_seed(ctx.seed + plan.spec.seed)
    mech = _mechanism(plan, ctx, box, gen)
    mech64 = copy.deepcopy(mech).double().eval()
    attack = _attack(plan)
    setting = f"{s.agents}x{s.items}"
    eval_v = sample_profiles(
        box,
        plan.valuations.eval_profiles,
        torch.Generator().manual_seed(ctx.seed + 1),
        dtype=torch.float64,
    )
    econ = evaluate_economics(mech64, eval_v, box, attack, gen)
    metrics = {
        "revenue": econ.revenue,
        "empirical_regret": float(econ.regret.mean()),
        "empirical_regret_per_agent": econ.regret.mean(dim=0),
        "ir_violation_rate": econ.ir_violation_rate,
        "ir_violation_max": econ.ir_violation_max,
        "ir_violation_mean": econ.ir_violation_mean,
        "revenue_after_ir": econ.revenue_after_ir,
        "eval_profiles": len(eval_v),
    }
    tables = [ir_table(setting, econ)]
    plots = []
    if plan.certify is not None:
        records = _certify(plan, ctx, mech64, box, attack)
        metrics.update(_certify_metrics(records))
        tables.insert(
            0,
            regret_table(
                setting,
                plan.model.ir,
                plan.train_options.stability,
                econ.revenue,
                records,
                plan.agents,
            ),
        )
        if s.items == 2:
            path = plot_misreports(
                records, ctx.artifact("misreports.png"), (s.low, s.high), plan.agents[0], 0.0
            )
            plots += [path] if path is not None else []
    return Summary(metrics, tuple(tables), tuple(plots))


def _certify(plan: MipPlan, ctx, mech64: Mechanism, box: SupportBox, attack: AttackConfig):
    o = plan.certify_options
    cfg = CertifyConfig(
        solver=SolverKind(o.solver),
        bounds=BoundMethod(o.bounds.value),
        time_limit=o.time_limit,
        gap=o.gap,
        branch_gap=o.branch_gap,
        max_boxes=o.max_nodes,
        threads=o.threads,
    )
    limited = gurobi_available() and licence_is_limited()
    test_v = sample_profiles(
        box, plan.test_profiles, torch.Generator().manual_seed(ctx.seed + 2), dtype=torch.float64
    )
    pgd, _ = empirical_regret(
        mech64, test_v, box, attack, torch.Generator().manual_seed(ctx.seed + 3)
    )
    job = CertifyJob(mech64, box.low, box.high, cfg, limited, plan.regret_limit)
    items = [
        (item_id(k, agent), (k, test_v[k].numpy(), agent, float(pgd[k, agent])))
        for k in range(len(test_v))
        for agent in plan.agents
    ]
    return list(run_items(ctx, items, functools.partial(certify_item, job), "certifying"))


def _certify_metrics(records) -> dict:
    secs = np.array([r.seconds for r in records])
    proven = [r for r in records if r.values.get("certified_regret") is not None]
    cert = np.array([r.values["certified_regret"] for r in proven])
    emp = np.array([r.values["empirical_regret"] for r in proven])
    residuals = [r.values["residual"] for r in proven if r.values.get("residual") is not None]
    return {
        "certified_regret": float(cert.mean()) if len(cert) else None,
        "certified_regret_max": float(cert.max()) if len(cert) else None,
        "empirical_regret_certified_profiles": float(emp.mean()) if len(emp) else None,
        "empirical_certified_ratio": float(emp.mean() / cert.mean())
        if len(cert) and cert.mean() > 0
        else None,
        "pgd_above_certified": int((emp > cert + 1e-7).sum()),
        "solve_time_mean": float(secs.mean()),
        "solve_time_median": float(np.median(secs)),
        "solve_time_p95": float(np.percentile(secs, 95)),
        "certified_count": sum(r.status.value == "certified" for r in records),
        "falsified_count": sum(r.status.value == "falsified" for r in records),
        "unknown_count": sum(r.status.value in ("unknown", "timeout", "error") for r in records),
        "proven_count": len(proven),
        "mip_residual_max": float(max(residuals)) if residuals else None,
        "solvers": sorted({r.values.get("solver") for r in records}),
    }
