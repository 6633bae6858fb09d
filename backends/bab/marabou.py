"""Marabou as a second complete engine (`certify bab { engine marabou }`), fed from the same
spec: the ONNX file the spec names, its box, and the terms of its property's negation.

Marabou (maraboupy, an optional dependency: `pip install 'threatlang[marabou]'`) reads the
ONNX network itself, so it is an independent check of both our conversion and our search. Each
term of the negation (an `and` of atoms `g . y <= s`) is one query: `unsat` rules the term
out, `sat` gives a point that counts only when the original model confirms it (as for our own
engine). A strict atom `g . y < s` is asked as `<=`, a larger unsafe set, so `unsat` stays a
proof. All terms `unsat`: `holds`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import time
import warnings

import numpy as np

from .confirm import Original, confirm
from .problem import Problem
from .search import Outcome

INSTALL = "engine marabou needs maraboupy: pip install 'threatlang[marabou]' (or maraboupy)."


def available() -> bool:
    return importlib.util.find_spec("maraboupy") is not None


def _marabou():
    with warnings.catch_warnings():  # "Tensorflow parser is unavailable": not our news
        warnings.simplefilter("ignore")
        from maraboupy import Marabou
    return Marabou


def solve_marabou(
    onnx: str, problem: Problem, original: Original, lo: np.ndarray, hi: np.ndarray, limit: float
) -> Outcome:
    """The verdict for the box [lo, hi] (flat) by Marabou, within `limit` seconds in all."""
    marabou = _marabou()
    start = time.monotonic()
    unconfirmed = 0
    for term in range(problem.terms):
        left = limit - (time.monotonic() - start)
        if left < 1:  # Marabou's time-out is in whole seconds (0 means none)
            return _out("unknown", start, _late(limit, term, problem), True, unconfirmed)
        try:
            code, point = _query(marabou, onnx, problem, term, lo, hi, int(left))
        except NotImplementedError as err:  # Marabou's ONNX reader lacks an operator
            reason = f"Marabou cannot read {os.path.basename(onnx)}: {err}"
            return _out("unknown", start, reason, False, unconfirmed)
        if code == "unsat":
            continue
        if code == "sat":
            found = confirm(original, problem, point, lo, hi)
            if found is not None:
                x, y = found
                cex = {"input": x.astype(np.float64).tolist(), "outputs": y.tolist()}
                return _out("violated", start, None, False, unconfirmed, cex)
            unconfirmed += 1
            reason = f"Marabou's point for term {term} is not confirmed on {original.name}"
            return _out("unknown", start, reason, False, unconfirmed)
        if code == "TIMEOUT":
            return _out("unknown", start, _late(limit, term, problem), True, unconfirmed)
        return _out("unknown", start, f"Marabou answered {code} on term {term}", False, unconfirmed)
    return _out("holds", start, None, False, unconfirmed)


def _query(marabou, onnx, problem: Problem, term: int, lo, hi, seconds: int):
    """(exit code, the input point when sat) for one term of the negation."""
    with _quiet():
        net = marabou.read_onnx(onnx)
    x = np.asarray(net.inputVars[0]).reshape(-1)
    y = np.asarray(net.outputVars[0]).reshape(-1)
    if len(x) != len(lo) or len(y) < problem.g.shape[1]:
        raise ValueError(
            f"Marabou reads {len(x)} inputs and {len(y)} outputs from {onnx}; the spec has "
            f"{len(lo)} and {problem.g.shape[1]}"
        )
    for v, a, b in zip(x, lo, hi, strict=True):
        net.setLowerBound(int(v), float(a))
        net.setUpperBound(int(v), float(b))
    for k in np.flatnonzero(problem.member[term]):
        cols = np.flatnonzero(problem.g[k])
        net.addInequality(
            [int(y[j]) for j in cols], [float(problem.g[k, j]) for j in cols], float(problem.s[k])
        )
    options = marabou.createOptions(timeoutInSeconds=seconds, verbosity=0, numWorkers=1)
    with _quiet():
        code, values, _ = net.solve(verbose=False, options=options)
    point = np.array([values[int(v)] for v in x]) if code == "sat" else None
    return code, point


def _late(limit: float, term: int, problem: Problem) -> str:
    return (
        f"time limit {limit:g}s reached in Marabou ({term} of {problem.terms} term(s) of the "
        "negation ruled out)"
    )


def _out(verdict, start, reason, timed_out, unconfirmed, cex=None) -> Outcome:
    return Outcome(
        verdict,
        reason,
        timed_out,
        cex,
        seconds=time.monotonic() - start,
        unconfirmed=unconfirmed,
    )


@contextlib.contextmanager
def _quiet():
    """Marabou's C++ side prints to the process's stdout; keep it out of the user's table."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
