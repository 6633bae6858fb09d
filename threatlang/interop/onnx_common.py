"""What the ONNX front end converts and the sizes it allows: plain data, importable without
torch or onnx (``threatlang check`` stays light)."""

from __future__ import annotations

#: the standard ONNX operators converted to torch (some refuse particular attributes, each
#: with a sentence saying why); the converter tables in ``onnx_ops_*`` hold exactly these
SUPPORTED = (
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast",
    "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "Cos", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
    "Flatten", "Floor", "Gather", "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
    "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "Identity", "LayerNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean",
    "Min", "Mish", "Mul", "Neg", "Not", "Or", "PRelu", "Pad", "Pow", "Range", "Reciprocal",
    "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape", "Resize", "Round",
    "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Size", "Slice", "Softmax", "Softplus",
    "Softsign", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "ThresholdedRelu", "Tile",
    "Transpose", "Unsqueeze", "Upsample", "Where", "Xor",
)  # fmt: skip

_RANDOM = "draws random values, which are not a function of the network's input"
_CONTROL = "is control flow over subgraphs, which has no static form"

#: standard operators refused with their reason (anything else unlisted is refused as
#: not converted)
REFUSED = {
    **dict.fromkeys(
        (
            "RandomNormal",
            "RandomUniform",
            "RandomNormalLike",
            "RandomUniformLike",
            "Bernoulli",
            "Multinomial",
        ),
        _RANDOM,
    ),
    **dict.fromkeys(("If", "Loop", "Scan"), _CONTROL),
    "NonZero": "has an output whose shape depends on the input's values",
    "Unique": "has an output whose shape depends on the input's values",
}

#: largest tensor (elements per example) a converted network may hold, and the total over all
#: of its steps and folded constants: 2^26 float32 elements is 256 MiB, 2^27 is 512 MiB
MAX_ELEMENTS = 2**26
MAX_TOTAL_ELEMENTS = 2**27


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, clipped (library messages are paragraphs)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
