"""oneDNN products: torch's products up to float32 rounding, any layout, and the fallbacks."""
import pytest
import torch

from recsys.nn.dense import linear, matmul, matmul_into


def _relative_error(got, exact):
    return ((got.double() - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_within_float32_rounding_for_every_layout(transpose_a, transpose_b):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(70, 300, generator=generator)
    b = torch.randn(300, 45, generator=generator)
    a_in = a.t().contiguous().t() if transpose_a else a
    b_in = b.t().contiguous().t() if transpose_b else b
    exact = a.double() @ b.double()
    got = matmul(a_in, b_in)
    assert got.dtype == torch.float32 and got.shape == (70, 45) and got.is_contiguous()
    assert _relative_error(got, exact) < 2e-6


def test_linear_with_and_without_bias():
    generator = torch.Generator().manual_seed(1)
    x, weight, bias = torch.randn(33, 20, generator=generator), torch.randn(8, 20, generator=generator), \
        torch.randn(8, generator=generator)
    exact = x.double() @ weight.double().T + bias.double()
    assert _relative_error(linear(x, weight, bias), exact) < 2e-6
    assert _relative_error(linear(x, weight), exact - bias.double()) < 2e-6


def test_matmul_into_writes_the_product_in_place_by_row_blocks():
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(300, 16, generator=generator), torch.randn(16, 5000, generator=generator)  # 104-row blocks
    out = torch.full((300, 5000), float("nan"))
    pointer = out.data_ptr()
    assert matmul_into(a, b, out) is out and out.data_ptr() == pointer
    assert _relative_error(out, a.double() @ b.double()) < 2e-6


def test_other_dtypes_and_empty_inner_dimension_fall_back_to_torch():
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(matmul(a, b), a @ b, rtol=0, atol=0)
    assert torch.equal(matmul(torch.randn(4, 0), torch.randn(0, 2)), torch.zeros(4, 2))
    assert linear(torch.randn(0, 3), torch.randn(2, 3)).shape == (0, 2)
