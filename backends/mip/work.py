"""One (profile, agent) certification as a work item for the shared run loop (`run_items`).

The mechanism, box, solver config and regret limit are shared by every item, so they are bound
once with ``functools.partial`` (a Ray worker unpickles them once); an item carries only its
profile index, profile, agent and the attack's result on it. Solver objects are built inside
the call.
"""

from __future__ import annotations

import attrs
import numpy as np

from threatlang.report import Record

from .certify import CertifyConfig, certify_agent
from .mechanisms import Mechanism
from .results import ItemAttack, certificate_record, support_record
from .support import Witness, certify_support


@attrs.frozen
class CertifyJob:
    """What every item of one run shares. ``mechanism`` is the float64, eval-mode network itself
    (pickled whole, so a user's subclass is certified as it is, never rebuilt as another net)."""

    mechanism: Mechanism
    low: float
    high: float
    config: CertifyConfig
    limited_licence: bool
    regret_limit: float | None


def item_id(profile_index: int, agent: int) -> str:
    return f"profile{profile_index:04d}/agent{agent}"


def certify_item(job: CertifyJob, item: tuple[int, np.ndarray, int, ItemAttack]) -> Record:
    """Certify one agent at one profile; the record is the same on any executor."""
    k, profile, agent, attack = item
    cert = certify_agent(
        job.mechanism, profile, agent, job.low, job.high, job.config, job.limited_licence
    )
    return certificate_record(item_id(k, agent), profile, cert, attack, job.regret_limit)


def support_id(agent: int) -> str:
    return f"support/agent{agent}"


def certify_support_item(job: CertifyJob, item: tuple[int, Witness | None]) -> Record:
    """The worst case of one agent over the whole support (one MIP); ``job.config.time_limit``
    is that MIP's limit."""
    agent, start = item
    cert = certify_support(
        job.mechanism, agent, job.low, job.high, job.config, job.limited_licence, start
    )
    return support_record(support_id(agent), cert, job.regret_limit)
