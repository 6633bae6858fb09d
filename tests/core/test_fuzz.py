"""Random and mutated specs only ever produce clean errors (SpecError/UsageError), never a crash."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threatlang
from threatlang.errors import SpecError, UsageError

SOURCES = [p.read_text() for p in sorted((Path(__file__).parents[2] / "specs").glob("*.threat"))]
TOKENS = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "\n",
    "-1",
    "0",
    "1.5",
    "8/255",
    "60s",
    "%",
    "samples",
    "square",
    "patch",
    "spec",
    "model",
    "threat",
    "shape",
    "1e400",
    '"x"',
    "/0",
]


def _outcome(text: str) -> None:
    try:
        threatlang.parse_all(text, file="fuzz.threat")
    except SpecError as err:
        assert err.diagnostics and all(d.message for d in err.diagnostics)
    except UsageError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text(text):
    _outcome(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), st.data())
def test_mutated_specs(source, data):
    text = source
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            text = text[:pos] + data.draw(st.sampled_from(TOKENS)) + text[pos:]
        elif op == "delete":
            end = min(len(text), pos + data.draw(st.integers(1, 12)))
            text = text[:pos] + text[end:]
        else:
            end = min(len(text), pos + data.draw(st.integers(1, 6)))
            text = text[:pos] + data.draw(st.sampled_from(TOKENS)) + text[end:]
    _outcome(text)
