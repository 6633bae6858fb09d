"""Loading a spec's model: state dicts (weights only), TorchScript, ONNX, python with consent."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from threatlang.errors import UsageError  # noqa: E402
from threatlang.ir import ModelKind, ModelRef, Option  # noqa: E402
from threatlang.models_io import load_model  # noqa: E402

# torch deprecates TorchScript; users still hand us .ts files, so we still read them
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HERE = Path(__file__).parent
SHAPE, CLASSES = (1, 4, 4), 3


def _x():
    return torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0))


def test_state_dict_into_a_builtin_architecture(archs, tmp_path):
    source = archs.tiny(SHAPE, CLASSES, hidden=5)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    ref = ModelRef(
        ModelKind.STATE_DICT, str(tmp_path / "w.pt"), arch="tiny", options=(Option("hidden", 5),)
    )
    model = load_model(ref, SHAPE, CLASSES)
    torch.testing.assert_close(model(_x()), source(_x()))
    # the wrong width is a clear error, not a crash
    narrow = ModelRef(ModelKind.STATE_DICT, str(tmp_path / "w.pt"), arch="tiny")
    with pytest.raises(UsageError, match="does not fit architecture 'tiny'"):
        load_model(narrow, SHAPE, CLASSES)


def test_state_dict_loading_runs_no_code(archs, tmp_path):
    torch.save({"weight": archs.Custom()}, tmp_path / "evil.pt")
    ref = ModelRef(ModelKind.STATE_DICT, str(tmp_path / "evil.pt"), arch="tiny")
    with pytest.raises(UsageError, match="not a plain state dict"):
        load_model(ref, SHAPE, CLASSES)


def test_unknown_architecture_lists_the_known_ones(archs, tmp_path):
    with pytest.raises(UsageError, match="builtin architectures: tiny"):
        load_model(ModelRef(ModelKind.BUILTIN, "resnet9000"), SHAPE, CLASSES)


def test_torchscript_becomes_plain_layers(tmp_path):
    source = nn.Sequential(
        nn.Conv2d(1, 2, 3, 1, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, CLASSES)
    ).eval()
    torch.jit.script(source).save(str(tmp_path / "m.ts"))
    ref = ModelRef(ModelKind.TORCHSCRIPT, str(tmp_path / "m.ts"))
    with pytest.raises(UsageError, match="TorchScript archive is code.*--allow-code"):
        load_model(ref, SHAPE, CLASSES)  # loading it would run the archive's code
    model = load_model(ref, SHAPE, CLASSES, allow_code=True)
    assert isinstance(model, nn.Sequential) and isinstance(model[0], nn.Conv2d)
    torch.testing.assert_close(model(_x()), source(_x()))


def test_onnx_model_is_converted_and_checked(tmp_path):
    pytest.importorskip("onnxruntime")
    from threatlang.interop.onnx_export import export_onnx

    source = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, CLASSES))
    export_onnx(source.eval(), SHAPE, tmp_path / "m.onnx")
    model = load_model(ModelRef(ModelKind.ONNX, str(tmp_path / "m.onnx")), SHAPE, CLASSES)
    torch.testing.assert_close(model(_x()), source(_x()), rtol=1e-5, atol=1e-6)


def test_python_reference_needs_consent(archs):
    ref = ModelRef(ModelKind.PYTHON, "archs:user_model", options=(Option("hidden", 2),))
    with pytest.raises(UsageError, match="--allow-code"):
        load_model(ref)
    model = load_model(ref, allow_code=True)
    assert model(torch.zeros(1, 3)).shape == (1, 2)


def test_relative_paths_resolve_beside_the_spec(tmp_path, monkeypatch):
    from threatlang.ir.span import Span

    source = nn.Sequential(nn.Flatten(), nn.Linear(16, CLASSES)).eval()
    torch.jit.script(source).save(str(tmp_path / "m.ts"))
    ref = ModelRef(ModelKind.TORCHSCRIPT, "m.ts", span=Span(str(tmp_path / "s.threat"), 2, 3))
    monkeypatch.chdir(HERE)  # not where the model is
    model = load_model(ref, SHAPE, CLASSES, allow_code=True)
    torch.testing.assert_close(model(_x()), source(_x()))
    missing = ModelRef(ModelKind.ONNX, "nowhere.onnx")
    with pytest.raises(UsageError, match="model file nowhere.onnx not found"):
        load_model(missing, SHAPE, CLASSES)
