"""Graph builders and propagation on every device against CPU float64 references.

What is promised (``recsys.graphs.knn``): the kept kNN neighbours are exact — ordered by the
float64 cosine rounded to float32, then the lower index — whatever the device or block size,
so CPU and CUDA keep exactly the same neighbours, ties included; the similarity values are
float32 products, within ``float32_error(D)`` of the exact ones. Co-occurrence graphs are
integer counts and a seeded NumPy draw, built on the CPU and moved: bit-identical.
Propagation is a float32 sparse product (MKL on the CPU, cuSPARSE on CUDA, each with its own
summation order): equal to the float64 product within float32 rounding.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.graphs import GraphStore, cooccurrence_graph, cosine_topk, interest_knn_graph, knn_graph
from recsys.graphs.knn import float32_error
from recsys.nn import compact_csr, propagate, sparse_matmul
from tests.graphs.reference import cosine, knn_dense, mean_items, ordered_topk, random_interactions
from tests.graphs.test_cooccurrence import _reference as cooccurrence_reference


def _features(n: int = 150, d: int = 48, seed: int = 0) -> np.ndarray:
    """Random rows with exact ties (copies of row 3), a zero row and near ties (1e-7 apart)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[10] = x[11] = x[3]
    x[4] = 0.0
    x[20] = x[21] = x[22] = x[5]
    x[21, 0] += np.float32(1e-6)
    x[22, 1] -= np.float32(1e-6)
    return x


def _csr_parts(graph: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    graph = graph.cpu()
    return graph.crow_indices().numpy(), graph.col_indices().numpy(), graph.values().numpy()


@pytest.mark.parametrize("chunk", [None, 13])
@pytest.mark.parametrize("weighted", [True, False])
def test_knn_graph_keeps_the_exact_neighbours(device, chunk, weighted):
    x = _features()
    graph = knn_graph(x, 7, weighted=weighted, chunk_size=chunk, device=device)
    assert graph.device.type == device.type and graph.layout == torch.sparse_csr
    dense = graph.to_dense().cpu().numpy()
    expected = knn_dense(x, 7, weighted)
    np.testing.assert_array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, rtol=0, atol=2 * float32_error(x.shape[1]))
    cpu = knn_graph(x, 7, weighted=weighted, chunk_size=chunk, device="cpu")
    for got, ref in zip(_csr_parts(graph)[:2], _csr_parts(cpu)[:2]):
        np.testing.assert_array_equal(got, ref)


def test_cosine_topk_ties_go_to_the_lower_index_on_every_device(device):
    x = _features()
    values, indices = cosine_topk(x, 4, chunk_size=7, device=device)
    expected = np.sort(ordered_topk(np.float32(cosine(x)), 4), axis=1)
    np.testing.assert_array_equal(indices.cpu().numpy(), expected)
    assert {3, 10, 11} <= set(indices[3].tolist()) and indices[4].tolist() == [0, 1, 2, 3]
    assert indices[5].tolist()[:1] == [5] and {20, 21, 22} <= set(indices[5].tolist())


@pytest.mark.parametrize("method", ["direct", "gram"])
def test_user_interest_graph_keeps_the_exact_neighbours(device, method):
    """Users 85 and 86 copy user 2's four items. With features on a 1/16 grid, their interest
    vectors (sums of quarters of grid values) are exact in float32 whatever the summation order
    of the device's sparse product, so the three tie exactly on every device."""
    r = random_interactions(90, 60, 500, seed=4, active_users=84).tolil()  # users 84..89 have no items
    r[2] = 0
    r[2, [1, 7, 30, 41]] = 1
    r[85] = r[86] = r[2]
    r = r.tocsr()
    r.eliminate_zeros()
    x = (np.round(np.random.default_rng(5).standard_normal((60, 24)) * 16) / 16).astype(np.float32)
    graph = interest_knn_graph(r, x, 6, method=method, chunk_size=16, device=device)
    dense = graph.to_dense().cpu().numpy()
    interest = mean_items(r) @ x.astype(np.float64)
    expected = knn_dense(interest, 6)
    np.testing.assert_array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, rtol=0, atol=1e-5)
    assert {2, 85, 86} <= set(np.flatnonzero(dense[2]))


@pytest.mark.parametrize("pad", ["resample", "none"])
def test_cooccurrence_graph_is_bit_identical_and_matches_the_reference(device, pad):
    r = random_interactions(40, 30, 55, seed=1, active_users=35, active_items=26)
    graph = cooccurrence_graph(r.T.tocsr(), 4, pad=pad, seed=3, device=device)
    assert graph.device.type == device.type
    np.testing.assert_allclose(graph.to_dense().cpu().numpy(), cooccurrence_reference(r.T.tocsr(), 4, pad, seed=3),
                               atol=1e-6)
    for got, ref in zip(_csr_parts(graph), _csr_parts(cooccurrence_graph(r.T.tocsr(), 4, pad=pad, seed=3))):
        np.testing.assert_array_equal(got, ref)


def _normwise(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.detach().double().cpu()
    return float((actual.detach().double().cpu() - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("how", ["symmetric", "transpose", "generic"])
def test_propagation_and_its_gradient_equal_the_dense_float64_product(device, how, planted):
    store = GraphStore(planted, device)
    if how == "symmetric":
        adj = compact_csr(store.user_item())
    else:                                                   # a non-symmetric graph: the item kNN graph
        adj = compact_csr(store.item_knn({"text": 1.0}, 5))
    adj_t = compact_csr(adj.t().to_sparse_csr()) if how == "transpose" else None
    dense = adj.to_dense().double().cpu()
    torch.manual_seed(0)
    x = torch.randn(adj.shape[0], 16)
    upstream = torch.randn(adj.shape[0], 16)

    def run(layer):
        leaf = x.clone().to(device).requires_grad_()
        out = propagate(adj, leaf, 3, symmetric=how == "symmetric", adj_t=adj_t) if layer is None \
            else sparse_matmul(adj, leaf, symmetric=how == "symmetric", adj_t=adj_t)
        (out * upstream.to(device)).sum().backward()
        return out.detach(), leaf.grad

    reference = x.double().requires_grad_()
    layers = [reference]
    for _ in range(3):
        layers.append(dense @ layers[-1])
    expected = torch.stack(layers).mean(0)
    (expected * upstream.double()).sum().backward()
    out, grad = run(None)
    assert out.device.type == device.type
    assert _normwise(out, expected) < 1e-6 and _normwise(grad, reference.grad) < 1e-6
    one_layer, one_grad = run("single")
    assert _normwise(one_layer, dense @ x.double()) < 1e-6
    assert _normwise(one_grad, dense.T @ upstream.double()) < 1e-6
