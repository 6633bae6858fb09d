"""ACAS-Xu-shaped networks and VNN-COMP-style instances, generated here instead of committed.

5 inputs in physical units, normalised inside the ONNX graph by `Sub`/`Div` constants (as the
VNN-COMP ACAS Xu networks are), 6 hidden layers of 50 ReLUs, 5 outputs; trained briefly on a
smooth synthetic target so properties are neither trivially true nor trivially false. The
properties follow ACAS Xu's shapes: an output bounded above on a box (property 1), "output 0
is not the largest" (property 2: a disjunction), "output 0 is not the smallest" (property 3).

    python -m threatlang.backends.bab.acas_like DIR   # DIR/onnx, DIR/vnnlib, instances.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: the physical input ranges (like ACAS Xu's rho, theta, psi, v_own, v_int)
LOW = np.array([0.0, -3.141593, -3.141593, 100.0, 0.0])
HIGH = np.array([60760.0, 3.141593, 3.141593, 1200.0, 1200.0])
MEAN = (LOW + HIGH) / 2
RANGE = HIGH - LOW


def target(z: torch.Tensor) -> torch.Tensor:
    """A smooth function of the normalised inputs z in [-0.5, 0.5]^5 (5 scores)."""
    g = torch.Generator().manual_seed(1234)
    a = torch.randn(5, 5, generator=g) * 2.5
    b = torch.randn(5, generator=g)
    c = torch.randn(5, 5, generator=g) * 1.5
    return torch.sin(z @ a.T + b) + 0.5 * torch.cos(z @ c.T) + z.sum(1, keepdim=True) * 0.3


def mlp(seed: int, hidden: int = 50, layers: int = 6) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    width = 5
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, 5))
    return nn.Sequential(*mods)


def train(seed: int, steps: int = 400, hidden: int = 50, layers: int = 6) -> nn.Sequential:
    """Briefly fit `target` on uniform normalised inputs (seconds on one CPU core)."""
    net = mlp(seed, hidden, layers)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        z = torch.rand(256, 5, generator=gen) - 0.5
        loss = ((net(z) - target(z)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def write_onnx(net: nn.Sequential, path: Path) -> Path:
    """The network behind `Sub`/`Div` input normalisation, on a (1, 1, 1, 5) input, MatMul+Add
    dense layers: the layout of the VNN-COMP ACAS Xu files."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(MEAN.astype(np.float32).reshape(1, 1, 1, 5), "mean"),
        numpy_helper.from_array(RANGE.astype(np.float32).reshape(1, 1, 1, 5), "range"),
    ]
    nodes = [
        helper.make_node("Sub", ["X", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "range"], ["z"]),
        helper.make_node("Flatten", ["z"], ["h0"], axis=1),
    ]
    current, k = "h0", 0
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        w = layer.weight.detach().numpy().T.astype(np.float32)
        b = layer.bias.detach().numpy().astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"]))
        last = i == len(linears) - 1
        out = "Y" if last else f"a{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", f"B{i}"], [out]))
        if not last:
            k += 1
            nodes.append(helper.make_node("Relu", [out], [f"h{k}"]))
            current = f"h{k}"
    graph = helper.make_graph(
        nodes,
        "acas_like",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 1, 5])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def physical(z_lo, z_hi) -> tuple[np.ndarray, np.ndarray]:
    """A box given in normalised units, in the physical units the ONNX input expects."""
    return MEAN + np.asarray(z_lo) * RANGE, MEAN + np.asarray(z_hi) * RANGE


def _header() -> list[str]:
    return [f"(declare-const X_{i} Real)" for i in range(5)] + [
        f"(declare-const Y_{j} Real)" for j in range(5)
    ]


def _box(lo, hi) -> list[str]:
    out = []
    for i in range(5):
        out += [f"(assert (>= X_{i} {float(lo[i])!r}))", f"(assert (<= X_{i} {float(hi[i])!r}))"]
    return out


def property_text(kind: str, lo, hi, threshold: float = 0.0) -> str:
    """VNN-LIB 1.0 text of an ACAS-style property (its unsafe set, as VNN-COMP writes it)."""
    lines = [f"; ACAS-like property: {kind}", *_header(), *_box(lo, hi)]
    if kind == "bounded":  # unsafe: Y_0 >= threshold
        lines.append(f"(assert (>= Y_0 {threshold!r}))")
    elif kind == "not_max":  # unsafe: Y_0 is the largest
        lines += [f"(assert (>= Y_0 Y_{j}))" for j in range(1, 5)]
    elif kind == "not_min":  # unsafe: Y_0 is the smallest
        lines += [f"(assert (<= Y_0 Y_{j}))" for j in range(1, 5)]
    elif kind == "either":  # unsafe: Y_3 or Y_4 is the smallest (an or of ands, like prop 7)
        terms = [
            "(and " + " ".join(f"(<= Y_{m} Y_{j})" for j in range(5) if j != m) + ")"
            for m in (3, 4)
        ]
        lines.append("(assert (or " + " ".join(terms) + "))")
    else:
        raise ValueError(kind)
    return "\n".join(lines) + "\n"


#: (name, kind, normalised box low, high); thresholds are set from each network's outputs
BOXES = [
    ("prop_a", "bounded", [0.2, -0.5, -0.5, 0.3, 0.3], [0.5, 0.5, 0.5, 0.5, 0.5]),
    ("prop_b", "not_max", [-0.3, -0.1, -0.5, 0.2, -0.5], [0.0, 0.1, -0.3, 0.5, -0.3]),
    ("prop_c", "not_min", [-0.5, -0.05, 0.2, -0.2, -0.2], [-0.3, 0.05, 0.5, 0.2, 0.0]),
    ("prop_d", "either", [0.1, 0.3, -0.5, -0.5, 0.3], [0.3, 0.5, -0.3, -0.3, 0.5]),
]


def write_instances(root: Path, seeds=(0,), timeout: float = 30.0, steps: int = 400) -> Path:
    """DIR/onnx/acas_like_SEED.onnx, DIR/vnnlib/*.vnnlib and DIR/instances.csv."""
    root = Path(root)
    (root / "onnx").mkdir(parents=True, exist_ok=True)
    (root / "vnnlib").mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        net = train(seed, steps)
        onnx_path = write_onnx(net, root / "onnx" / f"acas_like_{seed}.onnx")
        for name, kind, z_lo, z_hi in BOXES:
            lo, hi = physical(z_lo, z_hi)
            threshold = 0.0
            if kind == "bounded":  # a little above the sampled maximum: hard, may hold
                z = torch.rand(4096, 5, generator=torch.Generator().manual_seed(seed))
                z = torch.tensor(z_lo) + z * (torch.tensor(z_hi) - torch.tensor(z_lo))
                with torch.no_grad():
                    threshold = float(net(z.float())[:, 0].max()) + 0.05
            path = root / "vnnlib" / f"{name}_{seed}.vnnlib"
            path.write_text(property_text(kind, lo, hi, threshold))
            rows.append(f"onnx/{onnx_path.name},vnnlib/{path.name},{timeout:g}")
    csv = root / "instances.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


if __name__ == "__main__":  # pragma: no cover - a fixture generator
    print(write_instances(Path(sys.argv[1] if len(sys.argv) > 1 else "acas_like")))
