"""The broken patch defences of §2.3: input preprocessing put in front of a classifier.

Local Gradient Smoothing (LGS, (2.2)) damps pixels where the *image* gradient is large;
Digital Watermarking (DW) masks the densest region of large *loss* gradients (saliency). Both
are `nn.Module`s wrapping the classifier, so patch attacks run against the defended pipeline.
"""

from ..defense_options import DWConfig, Fill, LGSConfig
from .dw import DigitalWatermark
from .lgs import LocalGradientSmoothing, image_gradient
from .wrap import Defended, GradientMode

__all__ = [
    "DWConfig",
    "Defended",
    "DigitalWatermark",
    "Fill",
    "GradientMode",
    "LGSConfig",
    "LocalGradientSmoothing",
    "image_gradient",
]
