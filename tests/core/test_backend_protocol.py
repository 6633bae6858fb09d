"""The backend protocol: capability declarations, option binding, registry behaviour."""

from __future__ import annotations

import attrs
import pytest

import threatlang
from threatlang import ir
from threatlang.backends import base


@attrs.frozen
class Config:
    steps: int = 10
    rate: float = 0.5
    mode: ir.Norm = ir.Norm.L2
    sizes: tuple[int, ...] = (1,)
    name: str | None = None


def test_bind_options_converts_and_reports_every_problem():
    spec = threatlang.parse("""spec s {
      model small_cnn
      data digits
      threat patch { shape square(2) }
      train standard { epochs 1 }
      attack pgd { steps 3, rate 1, mode linf, sizes [2, 3], stpes 4, name 3 }
    }""")
    opts = spec.actions[1].options
    good = tuple(o for o in opts if o.name in ("rate", "mode", "sizes"))
    assert base.bind_options(Config, good, "attack pgd") == Config(
        rate=1.0, mode=ir.Norm.LINF, sizes=(2, 3)
    )
    with pytest.raises(base.OptionError) as info:
        base.bind_options(Config, opts, "attack pgd")
    messages = [d.message for d in info.value.diagnostics]
    assert any("unknown option 'stpes'" in m for m in messages)
    assert any("'name'" in m for m in messages)
    assert all(d.span is not None for d in info.value.diagnostics)


def test_accepts_lists_unsupported_nodes_with_spans():
    class Partial(base.Backend):
        name = "partial"
        capabilities = base.Capabilities(
            families={"patch"},
            properties={ir.LabelUnchanged},
            offers=[base.Offer(ir.Train, "all_patch")],
            architectures={"mlp255": "x:y"},
        )

        def compile(self, spec):
            raise AssertionError

    spec = threatlang.load("specs/quickstart.threat")
    missing = Partial().accepts(spec)
    assert {type(u.node) for u in missing} == {ir.Attack, ir.Certify}
    assert all(u.node.span.line > 0 for u in missing)


def test_missing_modules_are_found_without_importing():
    class NeedsNothingReal(base.Backend):
        name = "x"
        capabilities = base.Capabilities(
            families={None}, required_modules=("surely_not_installed_module_xyz", "json")
        )

        def compile(self, spec):
            raise AssertionError

    assert base.missing_modules(NeedsNothingReal()) == ("surely_not_installed_module_xyz",)
