"""The choice names the shipped backends implement, as `StrEnum`s.

The IR holds these choices as plain names (`Train.strategy == "all_patch"`); which names exist
is each backend's declaration (`Capabilities`), not the language's. A `StrEnum` member equals
its name, so backend code compares `action.strategy == Strategy.ALL_PATCH` without strings
scattered through it. Light: no torch.
"""

from __future__ import annotations

import enum


class Strategy(enum.StrEnum):
    STANDARD = "standard"
    ALL_PATCH = "all_patch"
    RANDOM_PATCH = "random_patch"
    GUIDED_PATCH = "guided_patch"
    POOLED_PATCH = "pooled_patch"
    PYRAMID = "pyramid"
    UNIVERSAL_PYRAMID = "universal_pyramid"
    REGRETNET = "regretnet"
    WATERMARK = "watermark"
    GUESS_AND_CHECK = "guess_and_check"
    PATTERN_SEARCH = "pattern_search"
    RANDOM_GREEDY = "random_greedy"
    SGD = "sgd"  # plain SGD as the baseline of the landscape experiments (chapter 7)


class CertifyMethod(enum.StrEnum):
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha_crown"
    MIP = "mip"


class SmoothKind(enum.StrEnum):
    MEDIAN = "median"
    PERCENTILE = "percentile"
    MEAN = "mean"
    CLASSIFY = "classify"


class AttackMethod(enum.StrEnum):
    IFGSM = "ifgsm"
    PGD = "pgd"
    BPDA = "bpda"
    SMOOTHING_AWARE = "smoothing_aware"
    FINETUNE = "finetune"
    DISTILL_HARD = "distill_hard"
    DISTILL_SOFT = "distill_soft"
    PARAMETER_PGD = "parameter_pgd"
    MISREPORT = "misreport"


class EvaluateKind(enum.StrEnum):
    ACCURACY = "accuracy"
    CORRUPTIONS = "corruptions"
    VOLUME = "volume"
    WEDGE = "wedge"
    SHAPE_TRANSFER = "shape_transfer"


class GeneratedData(enum.StrEnum):
    """Data sources a backend generates itself (declared in its capabilities)."""

    SCENES = "scenes"  # synthetic detection scenes (smoothing)
    VALUATIONS = "valuations"  # valuation profiles sampled from the bid support (mip)
    WEDGE = "wedge"  # the 2-D wedge toy problem of chapter 7 (landscape)


class Solver(enum.StrEnum):
    AUTO = "auto"
    GUROBI = "gurobi"
    HIGHS = "highs"
    SCIP = "scip"
