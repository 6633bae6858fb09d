"""Hypothesis strategies over the module grammar, and the fuzzer's fixed profiles."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from .grammar import BLOCKS, FIRST, SHRINKING, WRAPPERS, Blueprint

#: deterministic, no shrinking (each example certifies a module a dozen times: shrinking a
#: failure would take minutes, and the failure message already names the constructs)
_COMMON = dict(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
    print_blob=False,
)
settings.register_profile("soundness-fast", max_examples=3, **_COMMON)
settings.register_profile("soundness-slow", max_examples=100, **_COMMON)
FAST = settings.get_profile("soundness-fast")
SLOW = settings.get_profile("soundness-slow")


@st.composite
def blueprints(draw, max_blocks: int = 4) -> Blueprint:
    """A first op (or none), 1..max_blocks distinct blocks (at most one shrinks the image), 2-4
    classes, now and then a softmax, a data-dependent wrapper, or train mode."""
    first = draw(st.sampled_from((None, None, *FIRST)))
    blocks: list[str] = []
    for name in draw(st.permutations(BLOCKS)):  # distinct blocks, every one equally likely
        if len(blocks) == max_blocks:
            break
        if not (name in SHRINKING and SHRINKING & set(blocks)):
            blocks.append(name)
    blocks = blocks[: draw(st.integers(1, max_blocks))]
    return Blueprint(
        first=first,
        blocks=tuple(blocks),
        classes=draw(st.integers(2, 4)),
        wrapper=draw(st.sampled_from((None, None, None, None, *WRAPPERS))),
        softmax=draw(st.integers(0, 4)) == 0,
        train_mode=draw(st.integers(0, 3)) == 0,
        seed=draw(st.integers(0, 2**16)),
    )


#: issue 19's six unsound cases (and its smaller defects), run first in every slice
ISSUE_CASES = (
    Blueprint(None, ("conv_padded", "relu", "inplace_view_add"), 3, seed=2),
    Blueprint("forward_hook_linear", ("relu",), 3, seed=3),
    Blueprint(None, ("conv_padded", "functional_dropout"), 3, seed=4),
    Blueprint(None, ("conv_padded", "relu", "mc_dropout"), 2, seed=9),
    Blueprint(None, ("conv_padded", "relu"), 3, wrapper="blank_fixed_logits", seed=6),
    Blueprint(None, ("conv_padded", "relu"), 3, wrapper="negate_off_grid", seed=5),
    Blueprint("first_one_minus", ("conv_padded", "avgpool_exclude_pad", "relu"), 3, seed=7),
    Blueprint(None, ("batchnorm", "linear_last_dim", "relu"), 2, train_mode=True, seed=11),
)

__all__ = ["FAST", "ISSUE_CASES", "SLOW", "blueprints"]
