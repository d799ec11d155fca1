"""Measure what the optional PyTorch Geometric dependency costs and whether it would be the better tool.

- import cost: CPU seconds of ``import torch_geometric`` after ``import torch`` (fresh
  interpreters, best of ``--repeats``), against ``import torch`` and ``import recsys`` (models and
  training), and whether ``import recsys`` loads torch_geometric (it must not);
- install footprint: the distributions torch-geometric adds to recsys' own dependency closure
  (from the installed metadata) and their size on disk;
- LightGCN propagation: CPU seconds of one forward + backward pass (3 layers, d = 64, one thread)
  over the Sports train graph (synthetic of the same size when ../shared/data is absent), ours
  (``recsys.nn.propagate`` on the normalised CSR graph) against PyG's ``LightGCN.get_embedding``
  on an edge list and on a CSR adjacency, with the largest difference of the embeddings.

    python bench/dependencies.py            # writes bench/results/dependencies.json and its README section
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment, write_readme_section  # noqa: E402

OUT = RESULTS / "dependencies.json"
LAYERS, DIM = 3, 64  # the LightGCN propagation timed: layers and embedding size
BEGIN, END = "<!-- dependencies:begin -->", "<!-- dependencies:end -->"
CORE = ("torch", "numpy", "scipy", "pandas", "pyarrow", "optuna", "pyyaml", "tqdm", "matplotlib")

IMPORT_PROBE = """
import sys, time
t0 = time.process_time(); import torch; t1 = time.process_time()
sys.path.insert(0, {repo!r})
{statement}
t2 = time.process_time()
print(t1 - t0, t2 - t1, int("torch_geometric" in sys.modules))
"""


def import_seconds(statement: str, repeats: int) -> dict:
    """Best-of CPU seconds of ``import torch`` and then of ``statement``, each in a fresh interpreter."""
    runs = []
    for _ in range(repeats):
        code = IMPORT_PROBE.format(repo=str(REPO), statement=statement)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1")).stdout.split()
        runs.append((float(out[0]), float(out[1]), bool(int(out[2]))))
    return {"torch_cpu_s": min(r[0] for r in runs), "after_torch_cpu_s": min(r[1] for r in runs),
            "loads_torch_geometric": any(r[2] for r in runs)}


def _requirements(name: str) -> list[str]:
    """Names of the unconditional requirements of an installed distribution."""
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def closure(roots) -> set[str]:
    seen, todo = set(), [r.lower().replace("_", "-") for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [r.lower().replace("_", "-") for r in _requirements(name)]
    return seen


def footprint() -> dict:
    """Distributions torch-geometric adds to the closure of recsys' core dependencies, and their size."""
    added = sorted(closure(["torch-geometric"]) - closure(CORE))
    sizes = {}
    for name in added:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        sizes[name] = sum(f.locate().stat().st_size for f in files if f.locate().is_file())
    return {"added_distributions": added, "added_mb": sum(sizes.values()) / 2**20,
            "per_distribution_mb": {k: v / 2**20 for k, v in sizes.items()},
            "torch_mb": sum(f.locate().stat().st_size for f in metadata.distribution("torch").files or []
                            if f.locate().is_file()) / 2**20}


def propagation(repeats: int) -> dict:
    import numpy as np
    import torch
    from torch_geometric.nn.models import LightGCN as PygLightGCN
    from torch_geometric.utils import to_torch_csr_tensor

    from recsys.data import load_dataset
    from recsys.graphs import GraphStore
    from recsys.nn import compact_csr, propagate

    torch.set_num_threads(1)
    sports = SHARED_DATA / "amazon" / "sports"
    source = {"format": "rearm", "path": str(sports), "modalities": []} if (sports / "train.npy").is_file() else \
        {"format": "synthetic", "synthetic": {"n_users": 35598, "n_items": 18357, "interactions_per_user": 6}}
    dataset = load_dataset(source)
    n = dataset.n_users + dataset.n_items
    adjacency = compact_csr(GraphStore(dataset, "cpu").user_item())
    train = dataset.csr("train").tocoo()
    users = torch.from_numpy(train.row.astype(np.int64))
    items = torch.from_numpy(train.col.astype(np.int64)) + dataset.n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    csr = to_torch_csr_tensor(edge_index, size=(n, n))
    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(n, DIM) * 0.1)
    theirs = PygLightGCN(n, DIM, LAYERS)
    with torch.no_grad():
        theirs.embedding.weight.copy_(ours)

    def step(forward):
        def run():
            forward().sum().backward()
        return run

    variants = {"ours_csr": step(lambda: propagate(adjacency, ours, LAYERS, symmetric=True)),
                "pyg_edge_list": step(lambda: theirs.get_embedding(edge_index)),
                "pyg_csr": step(lambda: theirs.get_embedding(csr))}
    seconds = {}
    for name, run in variants.items():
        run()
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            run()
            best = min(best, time.process_time() - start)
        seconds[name] = best
    with torch.no_grad():
        difference = float((propagate(adjacency, ours, LAYERS, symmetric=True)
                            - theirs.get_embedding(edge_index)).abs().max())
    return {"dataset": dataset.name if source["format"] == "rearm" else "synthetic (Sports-sized)",
            "nodes": n, "edges": int(edge_index.shape[1]), "cpu_s_per_forward_backward": seconds,
            "max_abs_difference": difference, "layers": LAYERS, "embedding_size": DIM}


def markdown(summary: dict) -> str:
    imports, size, prop = summary["imports"], summary["footprint"], summary["propagation"]
    t = prop["cpu_s_per_forward_backward"]
    return "\n".join([
        BEGIN,
        "## Dependencies: PyTorch Geometric (`dependencies.py`)",
        "",
        f"Commit {summary['commit']}; load average {summary['load_average']:.1f} on the shared "
        f"{summary.get('environment', {}).get('cpu_count', 'multi')}-core machine; CPU seconds, best of the repeats, "
        "one thread.",
        "",
        f"- `import torch_geometric` after torch: {imports['torch_geometric']['after_torch_cpu_s']:.2f} CPU-s "
        f"(`import torch`: {imports['torch_geometric']['torch_cpu_s']:.2f}; recsys' models and training after "
        f"torch: {imports['recsys']['after_torch_cpu_s']:.2f}, which "
        f"{'loads' if imports['recsys']['loads_torch_geometric'] else 'does not load'} torch_geometric).",
        f"- Install: torch-geometric adds {len(size['added_distributions'])} distributions to recsys' dependency "
        f"closure ({', '.join(size['added_distributions'])}), {size['added_mb']:.0f} MB on disk "
        f"(torch: {size['torch_mb']:.0f} MB).",
        f"- LightGCN propagation, {prop.get('layers', LAYERS)} layers, d = {prop.get('embedding_size', DIM)}, "
        f"forward + backward over {prop['dataset']} "
        f"({prop['nodes']:,} nodes, {prop['edges']:,} directed edges): ours {t['ours_csr']:.3f} CPU-s, "
        f"PyG on an edge list {t['pyg_edge_list']:.3f} ({t['pyg_edge_list'] / t['ours_csr']:.1f}×), "
        f"PyG on a CSR adjacency {t['pyg_csr']:.3f} ({t['pyg_csr'] / t['ours_csr']:.1f}×); "
        f"largest embedding difference {prop['max_abs_difference']:.1e}.",
        "",
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--report", action="store_true", help="only rewrite the README section from the results")
    args = parser.parse_args()
    from recsys import io

    if args.report:
        write_readme_section(markdown(json.loads(OUT.read_text())), BEGIN, END)
        return

    summary = {
        "commit": commit(), "load_average": os.getloadavg()[0], "environment": environment(),
        "imports": {"torch_geometric": import_seconds("import torch_geometric", args.repeats),
                    "recsys": import_seconds("import recsys.models, recsys.compose, recsys.runs", args.repeats)},
        "footprint": footprint(),
        "propagation": propagation(args.repeats),
    }
    io.write_json(OUT, summary)
    write_readme_section(markdown(summary), BEGIN, END)
    print(markdown(summary))


if __name__ == "__main__":
    main()
