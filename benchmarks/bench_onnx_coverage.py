"""How much of a folder of ONNX networks the front end converts, and the bound engine captures.

For every ``*.onnx`` / ``*.onnx.gz`` under the folders given: conversion with the onnxruntime
check (`load_onnx`), then capture by the bound engine (`threatlang.bounds.capture`, torch.export
with a dynamic batch); one line per network with the time of each and the first refusal. The
networks are the user's (e.g. VNN-COMP benchmark repositories fetched beforehand); nothing is
downloaded.

    OMP_NUM_THREADS=1 python benchmarks/bench_onnx_coverage.py FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
import warnings
from pathlib import Path


def _networks(folders: list[Path]) -> list[Path]:
    found = [
        p for f in folders for p in sorted(f.rglob("*")) if p.name.endswith((".onnx", ".onnx.gz"))
    ]
    return [p for p in found if p.is_file() and p.stat().st_size > 0]


def _plain(path: Path, scratch: Path) -> Path:
    if path.suffix != ".gz":
        return path
    out = scratch / path.name.removesuffix(".gz")
    out.write_bytes(gzip.decompress(path.read_bytes()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    import torch

    from threatlang.bounds import capture
    from threatlang.errors import UsageError
    from threatlang.interop.onnx_import import example_shape, load_onnx, network_input_shape

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    counts = {"converted": 0, "refused": 0, "captured": 0}
    with tempfile.TemporaryDirectory() as scratch:
        for source in _networks(args.folders):
            path = _plain(source, Path(scratch))
            start = time.perf_counter()
            try:
                module = load_onnx(path)
            except UsageError as err:
                counts["refused"] += 1
                print(f"{source.name}\trefused\t{time.perf_counter() - start:.2f}s\t{err}")
                continue
            converted = time.perf_counter() - start
            counts["converted"] += 1
            floats = [t for t in module.state_dict().values() if t.is_floating_point()]
            dtype = floats[0].dtype if floats else torch.float32
            x = torch.rand(2, *example_shape(network_input_shape(path)), dtype=dtype)
            start = time.perf_counter()
            try:
                capture(module, x)
                status = "captured"
                counts["captured"] += 1
            except Exception as err:  # the engine's refusal, reported as it words it
                status = "not captured: " + (str(err).splitlines() or [""])[0][:160]
            took = time.perf_counter() - start
            print(f"{source.name}\tconverted {converted:.2f}s\tcapture {took:.2f}s\t{status}")
    total = sum(counts[k] for k in ("converted", "refused"))
    print(
        f"# {total} networks: {counts['converted']} converted (matching onnxruntime), "
        f"{counts['refused']} refused, {counts['captured']} captured by the bound engine"
    )


if __name__ == "__main__":
    main()
