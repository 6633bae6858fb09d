import torch

from threatlang.backends.advtrain import pyramid as pyr
from threatlang.backends.advtrain.config import MethodSpec
from threatlang.backends.advtrain.experiment import Settings, evaluate_models, train_side_by_side
from threatlang.backends.advtrain.train import TrainConfig, random_shift
from threatlang.backends.advtrain.vit import vit_tiny

from .helpers import batch, tiny_vit


def test_vit_is_seeded_and_classifies_any_size():
    a = vit_tiny((3, 16, 16), 7, torch.Generator().manual_seed(3))
    b = vit_tiny((3, 16, 16), 7, torch.Generator().manual_seed(3))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a(torch.rand(2, 3, 16, 16)).shape == (2, 7)


def test_random_shift_translates_without_changing_content():
    x = torch.zeros(3, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))


def test_comparison_counts_passes_per_example_for_each_method():
    x, y = batch(24, classes=3)
    cfg = pyr.PyramidConfig(scales=(4, 1), multipliers=(2.0, 1.0))
    settings = Settings(
        pyramid=cfg,
        upat_radius=0.03,
        pat_radius=0.02,
        upat_step_size=0.005,
        adv_weight=1.0,
        train=TrainConfig(epochs=2, batch_size=8, augment=False),
    )
    specs = [MethodSpec.parse(n) for n in ("standard", "upat", "pat2", "upat_no_clean_loss")]
    models = {s.label: tiny_vit() for s in specs}
    out = train_side_by_side(specs, settings, models, (x, y), seed=0)
    passes = {k: (r.passes_per_step, r.calls_per_step) for k, r in out.items()}
    assert passes == {
        "standard": (1.0, 1.0),
        "upat": (2.0, 1.0),
        "pat2": (4.0, 3.0),
        "upat_no_clean_loss": (1.0, 1.0),
    }
    assert all(len(r.epoch_seconds) == 2 for r in out.values())
    assert all(0 <= acc <= 1 for acc, _ in evaluate_models(models, (x, y), None).values())
    # same initial weights and batches: methods differ only by their update
    assert out["standard"].final_loss != out["upat"].final_loss


def test_method_names_parse_and_reject_nonsense():
    spec = MethodSpec.parse("pat3_no_pyramid")
    assert (spec.steps, spec.pyramid, spec.clean_loss, spec.label) == (
        3,
        False,
        True,
        "pat3_no_pyramid",
    )
    swept = MethodSpec.parse("upat_no_pyramid_r4")
    assert swept.radius == 4 / 255 and swept.label == "upat_no_pyramid_r4" and not swept.pyramid
    for bad in ("pat", "pat0", "standard_no_pyramid", "standard_r4", "upat_r", "fgsm"):
        try:
            MethodSpec.parse(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_patch_embedding_equals_a_stride_p_convolution():
    from threatlang.backends.advtrain.vit import patchify

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.Conv2d(3, 5, 4, 4)
    lin = torch.nn.Linear(48, 5)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(5, -1))
        lin.bias.copy_(conv.bias)
    torch.testing.assert_close(lin(patchify(x, 4)), conv(x).flatten(2).transpose(1, 2))


def test_a_few_standard_steps_fit_a_small_batch():
    from threatlang.backends.advtrain.standard import Standard

    model, (x, y) = tiny_vit(), batch(12, classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = Standard().step(model, x, y, opt, 0.0)
    for _ in range(40):
        last = Standard().step(model, x, y, opt, 0.0)
    assert last < 0.5 * first
