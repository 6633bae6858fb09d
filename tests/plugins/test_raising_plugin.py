"""A plugin whose `accepts` or `refine` raises is skipped with one warning naming it; `check`
and `run` go on with the other backends (it used to break `check` for every spec)."""

from __future__ import annotations

import warnings

import pytest

import threatlang
from threatlang.compile import capable_backend

SPEC = """threatlang 1
spec quick {
  model mlp255
  data digits
  threat patch {
    shape square(2)
    locations all
    values [0, 1]
  }
  require label_unchanged
  train all_patch
  certify ibp
}
"""

PLUGIN = """
from threatlang.backends.base import Backend, Capabilities, Offer
from threatlang.ir import Certify, LabelUnchanged


class Raising(Backend):
    name = "{name}"
    capabilities = Capabilities(
        families={{"patch"}},
        properties={{LabelUnchanged}},
        offers=[Offer(Certify, "ibp")],
        priority=1,  # asked before every shipped backend
    )

    {method}

    def compile(self, spec):
        raise AssertionError("never selected")


BACKEND = Raising()
"""

METHODS = {
    "accepts": "def accepts(self, spec):\n        raise KeyError('threat')",
    "refine": "def refine(self, spec):\n        return [1 / 0]",
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_raising_plugin_is_skipped_with_one_warning(method, install_plugin, tmp_path):
    name = f"raises_in_{method}"
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name, method=METHODS[method]))
    install_plugin(tmp_path, {name: f"{name}:BACKEND"}, dist=f"{name}_plugin")
    spec = threatlang.parse(SPEC)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):  # several specs checked: still one warning
            assert capable_backend(spec).name == "ibp"
    mine = [w for w in caught if name in str(w.message)]
    assert len(mine) == 1, [str(w.message) for w in caught]
    text = str(mine[0].message)
    assert f"backend plugin '{name}' is skipped" in text
    assert ("KeyError" if method == "accepts" else "ZeroDivisionError") in text
    assert mine[0].category is RuntimeWarning


def test_check_still_passes_on_the_command_line(install_plugin, tmp_path, capsys):
    name = "raises_in_accepts"
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name, method=METHODS["accepts"]))
    install_plugin(tmp_path, {name: f"{name}:BACKEND"}, dist="raising_plugin")
    (tmp_path / "quick.threat").write_text(SPEC)
    from threatlang.cli import main

    with pytest.warns(RuntimeWarning, match=f"'{name}' is skipped"):
        assert main(["check", str(tmp_path / "quick.threat")]) == 0
    assert "ok" in capsys.readouterr().out
