import json

import pytest
import torch

import threatlang
from threatlang.backends.advtrain import BACKEND
from threatlang.backends.advtrain.config import CORRUPTION_NAMES
from threatlang.backends.advtrain.corruptions import Corruption
from threatlang.backends.advtrain.summary import AdvTrainSummary
from threatlang.compile import select_backend
from threatlang.parse import parse

SPEC = """threatlang 1
spec tiny_upat {{
  model vit_tiny {{ patch 4, dim 16, depth 1, heads 2 }}
  data digits {{ resize 16, train_limit 96, test_limit 40 }}
  seed 0
  threat pyramid {{
    scales [8, 4, 1]
    multipliers [4, 2, 1]
    radius 8/255
    universal {universal}
  }}
  require label_unchanged
  train {strategy} {{
    epochs 1
    batch 32
    lr 0.003
    {options}
  }}
  evaluate corruptions {{ severities [1], corruptions [gaussian_noise, contrast] }}
  attack pgd {{ steps 2, eps 2/255, examples 16 }}
}}
"""


def _spec(universal="true", strategy="universal_pyramid", options="compare [standard, pat1]"):
    return parse(SPEC.format(universal=universal, strategy=strategy, options=options))


def test_corruption_names_match_the_enum():
    assert CORRUPTION_NAMES == tuple(c.value for c in Corruption)


def test_pyramid_spec_compiles_to_a_side_by_side_plan():
    spec = _spec()
    assert not BACKEND.accepts(spec)
    plan = BACKEND.compile(spec)
    assert [m.label for m in plan.methods] == ["standard", "pat1", "upat"]
    text = plan.describe()
    assert "standard, pat1, upat" in text and "corruptions: 2 kinds" in text


def test_ablations_and_pat_k_as_the_main_method():
    plan = BACKEND.compile(_spec(options="compare [standard, upat_no_pyramid]\n clean_loss false"))
    assert [m.label for m in plan.methods] == ["standard", "upat_no_pyramid", "upat_no_clean_loss"]
    plan = BACKEND.compile(_spec("false", "pyramid", "steps 3\n compare []"))
    assert [m.label for m in plan.methods] == ["standard", "pat3"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: _spec("false"), "train pyramid"),
        (lambda: _spec(options="compare [standard, fgsm]"), "unknown method"),
        (lambda: _spec(options="lambda 2"), "unknown option 'lambda'"),
        (lambda: _spec(options="step_size fast"), "step_size"),
    ],
)
def test_problems_are_reported_with_the_node_they_concern(spec, message):
    problems = BACKEND.accepts(spec())
    assert any(message in p.reason for p in problems), [p.reason for p in problems]
    assert all(getattr(p.node, "span", None) is not None for p in problems)


def test_spec_selects_this_backend():
    assert select_backend(_spec()).name == "advtrain"


def test_run_end_to_end_writes_methods_and_cost_ratio(tmp_path):
    result = threatlang.run(_spec(), output=tmp_path, quiet=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "advtrain"
    methods = summary["methods"]
    assert set(methods) == {"standard", "pat1", "upat"}
    for m in methods.values():
        for key in (
            "clean_accuracy",
            "corruption_accuracy",
            "seconds_per_epoch",
            "passes_per_step",
        ):
            assert isinstance(m[key], float)
    assert (methods["standard"]["passes_per_step"], methods["upat"]["passes_per_step"]) == (
        1.0,
        2.0,
    )
    assert methods["pat1"]["passes_per_step"] == 3.0
    assert summary["upat_cost_ratio"] == pytest.approx(
        methods["upat"]["seconds_per_epoch"] / methods["standard"]["seconds_per_epoch"]
    )
    # mCE is normalised by the fixed reference CNN, not by this run's standard model
    assert methods["standard"]["mce_vs_standard"] == pytest.approx(1.0)
    assert all(0 < m["mce"] < 10 for m in methods.values())
    assert 0 <= summary["reference_clean_accuracy"] <= 1
    AdvTrainSummary(**result.summary.metrics)  # the summary is exactly the declared schema
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert {"train", "evaluate", "reference", "epoch/upat"} <= set(timings)
    ids = {r.id for r in result.records}
    assert {"method/upat", "attack/upat/pgd_linf/0.00784314"} <= ids
    assert all(r.status.value in ("unknown", "falsified") for r in result.records)
    state = torch.load(tmp_path / "models.pt", weights_only=True)
    assert "upat.head.weight" in state


def test_resume_reuses_the_trained_models_and_figures(tmp_path):
    spec = _spec(options="compare [standard]")
    first = json.loads(
        (threatlang.run(spec, output=tmp_path, quiet=True).out_dir / "summary.json").read_text()
    )
    timings = json.loads((tmp_path / "timings.json").read_text())
    (tmp_path / "records.jsonl").unlink()  # the records are rewritten, the training is not
    again = threatlang.run(spec, output=tmp_path, quiet=True, resume=True)
    second = json.loads((again.out_dir / "summary.json").read_text())
    assert second["methods"] == first["methods"]  # seconds per epoch: the first run's
    assert {r.id for r in again.records} >= {"method/standard", "method/upat"}
    after = json.loads((tmp_path / "timings.json").read_text())
    assert after["train"] == timings["train"]  # never re-timed as a checkpoint load


def _fake_cifar(directory, per_batch=8):
    """CIFAR-10 python batches in the official layout (random pixels), for the RGB path."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (directory / name).write_bytes(pickle.dumps(batch))


def test_cifar10_from_user_files_runs_in_colour(tmp_path):
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar(data)
    text = (
        SPEC.format(universal="true", strategy="universal_pyramid", options="compare [standard]")
        .replace("digits {{ resize 16, train_limit 96, test_limit 40 }}".replace("{{", "{").replace("}}", "}"),
                 f'cifar10 {{ path "{data}" }}')
        .replace("corruptions [gaussian_noise, contrast]", "corruptions [brightness, defocus_blur]")
        .replace("scales [8, 4, 1]", "scales [16, 4, 1]")
    )  # fmt: skip
    spec = parse(text)
    assert spec.data.source == "cifar10"
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    methods = result.summary.metrics["methods"]
    assert set(methods) == {"standard", "upat"}
    assert methods["upat"]["corruption_accuracy"] is not None
    state = torch.load(tmp_path / "run" / "models.pt", weights_only=True)
    assert state["upat.patch_embed.weight"].shape[1] == 3 * 4 * 4  # RGB 4x4 patches


ATTACK_SPEC = """threatlang 1
spec any_classifier {{
  model state_dict("{weights}") {{ arch vit_tiny }}
  data digits {{ test_limit 40 }}
  threat l2_ball {{ around input, radii [0.0, 3.0] }}
  require label_unchanged
  evaluate accuracy
  attack pgd {{ steps 10, restarts 2 }}
}}
"""


def test_l2_pgd_attacks_a_saved_classifier_without_training(tmp_path):
    from threatlang.backends.advtrain.standard import Standard
    from threatlang.backends.advtrain.train import TrainConfig, fit
    from threatlang.backends.advtrain.vit import vit_tiny
    from threatlang.data import load_dataset

    spec = parse(ATTACK_SPEC.format(weights=tmp_path / "vit.pt"))
    plan = BACKEND.compile(spec)
    assert plan.train is None and plan.attacks[0].norm.value == "l2"
    data = load_dataset(spec.data)
    model = vit_tiny((1, 8, 8), 10, torch.Generator().manual_seed(0))
    x, y = torch.from_numpy(data.train.x[:480]), torch.from_numpy(data.train.y[:480])
    cfg = TrainConfig(epochs=4, batch_size=24, lr=3e-3, augment=False)
    fit(model, Standard(), x, y, cfg, torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp_path / "vit.pt")
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    robust = result.summary.metrics["robust_accuracy"]["model"]
    clean = result.summary.metrics["clean_accuracy"]
    assert clean > 0.3
    assert robust["pgd_l2@0"] == pytest.approx(clean)
    assert robust["pgd_l2@3"] < clean
    statuses = {r.id: r.status.value for r in result.records}
    assert statuses["attack/model/pgd_l2/3"] == "falsified"
    assert statuses["attack/model/pgd_l2/0"] == "unknown"


def test_radius_schedule_option_decays_the_radius_of_every_method():
    import attrs

    from threatlang.backends.advtrain.config import MethodSpec
    from threatlang.backends.advtrain.run import settings

    spec = _spec(options="radius_schedule true\n radius_end 1/255\n pat_radius 6/255")
    plan = BACKEND.compile(spec)
    s = settings(plan)
    s = attrs.evolve(s, train=attrs.evolve(s.train, epochs=10))
    upat, pat = s.radius(MethodSpec.parse("upat")), s.radius(MethodSpec.parse("pat1"))
    assert upat(0) == pytest.approx(8 / 255)
    assert upat(10) == pytest.approx(1 / 255)
    assert pat(0) == pytest.approx(6 / 255) and pat(10) == pytest.approx(1 / 255)
    assert plan.schedule_start == 0  # 10% of 1 epoch, resolved in the plan and shown
    assert "from epoch 0 to 0.003922" in plan.describe()


def test_a_scheduled_variant_trains_beside_the_constant_radius():
    import attrs

    from threatlang.backends.advtrain.config import MethodSpec
    from threatlang.backends.advtrain.experiment import make_method
    from threatlang.backends.advtrain.run import settings

    plan = BACKEND.compile(_spec(options="compare [standard, upat_schedule]"))
    assert [m.label for m in plan.methods] == ["standard", "upat_schedule", "upat"]
    s = settings(plan)
    s = attrs.evolve(s, train=attrs.evolve(s.train, epochs=10), decay_start=1)
    fixed = make_method(MethodSpec.parse("upat"), s, (1, 16, 16), 0, "cpu")
    decayed = make_method(MethodSpec.parse("upat_schedule"), s, (1, 16, 16), 0, "cpu")
    assert fixed.cfg.radius(10) == pytest.approx(8 / 255)
    assert decayed.cfg.radius(10) == pytest.approx(0.8 / 255)


def test_timm_models_are_optional():
    import importlib.util

    from threatlang.backends.advtrain.vit import timm_model
    from threatlang.errors import UsageError

    if importlib.util.find_spec("timm") is not None:
        pytest.skip("timm is installed")
    with pytest.raises(UsageError, match="timm"):
        timm_model((3, 32, 32), 10, name="vit_tiny_patch16_224")


def test_a_radius_sweep_trains_every_adversarial_method_at_every_radius():
    """Tables 6.3/6.4 from one spec: `radii [...]` in the train block (no grammar change)."""
    spec = _spec(options="compare [standard, upat_no_pyramid]\n radii [2/255, 8/255]")
    plan = BACKEND.compile(spec)
    labels = [m.label for m in plan.methods]
    assert labels == ["standard", "upat_no_pyramid_r2", "upat_no_pyramid_r8", "upat_r2", "upat_r8"]
    assert [plan.method_radius(m) for m in plan.methods[1:3]] == pytest.approx([2 / 255, 8 / 255])
    assert "radius sweep (Tables 6.3/6.4): every adversarial method at 2/255, 8/255" in (
        plan.describe()
    )
    from threatlang.backends.advtrain.run import settings

    s = settings(plan)
    assert s.radius(plan.methods[3])(0) == pytest.approx(2 / 255)


def test_the_plan_shows_every_resolved_default():
    text = BACKEND.compile(_spec()).describe()
    for piece in (
        "1-epoch linear warm-up then cosine",
        "UPAT radius 0.03137 (tau 0.000392)",
        "PAT radius 0.03137",
        "corruptions: 2 kinds (gaussian_noise, contrast) x severities [1], seed 0",
        "fixed reference CNN (cached in",
        "pgd (linf, 2 steps, step 2.5 eps/steps, x1) at 0.007843 on the first 16 test images",
    ):
        assert piece in text, piece
