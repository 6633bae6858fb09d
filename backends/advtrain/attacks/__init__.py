"""Input-space attacks for any classifier: IFGSM and PGD (l-inf and l2)."""

from .common import Norm, robust_accuracy
from .ifgsm import ifgsm
from .pgd import pgd

__all__ = ["Norm", "ifgsm", "pgd", "robust_accuracy"]
