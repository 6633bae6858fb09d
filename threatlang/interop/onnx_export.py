"""torch → ONNX for sequential networks of the layers the bound engine understands.

Written over `onnx.helper` (no onnxscript, no TorchScript tracing), so what we hand to a
complete verifier is exactly the layer chain we bound ourselves; the batch dimension is 1, as
VNN-COMP instances expect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from ..errors import UsageError

OPSET = 17


def _layers(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _layers(child)]
    return [module]


def export_onnx(module: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """Write `module` (a chain of Linear/Conv2d/ReLU/Flatten/pooling/BatchNorm layers) to
    `path` with input `X` of shape (1, *input_shape) and output `Y`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    current = "X"

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    layers = _layers(module)
    for i, layer in enumerate(layers):
        out = "Y" if i == len(layers) - 1 else f"h{i}"
        p = f"l{i}"
        if isinstance(layer, nn.Linear):
            ins = [current, const(f"{p}.weight", layer.weight.detach().numpy())]
            if layer.bias is not None:
                ins.append(const(f"{p}.bias", layer.bias.detach().numpy()))
            nodes.append(helper.make_node("Gemm", ins, [out], transB=1))
        elif isinstance(layer, nn.Conv2d):
            if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
                raise UsageError(f"cannot export {layer} to ONNX: use numeric zero padding.")
            ins = [current, const(f"{p}.weight", layer.weight.detach().numpy())]
            if layer.bias is not None:
                ins.append(const(f"{p}.bias", layer.bias.detach().numpy()))
            nodes.append(
                helper.make_node(
                    "Conv",
                    ins,
                    [out],
                    kernel_shape=list(layer.kernel_size),
                    strides=list(layer.stride),
                    pads=list(layer.padding) * 2,
                    dilations=list(layer.dilation),
                    group=layer.groups,
                )
            )
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise UsageError(f"cannot export {layer} to ONNX: only Flatten from dim 1.")
            nodes.append(helper.make_node("Flatten", [current], [out], axis=1))
        elif isinstance(layer, nn.AvgPool2d | nn.MaxPool2d):
            nodes.append(_pool(layer, current, out, helper))
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            names = [
                const(f"{p}.{k}", v.detach().numpy())
                for k, v in (
                    ("weight", layer.weight),
                    ("bias", layer.bias),
                    ("mean", layer.running_mean),
                    ("var", layer.running_var),
                )
            ]
            nodes.append(
                helper.make_node("BatchNormalization", [current, *names], [out], epsilon=layer.eps)
            )
        elif isinstance(layer, nn.Identity | nn.Dropout):
            nodes.append(helper.make_node("Identity", [current], [out]))
        else:
            raise UsageError(
                f"cannot export {type(layer).__name__} to ONNX; supported: Linear, Conv2d, ReLU, "
                "Flatten, AvgPool2d, MaxPool2d, BatchNorm, Identity."
            )
        current = out
    import torch

    with torch.no_grad():
        out_dim = module.eval()(torch.zeros(1, *input_shape)).shape[1:]
    graph = helper.make_graph(
        nodes,
        "threatlang",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, *input_shape])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, *out_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _pool(layer, current, out, helper):
    def pair(v):
        return list(v) if isinstance(v, tuple | list) else [v, v]

    if getattr(layer, "ceil_mode", False):
        raise UsageError(f"cannot export {layer} to ONNX: ceil_mode is not supported.")
    kwargs = {
        "kernel_shape": pair(layer.kernel_size),
        "strides": pair(layer.stride if layer.stride is not None else layer.kernel_size),
        "pads": pair(layer.padding) * 2,
    }
    if isinstance(layer, nn.MaxPool2d):
        if pair(layer.dilation) != [1, 1]:
            raise UsageError(f"cannot export {layer} to ONNX: dilation is not supported.")
        return helper.make_node("MaxPool", [current], [out], **kwargs)
    if layer.divisor_override is not None:
        raise UsageError(f"cannot export {layer} to ONNX: divisor_override is not supported.")
    return helper.make_node(
        "AveragePool", [current], [out], count_include_pad=int(layer.count_include_pad), **kwargs
    )
