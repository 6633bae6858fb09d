"""Records, tables (Tables 4.1 and 4.4) and the misreport plot (Figure 4.1) of an auction run."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from threatlang.report import Record, Status, Table

from .certify import AgentCertificate
from .support import SupportCertificate


@attrs.frozen
class ItemAttack:
    """The strongest attack on one (profile, bidder) before it is certified: PGD regret (the
    chapter's empirical regret) and the best of PGD and the menu search, with its misreport."""

    pgd_regret: float
    regret: float
    misreport: np.ndarray


def certificate_record(
    rid: str, profile: np.ndarray, cert: AgentCertificate, attack: ItemAttack, limit: float | None
) -> Record:
    """``certified`` only with a proven regret within ``limit``; ``falsified`` only with a real
    misreport (evaluated by the network: the MIP's or the attack's) whose regret exceeds it;
    ``unknown`` otherwise. A proven regret below what the attack attained is a soundness
    violation (``soundness_violation`` true; never expected)."""
    proven = cert.certified_regret
    values = {
        "profile": profile,
        "agent": cert.agent,
        "truthful_utility": cert.truthful_utility,
        "certified_regret": proven,
        "regret_upper_bound": cert.regret_upper_bound,
        "regret_found": cert.regret_found,
        "empirical_regret": attack.pgd_regret,
        "attack_regret": attack.regret,
        "soundness_violation": proven is not None and attack.regret > proven + 1e-7,
        "solver": cert.solver,
        "solver_switch": cert.switch,
        "nodes": cert.boxes,
        "residual": cert.residual,
        **cert.stats,
    }
    truthful = profile[cert.agent]
    counter = None
    if cert.misreport is not None and cert.regret_found >= attack.regret:
        counter = _counter(cert.agent, truthful, cert.misreport, cert.regret_found)
    elif attack.regret > 0:
        counter = _counter(cert.agent, truthful, attack.misreport, attack.regret)
    found = max(cert.regret_found, attack.regret)
    if limit is not None and found > limit:
        return Record(rid, Status.FALSIFIED, values, cert.seconds, counter, cert.reason)
    if proven is not None and (limit is None or proven <= limit):
        return Record(rid, Status.CERTIFIED, values, cert.seconds, counter, cert.reason)
    if proven is not None:
        reason = (
            f"certified regret {proven:.6f} exceeds {limit:g}; best misreport found {found:.6f}"
        )
    else:
        reason = cert.reason or "not proven optimal"
    return Record(rid, Status.UNKNOWN, values, cert.seconds, counter, reason)


def support_record(rid: str, cert: SupportCertificate, limit: float | None) -> Record:
    """The mechanism-level verdict for one agent: ``certified`` when the support-wide bound is
    within ``limit`` (a bound from a solve stopped at its time limit counts: it is still an
    upper bound); ``falsified`` when a point of the support, evaluated by the network, has
    regret above it; ``unknown`` otherwise (gap open across the limit, or no bound)."""
    w = cert.witness
    values = {
        "agent": cert.agent,
        "scope": "support",
        "certified_max_regret": cert.regret_bound,
        "max_regret_found": cert.regret_found,
        "gap": cert.gap,
        "optimal": cert.optimal,
        "solver": cert.solver,
        "residual": cert.residual,
        **cert.stats,
    }
    counter = None
    if w is not None and w.regret > 0:
        counter = {
            "agent": cert.agent,
            "truthful": w.values,
            "misreport": w.misreport,
            "others": w.others,
            "regret": w.regret,
        }
    bound = cert.regret_bound
    if limit is not None and cert.regret_found > limit:
        return Record(rid, Status.FALSIFIED, values, cert.seconds, counter, cert.reason)
    if bound is not None and (limit is None or bound <= limit):
        return Record(rid, Status.CERTIFIED, values, cert.seconds, counter, cert.reason)
    if bound is not None:
        reason = (
            f"support-wide regret bound {bound:.6f} exceeds {limit:g}; the worst point found has "
            f"{cert.regret_found:.6f}" + ("" if cert.optimal else " (gap open at the time limit)")
        )
    else:
        reason = cert.reason or "no bound"
    return Record(rid, Status.UNKNOWN, values, cert.seconds, counter, reason)


def support_table(setting: str, records) -> Table:
    """One row per agent: the mechanism's certified worst case over the whole support."""
    rows = []
    for r in records:
        v = r.values
        bound = v.get("certified_max_regret")
        rows.append(
            (
                setting,
                str(v["agent"]),
                "-" if bound is None else f"{bound:.5f}",
                f"{v['max_regret_found']:.5f}",
                "-" if v.get("gap") is None else f"{v['gap']:.5f}",
                "closed" if v.get("optimal") else "open (time limit)",
                str(v.get("solver", "")),
                f"{r.seconds:.1f}",
                str(v.get("unstable_relus", "-")),
                r.status.value,
            )
        )
    columns = (
        "setting",
        "agent",
        "certified max regret (whole support)",
        "max regret found",
        "gap",
        "gap status",
        "solver",
        "solve s",
        "unstable ReLUs",
        "regret_at_most",
    )
    title = "Worst-case regret over the whole bid support, per agent (regret_at_most)"
    return Table(title, columns, rows)


def _counter(agent: int, truthful, misreport, regret: float) -> dict:
    return {"agent": agent, "truthful": truthful, "misreport": misreport, "regret": regret}


_UNDECIDED = (Status.UNKNOWN, Status.TIMEOUT, Status.ERROR)


def _mean_std(xs) -> str:
    xs = np.asarray([x for x in xs if x is not None], dtype=float)
    return "-" if len(xs) == 0 else f"{xs.mean():.4f} ({xs.std():.4f})"


def regret_table(
    setting: str, ir: bool, stability: float, revenue: tuple[float, float], records, agents
) -> Table:
    """Table 4.1 per agent: solve time, revenue (truthful, menu), empirical and certified
    regret, their ratio, falsified and undecided pairs."""
    rows = []
    for agent in agents:
        recs = [r for r in records if r.values.get("agent") == agent]
        proven = [r for r in recs if r.values.get("certified_regret") is not None]
        emp = [r.values["empirical_regret"] for r in proven]
        cert = [r.values["certified_regret"] for r in proven]
        ratio = f"{np.mean(emp) / np.mean(cert):.3f}" if proven and np.mean(cert) > 0 else "-"
        rows.append(
            (
                setting + ("" if agent == 0 else f" (agent {agent})"),
                "yes" if ir else "no",
                f"{stability:g}",
                _mean_std([r.seconds for r in recs]),
                f"{revenue[0]:.3f}" if agent == agents[0] else "-",
                f"{revenue[1]:.3f}" if agent == agents[0] else "-",
                _mean_std([r.values["empirical_regret"] for r in recs]),
                _mean_std(cert),
                ratio,
                f"{sum(r.status is Status.FALSIFIED for r in recs)}",
                f"{sum(r.status in _UNDECIDED for r in recs)}",
            )
        )
    columns = (
        "setting",
        "IR",
        "ReLU reg.",
        "solve time s",
        "revenue",
        "menu revenue",
        "empirical regret",
        "certified regret",
        "emp./cert.",
        "falsified",
        "unknown",
    )
    return Table("Certified regret (cf. Table 4.1)", columns, rows)


def ir_table(setting: str, econ) -> Table:
    columns = (
        "setting",
        "revenue",
        "menu revenue",
        "IR-violating %",
        "max violation",
        "mean violation",
        "revenue after IR",
    )
    row = (
        setting,
        f"{econ.revenue:.4f}",
        f"{econ.menu_revenue:.4f}",
        f"{100 * econ.ir_violation_rate:.2f}",
        f"{econ.ir_violation_max:.4f}",
        f"{econ.ir_violation_mean:.5f}",
        f"{econ.revenue_after_ir:.4f}",
    )
    title = "Revenue (menu: every bidder best-responds) and IR violations (cf. Table 4.4)"
    return Table(title, columns, [row])


def plot_misreports(
    records, path: Path, lims: tuple[float, float], agent: int = 0, min_regret: float = 0.0
) -> Path | None:
    """Figure 4.1: truthful bids (circles) with arrows to the certifier's optimal misreport."""
    pts = [
        r
        for r in records
        if r.counterexample
        and r.values.get("agent") == agent
        and r.counterexample["regret"] >= min_regret
    ]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    regrets = np.array([r.counterexample["regret"] for r in pts])
    scale = 20 + 200 * regrets / max(regrets.max(), 1e-12)
    for r, s in zip(pts, scale, strict=True):
        t, m = r.counterexample["truthful"], r.counterexample["misreport"]
        ax.annotate("", xy=m, xytext=t, arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.8})
        ax.scatter(*t, s=s, facecolors="none", edgecolors="tab:blue")
        ax.scatter(*m, s=s, color="tab:red")
    ax.set(xlabel="value of item 1", ylabel="value of item 2", xlim=lims, ylim=lims)
    ax.set_title(
        f"truthful -> optimal misreport (agent {agent}); max regret {regrets.max():.4f}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
