"""Running an auction plan: build or train the mechanism, measure it, certify held-out profiles.

The run scaffolding is the core's (`RunContext`): the mechanism is built with `ctx.build_model`,
trained or reloaded with `ctx.checkpoint` (its seconds survive a resume), every random stream is
a named `ctx.generator` on the device that draws, and the per-(profile, agent) solves go through
the shared `run_items` loop. This module keeps the science: training, the economics, the MIPs.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING

import attrs
import numpy as np
import torch

from threatlang.errors import UsageError
from threatlang.ir.refs import ModelKind
from threatlang.report import Status, Summary
from threatlang.runloop import run_items

from .bounds import BoundMethod
from .certify import CertifyConfig
from .config import Objective, Payment
from .economics import Economics, evaluate_economics
from .mechanisms import AllocationKind, Mechanism, MechanismConfig, PaymentKind
from .menu import best_responses
from .regret import AttackConfig, empirical_regret
from .results import ItemAttack, ir_table, plot_misreports, regret_table, support_table
from .solvers import SolverKind
from .solvers.gurobi import available as gurobi_available
from .solvers.gurobi import licence_is_limited
from .summary import MipSummary
from .support import Witness, regret_at_points
from .train import TrainConfig, train_mechanism
from .valuations import SupportBox, sample_profiles
from .work import CertifyJob, certify_item, certify_support_item, item_id, support_id

if TYPE_CHECKING:  # annotations only: run imports no plan at run time (no cycle)
    from .plan import MipPlan


def _config(plan: MipPlan, payment: PaymentKind, allocation=AllocationKind.SPARSEMAX):
    s, m = plan.support, plan.model
    return MechanismConfig(s.agents, s.items, (m.hidden,) * m.layers, allocation, payment)


def _payment(plan: MipPlan) -> PaymentKind:
    return PaymentKind.FREE if plan.model.payment is Payment.FREE else PaymentKind.FRACTIONAL


def _train(plan: MipPlan, ctx, mech: Mechanism, box, stream: str, steps: int, teacher=None):
    t, o = plan.train, plan.train.options
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
        misreport_grid=o.misreport_grid,
        lr_decay_at=o.lr_decay_at,
        menu_grid=o.menu_grid if o.objective is Objective.MENU else 0,
        menu_temperature=o.menu_temperature,
    )
    ctx.console.print(f"training {stream}: {steps} steps")

    def log(entry) -> None:
        ctx.console.print(
            f"  step {entry.step}: revenue {entry.revenue:.4f}, regret {entry.regret:.5f}, "
            f"IR violation {entry.ir_violation:.5f}"
        )

    gen = ctx.generator(f"{stream}-batches")
    train_mechanism(mech, box, cfg, gen, teacher=teacher, on_step=log, log_every=500)


def _mechanism(plan: MipPlan, ctx, box: SupportBox) -> Mechanism:
    """The caller's mechanism, a state dict named by the spec, or the trained one."""
    if ctx.model is not None:
        if not isinstance(ctx.model, Mechanism):
            raise UsageError(
                "the mip backend certifies threatlang.backends.mip.mechanisms.Mechanism "
                f"networks; got {type(ctx.model).__name__}."
            )
        return ctx.model.eval()
    payment = _payment(plan)
    mech = ctx.build_model("mechanism", lambda: Mechanism(_config(plan, payment)))
    mech.clip_payments = False
    ref = plan.spec.model
    if ref is not None and ref.kind == ModelKind.STATE_DICT:
        from threatlang.models_io import resolve_path

        mech.load_state_dict(torch.load(resolve_path(ref), map_location="cpu", weights_only=True))
    elif plan.train is not None:
        ctx.checkpoint("mechanism.pt", mech, lambda: _train_all(plan, ctx, mech, box))
    # §4.3.2: free payments are clipped at 0 after training (Table 4.2's runs are not)
    mech.clip_payments = payment is PaymentKind.FREE and plan.model.clip_payments
    return mech.eval()


def _train_all(plan: MipPlan, ctx, mech: Mechanism, box: SupportBox) -> None:
    teacher = None
    if plan.train.options.distill:
        cfg = _config(plan, PaymentKind.FRACTIONAL_SIGMOID, AllocationKind.SOFTMAX)
        teacher = ctx.build_model("teacher", lambda: Mechanism(cfg))
        steps = plan.train.teacher_steps
        ctx.checkpoint(
            "teacher.pt",
            teacher,
            lambda: _train(plan, ctx, teacher, box, "teacher", steps),
            stage="train_teacher",
        )
        teacher.eval()
    _train(plan, ctx, mech, box, "mechanism", plan.train.steps, teacher)


def run_plan(plan: MipPlan, ctx) -> Summary:
    """Small networks and single-threaded solvers: one torch thread is faster and fair."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(plan, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(plan: MipPlan, ctx) -> Summary:
    if ctx.data is not None:
        raise UsageError(
            "the mip backend draws its valuation profiles from the spec's bid support; "
            "it takes no data= (hand over a model= to certify your own mechanism)."
        )
    s = plan.support
    box = SupportBox(s.agents, s.items, s.low, s.high)
    mech = _mechanism(plan, ctx, box)
    mech64 = copy.deepcopy(mech).double().cpu().eval()  # float64 on the host, as the MIPs are
    a = plan.attack
    attack = AttackConfig(a.steps, a.step_size, a.restarts)
    eval_v = sample_profiles(
        box, plan.valuations.eval_profiles, ctx.generator("eval-profiles", "cpu"), torch.float64
    )
    with ctx.timings.measure("evaluate"):
        econ = evaluate_economics(
            mech64, eval_v, box, attack, ctx.generator("eval-attack", "cpu"), a.options.grid
        )
    setting = f"{s.agents}x{s.items}"
    tables = [ir_table(setting, econ)]
    plots = []
    cert: dict = {}
    if plan.certify is not None:
        records = _certify(plan, ctx, mech64, box, attack)
        cert = _certify_metrics(records)
        report_switches(ctx, records)
        if plan.certify.support:
            support = _certify_support(plan, ctx, mech64, box, econ, eval_v)
            cert.update(_support_metrics(support, plan.regret_limit))
            tables.insert(0, support_table(setting, support))
        revenue = (econ.revenue, econ.menu_revenue)
        stability = plan.train.options.stability if plan.train is not None else 0.0
        # Table 4.1 first, then the whole-support verdict, then revenue and IR
        tables.insert(0, regret_table(setting, plan.ir, stability, revenue, records, plan.agents))
        if s.items == 2:
            path = plot_misreports(
                records, ctx.artifact("misreports.png"), (s.low, s.high), plan.agents[0], 0.0
            )
            plots += [path] if path is not None else []
    summary = MipSummary(
        **_economics_metrics(econ, len(eval_v)),
        train_seconds=ctx.timings.get("train"),
        evaluate_seconds=ctx.timings.get("evaluate"),
        **cert,
    )
    return Summary(_metrics(summary), tuple(tables), tuple(plots))


def _metrics(summary: MipSummary) -> dict:
    return attrs.asdict(summary)


def _economics_metrics(econ: Economics, n: int) -> dict:
    return {
        "revenue": econ.revenue,
        "menu_revenue": econ.menu_revenue,
        "empirical_regret": float(econ.regret.mean()),
        "empirical_regret_per_agent": econ.regret.mean(dim=0).tolist(),
        "menu_regret": float(econ.menu_regret.mean()),
        "menu_regret_max": float(econ.menu_regret.max()),
        "ir_violation_rate": econ.ir_violation_rate,
        "ir_violation_max": econ.ir_violation_max,
        "ir_violation_mean": econ.ir_violation_mean,
        "revenue_after_ir": econ.revenue_after_ir,
        "eval_profiles": n,
    }


def _certify(plan: MipPlan, ctx, mech64: Mechanism, box: SupportBox, attack: AttackConfig):
    o = plan.certify
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
        box, plan.test_profiles, ctx.generator("test-profiles", "cpu"), torch.float64
    )
    gen = ctx.generator("test-attack", "cpu")
    pgd, misreports = empirical_regret(mech64, test_v, box, attack, gen)
    menu = best_responses(mech64, test_v, box, attack, gen, plan.attack.options.grid, misreports)
    strongest = torch.where((menu.regret > pgd)[..., None], menu.misreports, misreports)
    job = CertifyJob(mech64, box.low, box.high, cfg, limited, plan.regret_limit)
    items = []
    for k in range(len(test_v)):
        for agent in plan.agents:
            found = ItemAttack(
                float(pgd[k, agent]),
                float(max(pgd[k, agent], menu.regret[k, agent])),
                strongest[k, agent].numpy(),
            )
            items.append((item_id(k, agent), (k, test_v[k].numpy(), agent, found)))
    return list(run_items(ctx, items, functools.partial(certify_item, job), "certifying"))


def _attack_witness(mech64, agent: int, values: torch.Tensor, econ: Economics) -> Witness:
    """The evaluation profile where the menu search found the most regret for ``agent``: the
    support-wide MIP's first incumbent (a real point: its regret is the network's)."""
    k = int(econ.menu_regret[:, agent].argmax())
    others = torch.cat([values[k, :agent], values[k, agent + 1 :]])
    v, b = values[k, agent], econ.menu_misreports[k, agent]
    r = regret_at_points(mech64, agent, v[None], b[None], others[None])
    return Witness(v.numpy(), b.numpy(), others.numpy(), float(r[0]))


def _certify_support(plan: MipPlan, ctx, mech64, box: SupportBox, econ, eval_v):
    o = plan.certify
    cfg = CertifyConfig(
        solver=SolverKind(o.solver),
        bounds=BoundMethod(o.bounds.value),
        time_limit=o.support_time_limit,
        gap=o.gap,
        branch_gap=o.branch_gap,
        max_boxes=o.max_nodes,
        threads=o.threads,
    )
    limited = gurobi_available() and licence_is_limited()
    job = CertifyJob(mech64, box.low, box.high, cfg, limited, plan.regret_limit)
    items = [
        (support_id(agent), (agent, _attack_witness(mech64, agent, eval_v, econ)))
        for agent in plan.agents
    ]
    fn = functools.partial(certify_support_item, job)
    return list(run_items(ctx, items, fn, "certifying the whole support"))


def _support_metrics(records, limit: float | None) -> dict:
    bounds = [r.values.get("certified_max_regret") for r in records]
    found = [r.values["max_regret_found"] for r in records]
    gaps = [r.values.get("gap") for r in records]
    statuses = {r.status for r in records}
    if Status.FALSIFIED in statuses:
        verdict = Status.FALSIFIED
    elif statuses == {Status.CERTIFIED}:
        verdict = Status.CERTIFIED
    else:
        verdict = Status.UNKNOWN
    whole = None if any(b is None for b in bounds) else max(bounds)
    return {
        "certified_max_regret": whole,
        "certified_max_regret_per_agent": bounds,
        "max_regret_found": max(found),
        "certified_max_regret_gap": None if any(g is None for g in gaps) else max(gaps),
        "certified_max_regret_closed": all(bool(r.values.get("optimal")) for r in records),
        "support_solve_seconds": float(sum(r.seconds for r in records)),
        "regret_at_most": None if limit is None else verdict.value,
    }


def report_switches(ctx, records) -> None:
    """`solver auto` moving certificates off Gurobi is said once on the console."""
    notes = [r.values.get("solver_switch") for r in records if r.values.get("solver_switch")]
    if notes:
        ctx.console.print(
            f"solver auto: {len(notes)} of {len(records)} certificates did not run on Gurobi "
            f"({notes[0]})"
        )


def _certify_metrics(records) -> dict:
    secs = np.array([r.seconds for r in records])
    proven = [r for r in records if r.values.get("certified_regret") is not None]
    cert = np.array([r.values["certified_regret"] for r in proven])
    emp = np.array([r.values["empirical_regret"] for r in proven])
    residuals = [r.values["residual"] for r in proven if r.values.get("residual") is not None]
    certified = [r for r in records if r.status is Status.CERTIFIED]
    return {
        "certified_regret": float(cert.mean()) if len(cert) else None,
        "certified_regret_max": float(cert.max()) if len(cert) else None,
        "empirical_regret_certified_profiles": float(emp.mean()) if len(emp) else None,
        "empirical_certified_ratio": float(emp.mean() / cert.mean())
        if len(cert) and cert.mean() > 0
        else None,
        "soundness_violations": sum(bool(r.values.get("soundness_violation")) for r in certified),
        "solve_time_mean": float(secs.mean()),
        "solve_time_median": float(np.median(secs)),
        "solve_time_p95": float(np.percentile(secs, 95)),
        "certified_count": len(certified),
        "falsified_count": sum(r.status is Status.FALSIFIED for r in records),
        "unknown_count": sum(
            r.status in (Status.UNKNOWN, Status.TIMEOUT, Status.ERROR) for r in records
        ),
        "proven_count": len(proven),
        "mip_residual_max": float(max(residuals)) if residuals else None,
        "solvers": sorted({r.values.get("solver") for r in records}),
        "solver_switches": sum(bool(r.values.get("solver_switch")) for r in records),
    }
