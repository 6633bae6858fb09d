"""What translation and bound validation cost inside patch certification, measured side by
side in one process (1 thread): ``certify_patches`` on the quickstart threat (2x2 patches, all
locations, 8x8 digits) with the validation on and with it replaced by a no-op, alternating
repeats so machine noise hits both alike.

Run: python benchmarks/bench_validation.py [--model runs/quickstart/model.pt] [--n 300]
(with no --model, mlp255 is trained for a few epochs here so the bounds are realistic).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import threatlang.backends.ibp.certify as certify_mod
from threatlang.backends.ibp.certify import CertifyConfig, certify_patches
from threatlang.backends.ibp.models import mlp255
from threatlang.backends.ibp.patches import PatchThreat, square
from threatlang.bounds.validate import BoundCheck


def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    return x[-n:], torch.tensor(d.target)[-n:]


def _model(path: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = mlp255((1, 8, 8), 10)
    if path:
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        x, y = _digits(1497)
        opt = torch.optim.Adam(model.parameters(), lr=0.002)
        for _ in range(30):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = _model(args.model)
    x, y = _digits(args.n)
    threat = PatchThreat((square(2),))
    real = certify_mod.validate

    def skipped(net, x, y, points, lower, what):  # noqa: ANN001
        n = x.shape[0]
        return BoundCheck(torch.zeros(n, dtype=torch.bool), torch.full((n,), float("inf")))

    certify_patches(model, x[:8], y[:8], threat, CertifyConfig())  # capture + warm-up
    times: dict[str, list[float]] = {"validated": [], "unvalidated": []}
    for _ in range(args.repeats):
        for name, fn in (("validated", real), ("unvalidated", skipped)):
            certify_mod.validate = fn
            t = time.process_time()
            certs = certify_patches(model, x, y, threat, CertifyConfig())
            times[name].append(time.process_time() - t)
    certify_mod.validate = real
    v, u = min(times["validated"]), min(times["unvalidated"])
    ok = sum(c.outcome.value == "certified" for c in certs)
    print(f"images {args.n}, certified {ok}")
    print(f"certify with validation    {v:8.3f} s (best of {args.repeats})")
    print(f"certify without validation {u:8.3f} s")
    print(f"validation overhead        {100 * (v - u) / u:7.1f} %")


if __name__ == "__main__":
    main()
