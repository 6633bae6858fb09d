"""Looking for counterexamples: PGD aimed at each term of the property's negation, run on the
whole box first and later inside the open domains the bound finds hardest, plus the bound's own
hints (each domain's centre and the corner minimising its worst row's linear bound).

Every point found here is only a candidate: `search` confirms it on the original model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .adapter import DTYPE, EngineNet
from .problem import Problem


def term_slack(problem: Problem, y: Tensor, term: Tensor) -> Tensor:
    """(N,) how far each output row is from satisfying every atom of its own `term` (<= 0:
    the point violates the property, up to strictness). Differentiable."""
    g = torch.from_numpy(problem.g).to(y.dtype)
    s = torch.from_numpy(problem.s).to(y.dtype)
    excess = y @ g.T - s  # (N, S): > 0 where the atom fails
    member = torch.from_numpy(problem.member)[term]  # (N, S)
    return torch.where(member, excess, torch.tensor(-torch.inf, dtype=y.dtype)).amax(1)


def pgd(
    net: EngineNet,
    problem: Problem,
    lo: Tensor,
    hi: Tensor,
    term: Tensor,
    x0: Tensor,
    steps: int,
) -> Tensor:
    """Signed-gradient descent on `term_slack` from `x0` inside the boxes [lo, hi] (all (N, d),
    one box and one target term per row), with a step shrinking from a quarter of the box to
    1%; returns each row's best point, as soon as one row violates (slack < 0) in our copy."""
    width = hi - lo
    x = x0.clone()
    best_x = x.clone()
    best = torch.full((x.shape[0],), torch.inf, dtype=DTYPE)
    for step in range(steps):
        x.requires_grad_(True)
        slack = term_slack(problem, net(x), term)
        with torch.no_grad():
            better = slack < best
            best_x[better], best[better] = x.detach()[better], slack.detach()[better]
        if bool((best < 0).any()):
            return best_x  # a candidate: confirm it now (found at step 2 of 50 on verivital)
        (grad,) = torch.autograd.grad(slack.sum(), x)
        size = 0.25 * (1 - step / steps) + 0.01
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lo), hi)
    with torch.no_grad():
        slack = term_slack(problem, net(x), term)
        better = slack < best
        best_x[better] = x[better]
    return best_x


def whole_box(
    net: EngineNet,
    problem: Problem,
    lo: Tensor,
    hi: Tensor,
    restarts: int,
    steps: int,
    gen: torch.Generator,
) -> Tensor:
    """PGD with `restarts` starts per term of the negation (the centre first, then random
    points): a disjunction's terms pull in different directions, so each gets its own."""
    d, terms = lo.numel(), problem.terms
    term = torch.arange(terms).repeat_interleave(restarts)
    x0 = lo + (hi - lo) * torch.rand(len(term), d, generator=gen, dtype=DTYPE)
    x0[::restarts] = (lo + hi) / 2
    n = len(term)
    return pgd(net, problem, lo.expand(n, d), hi.expand(n, d), term, x0, steps)


def in_domains(
    net: EngineNet, problem: Problem, lo: Tensor, hi: Tensor, a: Tensor, term: Tensor, steps: int
) -> Tensor:
    """PGD inside each open domain from the corner that minimises its worst row's linear bound
    (the bound's own guess at the worst point), aimed at that domain's worst term."""
    return pgd(net, problem, lo, hi, term, worst_corner(lo, hi, a), steps)


def worst_corner(lo: Tensor, hi: Tensor, a: Tensor) -> Tensor:
    """(N, d) the corner of each box minimising `a . x` (the linear lower bound's minimiser)."""
    return torch.where(a > 0, lo, hi)
