"""Projected feature tables: plain Linear values and gradients, with the gradient memory reused."""
import torch
from torch import nn

from recsys.nn.feature_table import GradientMemory, project_table


def _setup(seed=0):
    torch.manual_seed(seed)
    table = nn.Parameter(torch.randn(30, 12, dtype=torch.float64))
    linear = nn.Linear(12, 4).double()
    return table, linear


def _upstream(step):
    return torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(step))


def test_values_and_gradients_equal_linear():
    table, linear = _setup()
    memory = GradientMemory()
    out = project_table(table, linear, memory)
    torch.testing.assert_close(out, linear(table), rtol=1e-14, atol=1e-14)
    params = [table, linear.weight, linear.bias]
    got = torch.autograd.grad(out, params, _upstream(0))
    want = torch.autograd.grad(linear(table), params, _upstream(0))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-14, atol=1e-14)


def test_gradient_memory_is_reused_and_holds_each_pass_gradient():
    table, linear = _setup()
    memory = GradientMemory()
    pointers = []
    for step in range(3):
        table.grad = None  # zero_grad(set_to_none=True)
        project_table(table, linear, memory).backward(_upstream(step))
        torch.testing.assert_close(table.grad, _upstream(step) @ linear.weight.detach(), rtol=1e-14, atol=1e-14)
        pointers.append(table.grad.data_ptr())
    assert len(set(pointers)) == 1


def test_accumulation_over_two_backward_passes_adds_the_gradients():
    table, linear = _setup()
    memory = GradientMemory()
    project_table(table, linear, memory).backward(_upstream(0))
    project_table(table, linear, memory).backward(_upstream(1))  # table.grad already set: fresh memory
    expected = (_upstream(0) + _upstream(1)) @ linear.weight.detach()
    torch.testing.assert_close(table.grad, expected, rtol=1e-14, atol=1e-14)


def test_a_table_that_is_not_a_leaf_gets_ordinary_gradients():
    table, linear = _setup()
    memory = GradientMemory()
    for step in range(2):
        project_table(table.view(30, 12), linear, memory).backward(_upstream(step))  # grad passed through
    expected = (_upstream(0) + _upstream(1)) @ linear.weight.detach()
    torch.testing.assert_close(table.grad, expected, rtol=1e-14, atol=1e-14)


def test_float32_values_and_gradients_within_rounding_of_linear():
    torch.manual_seed(3)
    table = nn.Parameter(torch.randn(200, 300))
    linear = nn.Linear(300, 16)
    upstream = torch.randn(200, 16)
    out = project_table(table, linear, GradientMemory())
    exact_table, exact_linear = table.detach().double().requires_grad_(), nn.Linear(300, 16).double()
    exact_linear.load_state_dict({k: v.double() for k, v in linear.state_dict().items()})
    exact = exact_linear(exact_table)
    assert ((out.double() - exact).norm() / exact.norm()).item() < 2e-6
    got = torch.autograd.grad(out, [table, linear.weight, linear.bias], upstream)
    want = torch.autograd.grad(exact, [exact_table, exact_linear.weight, exact_linear.bias], upstream.double())
    for g, w in zip(got, want):
        assert ((g.double() - w).norm() / w.norm()).item() < 2e-6


def test_update_in_backward_sees_every_row_block_once_and_leaves_no_gradient():
    torch.manual_seed(0)
    table = nn.Parameter(torch.randn(300, 4096))  # 2^19 / 4096 = 128 rows a block: three blocks on oneDNN
    linear = nn.Linear(4096, 8)
    upstream = torch.randn(300, 8)
    before = table.detach().clone()
    seen = []

    def update(tensor, blocks):
        assert tensor is table
        for rows, grad in blocks:
            seen.append((rows, grad.clone()))
            tensor[rows] = 0.0  # the step changes the table while the backward pass runs

    memory = GradientMemory()
    memory.update = update
    project_table(table, linear, memory).backward(upstream)
    assert table.grad is None
    covered = torch.zeros(300, dtype=torch.long)
    for rows, grad in seen:
        covered[rows] += 1
        torch.testing.assert_close(grad, upstream[rows] @ linear.weight.detach(), rtol=1e-5, atol=1e-5)
    assert covered.eq(1).all()
    torch.testing.assert_close(linear.weight.grad, upstream.T @ before, rtol=1e-5, atol=1e-4)  # X before the update
    torch.testing.assert_close(linear.bias.grad, upstream.sum(0))
