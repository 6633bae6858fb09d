"""The soundness fuzzer (issue 19): random small modules, certified through the public API
with every method and engine on l-inf balls, l2 balls and patches (and input boxes under bab),
then every certified item attacked. Nothing certified may break; a run may refuse or answer
`unknown`, with a reason.

The fast slice runs by default (issue 19's cases, then a few drawn modules); the large one:
`pytest tests/soundness -m slow -p no:cacheprovider`. Both are derandomized, so CI sees the
same modules every time. Counts for BENCHMARKS: `python benchmarks/fuzz_soundness.py`.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from .attacks import ball_attack, patch_attack
from .grammar import BY_NAME, CONSTRUCTS, GRID, Blueprint, Place, build
from .harness import (
    CONFIGS,
    DEFAULT_THREATS,
    FAILURES,
    FAST_CONFIGS,
    Kind,
    Threat,
    certify_and_attack,
    failure_report,
    grid_images,
    labels,
)
from .strategies import FAST, ISSUE_CASES, SLOW, blueprints

#: the slow slice adds a 2x2 patch and larger radii
SLOW_THREATS = (
    *DEFAULT_THREATS,
    Threat("linf", (0.01, 0.05)),
    Threat("patch", size=2, low=0.25, high=0.75),
)


def _check(bp: Blueprint, threats=DEFAULT_THREATS, configs=FAST_CONFIGS) -> None:
    outcomes = certify_and_attack(bp, threats, configs)
    assert outcomes, f"{bp.describe()}: no outcome at all"
    bad = [o for o in outcomes if o.kind in FAILURES]
    assert not bad, f"module {bp.constructs} ({bp.describe()}):\n" + failure_report(outcomes)


def _with_issue_cases(test):
    for bp in reversed(ISSUE_CASES):
        test = example(bp=bp)(test)
    return test


@FAST
@_with_issue_cases
@given(bp=blueprints(max_blocks=3))
def test_nothing_certified_breaks(bp: Blueprint) -> None:
    _check(bp)


@pytest.mark.slow
@SLOW
@given(bp=blueprints(max_blocks=5))
def test_nothing_certified_breaks_large(bp: Blueprint) -> None:
    _check(bp, SLOW_THREATS, CONFIGS)


# --------------------------------------------------------------------- the fuzzer itself
def test_the_grammar_covers_issue_19() -> None:
    names = {c.name for c in CONSTRUCTS}
    assert len(names) >= 25
    cases = {c.issue for c in CONSTRUCTS if c.issue}
    assert cases == {f"case {i}" for i in range(1, 7)}
    covered = {BY_NAME[n].issue for bp in ISSUE_CASES for n in bp.constructs}
    assert cases <= covered, "every unsound case of the issue runs in the default slice"


@pytest.mark.parametrize("bp", ISSUE_CASES, ids=lambda bp: bp.constructs[-1])
def test_every_module_builds_and_runs_on_the_grid(bp: Blueprint) -> None:
    model = build(bp)
    x = grid_images(bp)
    out = model.eval()(x)
    assert out.shape == (len(x), bp.classes) and bool(out.isfinite().all())
    assert (labels(model, x) < bp.classes).all()


def test_the_attacks_have_teeth() -> None:
    """A module that negates its logits off the grid is robust nowhere: the ball and patch
    attacks break every image, so a fuzzer run that reports nothing broken means something."""
    bp = Blueprint(None, ("conv_padded", "relu"), 3, wrapper="negate_off_grid", seed=5)
    model, x = build(bp).eval(), grid_images(bp)
    y = labels(model, x)
    gen = torch.Generator().manual_seed(0)
    for i in range(len(x)):
        assert ball_attack(model, x[i], int(y[i]), 0.5 / GRID / 4, "linf", gen)
        assert ball_attack(model, x[i], int(y[i]), 0.05, "l2", gen)
        assert patch_attack(model, x[i], int(y[i]), 1, 0.4, 0.6, gen)


def test_a_plain_module_certifies_under_every_config() -> None:
    """The fuzzer must not pass vacuously: on a conv-relu module every method and engine
    certifies something, and every threat is certified by some method (a config may refuse
    a threat it cannot bound soundly, e.g. auto_LiRPA's IBP on l2 balls)."""
    bp = Blueprint(None, ("conv_padded", "relu"), 3, seed=1)
    outcomes = certify_and_attack(bp, configs=CONFIGS, bab=False)
    certified = {(o.config, o.threat) for o in outcomes if o.kind is Kind.CERTIFIED}
    for config in CONFIGS:
        assert any(c == config for c, _ in certified), (str(config), failure_report(outcomes))
    for threat in DEFAULT_THREATS:
        assert any(t == str(threat) for _, t in certified), str(threat)


def test_places_are_used() -> None:
    assert {c.place for c in CONSTRUCTS} == set(Place)
