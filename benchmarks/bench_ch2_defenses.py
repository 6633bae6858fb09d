"""Tables 2.1-2.2 in miniature: the broken defences (LGS, DW) against weak and strong attacks,
next to a certified IBP model, all measured in one run on the 8x8 digits.

Weak adversary: IFGSM on the bare classifier (the defence ignored), scored behind the defence.
Strong adversary: IFGSM through the defence (exact gradients through LGS's smoothing; BPDA,
an identity backward, through DW's masking). Locations: the four corners, or anywhere.
The IBP row is an all-patch certificate-trained model: IFGSM anywhere and its certificate.

    python benchmarks/bench_ch2_defenses.py
"""

from __future__ import annotations

import argparse
import time

import torch

from threatlang.backends.ibp.attack import AttackConfig, AttackMethod, LocationSearch, patch_attack
from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.defense_attacks import (
    Adversary,
    DefenseAttackConfig,
    clean_accuracy,
    defended_accuracy_under_attack,
)
from threatlang.backends.ibp.defenses import (
    DigitalWatermark,
    DWConfig,
    GradientMode,
    LGSConfig,
    LocalGradientSmoothing,
)
from threatlang.backends.ibp.models import chapter_small_cnn, mlp255
from threatlang.backends.ibp.patches import PatchThreat, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, train
from threatlang.data import load_dataset
from threatlang.ir import DataRef


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--test-limit", type=int, default=100)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    d = load_dataset(DataRef("digits", test_limit=args.test_limit), seed=0)
    x, y = torch.tensor(d.train.x), torch.tensor(d.train.y)
    xt, yt = torch.tensor(d.test.x), torch.tensor(d.test.y)
    shape = tuple(x.shape[1:])
    threat = PatchThreat([square(args.patch)])
    acfg = DefenseAttackConfig(steps=args.steps, step_size=0.15)

    torch.manual_seed(0)
    plain = chapter_small_cnn(shape, 10)
    train(plain, x, y, threat, TrainConfig(Strategy.STANDARD, epochs=15, lr=2e-3))
    defences = [
        ("None", None, GradientMode.EXACT),
        ("LGS", LocalGradientSmoothing(LGSConfig(window=3, threshold=0.5, smoothing=1.0)), None),
        ("DW", DigitalWatermark(plain, DWConfig(window=args.patch)), GradientMode.BPDA),
    ]
    print(
        f"digits {shape}, {len(yt)} test images, square({args.patch}) patches, "
        f"IFGSM {args.steps} steps, 1 thread"
    )
    print(f"{'attack':<14}{'defence':<9}{'clean':>7}{'corners':>9}{'anywhere':>10}{'s':>6}")
    for name, t, mode in defences:
        clean = clean_accuracy(plain, t, xt, yt)
        for adv in (Adversary.WEAK, Adversary.STRONG) if t is not None else (Adversary.WEAK,):
            start, accs = time.perf_counter(), []
            for search in (LocationSearch.CORNERS, LocationSearch.ANYWHERE):
                ok = defended_accuracy_under_attack(
                    plain,
                    t,
                    xt,
                    yt,
                    threat,
                    adv,
                    search,
                    acfg,
                    mode=mode or GradientMode.EXACT,
                )
                accs.append(float(ok.float().mean()))
            label = "IFGSM" if adv is Adversary.WEAK else f"IFGSM + {name}"
            secs = time.perf_counter() - start
            print(f"{label:<14}{name:<9}{clean:>7.1%}{accs[0]:>9.1%}{accs[1]:>10.1%}{secs:>6.0f}")

    torch.manual_seed(0)
    cert_model = mlp255(shape, 10)
    cfg = TrainConfig(Strategy.ALL_PATCH, epochs=20, lr=1e-3, warmup_epochs=10, halve_every=2)
    train(cert_model, x, y, threat, cfg)
    accs = []
    for search in (LocationSearch.CORNERS, LocationSearch.ANYWHERE):
        res = patch_attack(
            cert_model,
            xt,
            yt,
            threat,
            AttackConfig(AttackMethod.IFGSM, search, steps=args.steps, step_size=0.15),
        )
        accs.append(float((~res.success).float().mean()))
    certs = certify_patches(cert_model, xt, yt, threat, CertifyConfig())
    clean = sum(c.predicted == c.label for c in certs) / len(certs)
    cert = sum(c.outcome is Outcome.CERTIFIED for c in certs) / len(certs)
    print(
        f"{'IFGSM':<14}{'IBP':<9}{clean:>7.1%}{accs[0]:>9.1%}{accs[1]:>10.1%}      certified {cert:.1%}"
    )


if __name__ == "__main__":
    main()
