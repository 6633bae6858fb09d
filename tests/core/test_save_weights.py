"""Weights that cannot be written (full disk, read-only folder) give one sentence, no debris."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from threatlang.errors import UsageError
from threatlang.runtime import save_weights


def test_full_disk_under_torch_save_is_one_sentence_and_leaves_nothing(tmp_path, monkeypatch):
    real = torch.save
    # torch's own writer on /dev/full: the RuntimeError a full disk really raises
    monkeypatch.setattr(torch, "save", lambda obj, f: real(obj, "/dev/full"))
    target = tmp_path / "model.pt"
    with pytest.raises(UsageError) as info:
        save_weights(nn.Linear(64, 64), target)
    message = str(info.value)
    assert str(target) in message and "disk may be full" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_says_so(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="writable"):
            save_weights(nn.Linear(2, 2), folder / "model.pt")
    finally:
        folder.chmod(0o700)


def test_written_weights_load_back(tmp_path):
    model = nn.Linear(3, 2)
    save_weights(model, tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert torch.equal(state["weight"], model.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
