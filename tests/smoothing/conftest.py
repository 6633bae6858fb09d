"""One intra-op thread: the CI box has 2 cores shared by many jobs, and oversubscribed
threads make tiny convolutions tens of times slower."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
