"""Feature tables stepped in the backward pass on every device: the same parameters and optimiser
state as the optimiser's own step (on CUDA the projection's gradient is one block of rows)."""
import torch

from recsys.training import table_step
from tests.training.test_table_step import _assert_same, _optimizer, _TableModel, _train


def test_step_in_backward_equals_the_optimiser_step(device):
    plain, inside = _TableModel().to(device), _TableModel().to(device)
    opt_plain, opt_inside = _optimizer(plain, "adamw", True), _optimizer(inside, "adamw", True)
    assert table_step.attach(inside, opt_inside, {}) == 1
    _train(plain, opt_plain, 3)
    _train(inside, opt_inside, 3)
    assert inside.table.grad is None and plain.table.grad is not None
    assert inside.table.device.type == device.type
    _assert_same(inside, plain, opt_inside, opt_plain)
    assert torch.isfinite(inside.table).all()
