"""REARM parity: the public reference code and recsys on identical inputs (issue 13, item 2).

Both sides train REARM with the reference README's Sports hyper-parameters
(``configs/experiments/rearm_sports.yaml``; the harness checks the two agree flag by flag), the
same seed, the same number of threads (torch threads and the OMP/MKL variables) and the
same number of epochs (no early stopping), on one input folder built by
``bench/parity_data.py``: the 3,000 most popular items of the Sports split, their users with
at least 5 train interactions and at least one valid and one test interaction among them, the
real 384-d text features and seeded 4096-d stand-in image features. Our side trains the
user-interest tables (``model.train_user_interest: true``), as the published model does.

The reference evaluates the valid split after every epoch; we evaluate every 5 epochs and
after the last; both are compared at our evaluation epochs. Verdict: PASS when every compared
valid Recall@20 of ours lies within ±3 % of the reference's. The random streams of the two
codes differ (initialisation order, negatives, dropout), so only statistics can agree.

Recorded in ``bench/results/rearm_parity.json`` (plot: ``rearm_parity.png``): per-epoch losses,
valid Recall@20 / NDCG@20, epoch wall and CPU seconds (the process's user + system time) of
both sides, setup seconds, peak memory, the 1/5/15-minute load average before, during (sampled
every 5 s) and after each side, the commit, date, threads and CPU count, and how often the
top-k co-occurrence neighbour sets differ (the one accepted difference: ties at the k-th
count are broken by lower index here and by ``torch.topk``'s order there; measured on the
neighbour lists the reference saves, ``data/<name>/dict_*_co_occ_graph.pt``). A normal run
also writes its section of bench/README.md.

Reference code and interpreter (never part of this repository):

    git clone <github MrShouxingMa/REARM> /path/to/REARM && git -C /path/to/REARM checkout 6502a00
    python3 -m venv /path/to/refenv
    /path/to/refenv/bin/pip install "numpy<1.24" "scipy==1.11.*" "torch==2.*" tqdm matplotlib tensorboardX

(The reference was published with Python 3.8 and torch 1.13; it imports numpy, scipy, torch,
tqdm, matplotlib and tensorboardX. A CPU build of torch 2.x suffices (checked with Python 3.11,
numpy 1.23.5, scipy 1.11.1 and torch 2.13 CPU; PyPI's default Linux torch wheel is the much
larger CUDA build, the CPU wheels are on PyTorch's own wheel index); the harness itself runs
under this project's interpreter.) The reference's files are copied to a temporary folder
and changed there only by the compatibility edits in ``REFERENCE_EDITS`` (each one fails the
run if its text is not found); the checkout is left untouched. The reference runs with
``--num_workers 0`` (negatives drawn in the training process, so the thread count holds) and,
on CPU, ``--use_gpu ''`` (its boolean flag is false only for an empty string).

    python bench/rearm_parity.py --reference /path/to/REARM --reference-python /path/to/refenv/bin/python
    python bench/rearm_parity.py              # our side only (no comparison)

Run the full comparison on an otherwise idle machine: each side's epoch seconds are recorded.
With ``--work DIR`` the inputs, logs and the reference copy are kept there, and a side whose log
there already holds every epoch of the same command is not run again (a killed comparison
resumes with the side that had not finished).

The two codes draw different initial parameters from the same seed, and on this input the
initial loss varies by several per cent from seed to seed, so the first epochs' losses of the
two sides differ by as much. ``--same-init`` starts our side from the reference's initial
parameters (saved by the logger, mapped by ``PARAMETER_MAP``); given those parameters and the
reference's graphs, our loss on a batch equalled the reference's to 1e-6 in a check by hand,
so what remains are the graphs' tie-breaking and the random draws (negatives, dropout).
The README section reports the --same-init run of the same command (written with
``--out results/rearm_parity_same_init.json --no-readme``) beside the default one, and the
runs at other seeds (``--seed S --out results/rearm_parity_seed-S.json --no-readme``). A seed
run with ``--reference`` compares both codes at that seed, and the section then also compares
the two codes' means over the seeds, checkpoint by checkpoint (``seed_means``): one seed's gap
holds each code's own seed-to-seed variation, which on this input is of the order of the ±3 %
band, and the mean over seeds shrinks it. A seed run without ``--reference`` gives the spread
of our side alone. ``--reference-ties`` makes our side keep the reference's top-k co-occurrence
neighbour sets (read from the lists the reference saved in its copy; our graph code then
weights and pads them as usual), which removes the one accepted difference; its runs
(``--out results/rearm_parity_ties-S.json --no-readme``, two seeds or more) get their own
seed-mean table. With both flags (``--same-init --reference-ties --out
results/rearm_parity_same_init_ties-S.json --no-readme``) the two codes start from the same
parameters and graphs and differ only in their random draws; the section gives those runs'
gaps, seed by seed.
``--report`` rewrites the section from those files:

    python bench/rearm_parity.py --reference R --reference-python PY --work W
    python bench/rearm_parity.py --reference R --reference-python PY --work W --same-init \
        --out bench/results/rearm_parity_same_init.json --no-readme
    python bench/rearm_parity.py --reference R --reference-python PY --work W --same-init --reference-ties \
        --out bench/results/rearm_parity_same_init_ties-2025.json --no-readme
    python bench/rearm_parity.py --reference R --reference-python PY --work W2026 --seed 2026 \
        --out bench/results/rearm_parity_seed-2026.json --no-readme
    python bench/rearm_parity.py --reference R --reference-python PY --work W2026 --seed 2026 --reference-ties \
        --out bench/results/rearm_parity_ties-2026.json --no-readme
    python bench/rearm_parity.py --report
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, read_json, write_readme_section  # noqa: E402
from parity_data import build_parity_dataset  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "rearm_parity.json"
EXPERIMENT = REPO / "configs" / "experiments" / "rearm_sports.yaml"
LOGGER = Path(__file__).resolve().parent / "rearm_parity_logger.py"
REFERENCE_COMMIT = "6502a00"
DATASET_NAME = "parity"
EVAL_EVERY = 5
TOLERANCE = 0.03
SPEED_GOAL = 6.0
SAME_INIT = RESULTS / "rearm_parity_same_init.json"
IDENTICAL_START_RUNS = "rearm_parity_same_init_ties-*.json"
SEED_RUNS = "rearm_parity_seed-*.json"
TIE_RUNS = "rearm_parity_ties-*.json"
LOAD_SAMPLE_SECONDS = 5.0
BEGIN, END = "<!-- rearm_parity:begin -->", "<!-- rearm_parity:end -->"
SIDE_COLOURS = {"reference": "tab:blue", "ours": "tab:orange"}


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``pattern`` in ``path`` (relative to the reference root)."""

    path: str
    pattern: str
    replacement: str
    why: str


REFERENCE_EDITS = (
    Edit("utils/data_loader.py",
         "random.sample(self.all_set - set(self.user_items_dict[user]), 1)[0]",
         "random.sample(tuple(self.all_set - set(self.user_items_dict[user])), 1)[0]",
         "Python >= 3.11 rejects a set in random.sample; Python <= 3.10 turned the set into a tuple "
         "itself, so the negatives drawn are the same"),
    Edit("main.py", "from model import REARM\n", "from model import REARM\nimport parity_log\n",
         "import the harness's JSON epoch logger (bench/rearm_parity_logger.py, copied in as parity_log.py)"),
    Edit("main.py", "        self.optimizer = optim.AdamW(",
         "        parity_log.initial_state(self.model)\n        self.optimizer = optim.AdamW(",
         "save the initial parameters for --same-init (only when PARITY_INIT is set; draws no random number)"),
    Edit("main.py",
         "            train_loss = train(self, epoch_idx)\n",
         "            parity_log.train_started()\n"
         "            train_loss = train(self, epoch_idx)\n"
         "            parity_log.train_finished(train_loss)\n",
         "time each training epoch (wall and CPU seconds) and keep its mean losses"),
    Edit("main.py",
         "            valid_output = res_output(",
         "            parity_log.validated(epoch_idx, valid_result, time() - valid_start_time)\n"
         "            valid_output = res_output(",
         "append the epoch's JSON record once the valid split is evaluated"),
)

# Reference command-line flag -> where the same value lives in our experiment config (docs/vocabulary.md).
FLAG_TO_CONFIG = {
    "num_layer": ("model", "n_layers"),
    "reg_weight": ("train", "weight_decay"),
    "rank": ("model", "rank"),
    "s_drop": ("model", "self_attention_dropout"),
    "m_drop": ("model", "cross_attention_dropout"),
    "u_mm_image_weight": ("model", "user_modality_weights", "image"),
    "i_mm_image_weight": ("model", "item_modality_weights", "image"),
    "uu_co_weight": ("model", "user_co_weight"),
    "ii_co_weight": ("model", "item_co_weight"),
    "user_knn_k": ("model", "user_knn_k"),
    "item_knn_k": ("model", "item_knn_k"),
    "n_ii_layers": ("model", "n_item_layers"),
    "n_uu_layers": ("model", "n_user_layers"),
    "cl_tmp": ("model", "temperature"),
    "cl_loss_weight": ("model", "contrast_weight"),
    "diff_loss_weight": ("model", "orthogonality_weight"),
    "l_r": ("train", "lr"),
    "batch_size": ("train", "batch_size"),
    "embedding_dim": ("model", "embedding_size"),
}


# Reference parameter -> ours (modality 0 = image, 1 = text; the attention modules differ in shape only).
PARAMETER_MAP = {
    "user_id_embedding.weight": "user_id", "item_id_embedding.weight": "item_id",
    "image_embedding.weight": "item_features.0", "text_embedding.weight": "item_features.1",
    "user_v_prefer": "user_interest.0", "user_t_prefer": "user_interest.1",
    "ly_norm.weight": "norm.weight", "ly_norm.bias": "norm.bias", "prl.weight": "act.weight",
    **{f"{ref}.{p}": f"{ours}.{p}" for ref, ours in (
        ("image_i_trs", "item_proj.0"), ("text_i_trs", "item_proj.1"), ("image_u_trs", "user_proj.0"),
        ("text_u_trs", "user_proj.1"), ("meta_netu", "user_knowledge"), ("meta_neti", "item_knowledge"))
       for p in ("weight", "bias")},
    **{f"{ref}.{r}": f"{ours}.{o}" for ref, ours in (
        ("self_i_attn1", "self_attention.0"), ("self_i_attn2", "self_attention.1"),
        ("mutual_i_attn1", "cross_attention.0"), ("mutual_i_attn2", "cross_attention.1"))
       for r, o in (("in_proj_weight", "in_weight"), ("in_proj_bias", "in_bias"),
                    ("out_proj.weight", "out_weight"), ("out_proj.bias", "out_bias"))},
    **{f"{ref}.{r}": f"{ours}.{o}" for ref, ours in (
        ("mlp_u1", "user_factor_in"), ("mlp_u2", "user_factor_out"), ("mlp_i1", "item_factor_in"),
        ("mlp_i2", "item_factor_out"))
       for r, o in (("linear_pre.weight", "hidden.weight"), ("linear_pre.bias", "hidden.bias"),
                    ("prl.weight", "act.weight"), ("linear_out.weight", "out.weight"), ("linear_out.bias", "out.bias"))},
}


def load_reference_state(model, reference_state: dict) -> None:
    """Give our REARM (modalities image, text; trained user interest) the reference's parameters."""
    if list(model.modalities) != ["image", "text"]:
        raise ValueError(f"--same-init maps the reference's image/text modules; our model has {model.modalities}")
    ours = model.state_dict()
    unknown = sorted(set(reference_state) - set(PARAMETER_MAP))
    missing = sorted(set(ours) - set(PARAMETER_MAP.values()))
    if unknown or missing:
        raise RuntimeError(f"reference parameters without a counterpart {unknown}, ours without one {missing}: "
                           "update PARAMETER_MAP in bench/rearm_parity.py")
    model.load_state_dict({PARAMETER_MAP[k]: v.reshape(ours[PARAMETER_MAP[k]].shape)
                           for k, v in reference_state.items()}, strict=True)


# --------------------------------------------------------------------------- reference code
def apply_edits(root: Path, edits=REFERENCE_EDITS) -> None:
    """Apply ``edits`` to the files under ``root``; a pattern found zero or several times is an error."""
    for edit in edits:
        path = root / edit.path
        text = path.read_text()
        found = text.count(edit.pattern)
        if found != 1:
            raise RuntimeError(
                f"compatibility edit of {edit.path} ({edit.why}) expects its text exactly once, found it {found} "
                f"times: {edit.pattern!r}. Is {root} a checkout of MrShouxingMa/REARM at commit {REFERENCE_COMMIT}?")
        path.write_text(text.replace(edit.pattern, edit.replacement))


def readme_sports_flags(readme: Path) -> dict[str, str]:
    """The ``--flag=value`` pairs of the reference README's Sports command (quotes stripped)."""
    for line in readme.read_text().splitlines():
        if line.strip().startswith("python main.py") and "--dataset='sports'" in line:
            flags = {}
            for token in line.split()[2:]:
                if not token.startswith("--") or "=" not in token:
                    raise RuntimeError(f"{readme}: cannot read '{token}' in the Sports command: {line.strip()}")
                key, value = token[2:].split("=", 1)
                flags[key] = value.strip("'\"")
            return flags
    raise RuntimeError(f"{readme} has no 'python main.py --dataset='sports' ...' line; "
                       f"is it the README of MrShouxingMa/REARM at commit {REFERENCE_COMMIT}?")


def _config_value(config: dict, path: tuple[str, ...]):
    value = config
    for key in path:
        value = value[key]
    return value


def reference_hyper_parameters(config: dict, readme_flags: dict[str, str] | None) -> dict[str, str]:
    """Reference flags with our config's values; each flag the README's Sports command sets must agree."""
    flags = {flag: str(_config_value(config, path)) for flag, path in FLAG_TO_CONFIG.items()}
    for flag, value in (readme_flags or {}).items():
        if flag == "dataset":
            continue
        if flag not in FLAG_TO_CONFIG:
            raise RuntimeError(f"the reference README's Sports command sets --{flag}, which the harness does not map "
                               f"to our config; add it to FLAG_TO_CONFIG")
        ours = _config_value(config, FLAG_TO_CONFIG[flag])
        if not math.isclose(float(value), float(ours), rel_tol=1e-9, abs_tol=0.0):
            raise RuntimeError(f"{EXPERIMENT.relative_to(REPO)} sets {'.'.join(FLAG_TO_CONFIG[flag])} = {ours}, "
                               f"the reference README's Sports command --{flag}={value}")
    return flags


def prepare_reference(reference: Path, data: Path, copy: Path) -> Path:
    """A copy of the reference's code in ``copy`` with the edits applied and ``data/<name>/``
    holding links to the built input files."""
    if not (reference / "main.py").is_file():
        raise FileNotFoundError(f"{reference / 'main.py'} does not exist: --reference must be a checkout of "
                                f"github MrShouxingMa/REARM (commit {REFERENCE_COMMIT})")
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(reference, copy, ignore=shutil.ignore_patterns(".git", "data", "images", "log", "runs"))
    apply_edits(copy)
    shutil.copy(LOGGER, copy / "parity_log.py")
    target = copy / "data" / DATASET_NAME
    target.mkdir(parents=True)
    for name in ("train.npy", "valid.npy", "test.npy", "image_feat.npy", "text_feat.npy"):
        (target / name).symlink_to((data / name).resolve())
    return copy


def reference_command(python: str, flags: dict[str, str], epochs: int, seed: int, device: str) -> list[str]:
    return [python, "main.py", f"--dataset={DATASET_NAME}", *(f"--{k}={v}" for k, v in flags.items()),
            f"--seed={seed}", f"--num_epoch={epochs}", f"--stopping_step={epochs}", "--num_workers=0",
            f"--use_gpu={'1' if device == 'cuda' else ''}"]


# --------------------------------------------------------------------------- our side
def ours_config(data: Path, epochs: int, seed: int, threads: int, device: str, output_dir: Path) -> dict:
    from recsys.io import load_yaml

    raw = load_yaml(EXPERIMENT)
    raw["dataset"] = {"format": "rearm", "path": str(data), "name": DATASET_NAME, "modalities": ["image", "text"]}
    raw["model"]["train_user_interest"] = True
    raw["train"].update(epochs=epochs, eval_every=EVAL_EVERY, patience=epochs + 1, progress=False)
    raw["eval"] = {"ks": [20], "metrics": ["recall", "ndcg"]}
    raw.update(seed=seed, device=device, threads=threads, cache_dir=None, output_dir=str(output_dir))
    return raw


def reference_topk(lists: dict, k: int):
    """The reference's saved co-occurrence neighbour lists (``{row: [nodes, counts]}``, best
    first) as :func:`recsys.graphs.cooccurrence.cooccurrence_topk` returns ours: (counts,
    indices, n_neighbours), each row's first ``k``, zero past ``n_neighbours``."""
    import torch

    n = len(lists)
    counts, indices = torch.zeros(n, k), torch.zeros(n, k, dtype=torch.int64)
    n_neighbours = torch.zeros(n, dtype=torch.int64)
    for row in range(n):
        nodes, values = lists[row][0][:k], lists[row][1][:k]
        indices[row, :len(nodes)] = torch.as_tensor([int(v) for v in nodes], dtype=torch.int64)
        counts[row, :len(nodes)] = torch.as_tensor([float(v) for v in values])
        n_neighbours[row] = len(nodes)
    return counts, indices, n_neighbours


def use_reference_neighbours(folder: Path, n_users: int, n_items: int) -> list[str]:
    """Make our co-occurrence graphs keep the reference's top-k neighbour sets (saved in
    ``folder``), so that ties at the k-th count are broken as the reference breaks them; returns
    the kinds (``users``/``items``) served, one entry per graph built."""
    import torch

    from recsys.graphs import cooccurrence

    lists = {n_users: ("users", torch.load(folder / "dict_user_co_occ_graph.pt", weights_only=True)),
             n_items: ("items", torch.load(folder / "dict_item_co_occ_graph.pt", weights_only=True))}
    served: list[str] = []

    def topk(incidence, k, chunk_size=None):
        kind, saved = lists[incidence.shape[0]]
        served.append(kind)
        return reference_topk(saved, min(int(k), incidence.shape[0]))

    cooccurrence.cooccurrence_topk = topk
    return served


def _sizes(data: Path) -> tuple[int, int]:
    from recsys.data.rearm import read_rearm

    dataset = read_rearm(data, modalities=[])
    return dataset.n_users, dataset.n_items


def run_ours_worker(args) -> None:
    """Our side in its own process: the same JSON epoch records as the reference's logger."""
    import resource

    import torch

    from recsys.compose import build, resolve
    from recsys.training.trainer import Trainer

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    config = resolve(ours_config(args.data, args.epochs, args.seed, args.threads, args.device, args.run_dir))
    served = use_reference_neighbours(args.neighbours_from, *_sizes(args.data)) if args.neighbours_from else None
    components = build(config, torch.device(args.device))
    model, task = components.model, components.task
    if served is not None and sorted(served) != ["items", "users"]:
        raise RuntimeError(f"--reference-ties: expected the user and item co-occurrence graphs from the reference's "
                           f"lists, served {served}")
    if args.init_from is not None:
        load_reference_state(model, torch.load(args.init_from, map_location=args.device, weights_only=True))
    setup_seconds = time.perf_counter() - started
    first = [True]

    def log(record: dict) -> None:
        out = {"epoch": record["epoch"], "train_seconds": record["train_seconds"],
               "train_cpu_seconds": record["train_cpu_seconds"],
               **{k: record[k] for k in ("loss", "bpr", "contrast", "orthogonality")},
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if "eval_seconds" in record:
            out["valid"] = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("valid/")}
            out["eval_seconds"] = record["eval_seconds"]
        if first[0]:
            out.update(setup_seconds=setup_seconds, torch_threads=torch.get_num_threads())
            first[0] = False
        io.append_jsonl(args.log, out)

    args.run_dir.mkdir(parents=True, exist_ok=True)
    Trainer(model, task, config["train"], args.run_dir, on_epoch_end=[log]).fit()


# --------------------------------------------------------------------------- running a side
def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def finished(log: Path, epochs: int, command: list[str]) -> bool:
    """Whether ``log`` and its ``.run.json`` run record hold a completed run of ``command`` (``epochs`` epochs)."""
    records, meta = read_log(log), log.with_suffix(".run.json")
    return (meta.is_file() and json.loads(meta.read_text())["command"] == command and bool(records)
            and records[-1]["epoch"] == epochs)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_side(name: str, command: list[str], cwd: Path, env: dict, log: Path, console: Path, epochs: int) -> dict:
    """Run one side to completion; its epoch records (from ``log``) and load averages.

    A side whose ``log`` and ``<log>.run.json`` already hold ``epochs`` epochs is not run again.
    """
    meta_path = log.with_suffix(".run.json")
    if finished(log, epochs, command):
        print(f"{name}: complete log found in {log}, not run again", flush=True)
        return {**json.loads(meta_path.read_text()), "epochs": read_log(log)}
    log.unlink(missing_ok=True)
    samples: list[tuple[float, float]] = []
    before = _load()
    started = time.perf_counter()
    print(f"{name}: {' '.join(command)}  (in {cwd}, output in {console})", flush=True)
    with open(console, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            samples.append((round(time.perf_counter() - started, 1), round(os.getloadavg()[0], 2)))
            try:
                process.wait(timeout=LOAD_SAMPLE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    wall = time.perf_counter() - started
    after = _load()
    if process.returncode != 0:
        tail = "\n".join(console.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{name} side failed (exit {process.returncode}); last lines of {console}:\n{tail}")
    records = read_log(log)
    if not records or records[-1]["epoch"] != epochs:
        raise RuntimeError(f"{name} side finished without logging epoch {epochs} in {log}; see {console}")
    during = [load for _, load in samples]
    meta = {"command": command, "wall_seconds": wall,
            "load_average": {"before": before, "after": after,
                             "during_1min": {"mean": round(float(np.mean(during)), 2) if during else None,
                                             "max": max(during) if during else None,
                                             "samples": samples}}}
    io.write_json(meta_path, meta)
    return {**meta, "epochs": records}


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = str(threads)
    return env


# --------------------------------------------------------------------------- comparison
def neighbour_sets_differ(reference_lists: dict, counts, indices, n_neighbours, k: int) -> dict:
    """How many rows' top-k co-occurrence neighbour sets differ between the reference and us.

    ``reference_lists[i] = [neighbours, counts]`` as the reference saves them (best first);
    its row keeps the first k. Ours: :func:`recsys.graphs.cooccurrence.cooccurrence_topk`.
    A differing row whose kept counts are the same multiset differs only in which of the
    nodes tied at the k-th count were kept (``tie_only``); any other difference is ``other``.
    Rows without any co-occurring node (popularity fallback on both sides) are counted apart.
    """
    rows = with_neighbours = differ = tie_only = 0
    for row in range(len(n_neighbours)):
        rows += 1
        n = int(n_neighbours[row])
        ref_nodes, ref_counts = reference_lists[row][0][:k], reference_lists[row][1][:k]
        if n == 0 and not ref_nodes:
            continue
        with_neighbours += 1
        ours_nodes = [int(v) for v in indices[row][:n]]
        if set(ours_nodes) != {int(v) for v in ref_nodes}:
            differ += 1
            ours_counts = sorted(float(v) for v in counts[row][:n])
            tie_only += ours_counts == sorted(float(v) for v in ref_counts)
    return {"k": k, "rows": rows, "rows_with_neighbours": with_neighbours, "rows_differing": differ,
            "share_differing": differ / with_neighbours if with_neighbours else 0.0,
            "tie_only": tie_only, "other": differ - tie_only}


def neighbour_agreement(reference_copy: Path, data: Path, user_k: int, item_k: int) -> dict:
    """Compare the reference's saved co-occurrence neighbour lists with ours, users and items."""
    import torch

    from recsys.data.rearm import read_rearm
    from recsys.graphs.cooccurrence import cooccurrence_topk

    train = read_rearm(data, modalities=[]).csr("train")
    out = {}
    for kind, incidence, k in (("users", train, user_k), ("items", train.T.tocsr(), item_k)):
        saved = reference_copy / "data" / DATASET_NAME / f"dict_{kind[:-1]}_co_occ_graph.pt"
        lists = torch.load(saved, weights_only=True)
        counts, indices, n_neighbours = cooccurrence_topk(incidence, k)
        out[kind] = neighbour_sets_differ(lists, counts.numpy(), indices.numpy(), n_neighbours.numpy(), k)
    return out


def checkpoints(epochs: int) -> list[int]:
    return [e for e in range(1, epochs + 1) if e % EVAL_EVERY == 0 or e == epochs]


def compare(reference: list[dict], ours: list[dict], epochs: int) -> dict:
    """Valid Recall@20 / NDCG@20 of both at our evaluation epochs, loss ratios, and the verdict."""
    ref_by_epoch = {r["epoch"]: r for r in reference}
    ours_by_epoch = {r["epoch"]: r for r in ours}
    rows = []
    for epoch in checkpoints(epochs):
        ref, own = ref_by_epoch[epoch]["valid"], ours_by_epoch[epoch]["valid"]
        gap = own["recall@20"] / ref["recall@20"] - 1 if ref["recall@20"] > 0 else (
            0.0 if own["recall@20"] == 0 else math.inf)
        rows.append({"epoch": epoch, "reference_recall@20": ref["recall@20"], "ours_recall@20": own["recall@20"],
                     "reference_ndcg@20": ref["ndcg@20"], "ours_ndcg@20": own["ndcg@20"],
                     "recall_gap": gap, "within_tolerance": abs(gap) <= TOLERANCE})
    losses = [{"epoch": e, **{f"{term}_gap": ours_by_epoch[e][term] / ref_by_epoch[e][term] - 1
                              for term in ("loss", "bpr") if ref_by_epoch[e][term]}}
              for e in range(1, epochs + 1)]
    return {"tolerance": TOLERANCE, "checkpoints": rows, "losses": losses,
            "verdict": "PASS" if all(r["within_tolerance"] for r in rows) else "FAIL"}


def timing(side: dict) -> dict:
    epochs = side["epochs"]
    wall = [r["train_seconds"] for r in epochs]
    cpu = [r["train_cpu_seconds"] for r in epochs]
    evals = [r["eval_seconds"] for r in epochs if "eval_seconds" in r]
    return {"median_epoch_seconds": float(np.median(wall)), "median_epoch_cpu_seconds": float(np.median(cpu)),
            "mean_epoch_seconds": float(np.mean(wall)), "mean_epoch_cpu_seconds": float(np.mean(cpu)),
            "median_eval_seconds": float(np.median(evals)) if evals else None,
            "setup_seconds": epochs[0].get("setup_seconds"), "torch_threads": epochs[0].get("torch_threads"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in epochs), "wall_seconds": side["wall_seconds"]}


# --------------------------------------------------------------------------- outputs
def plot(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7.5))
    axes = fig.subplots(2, 2)
    sides = [(n, results["sides"][n]) for n in ("reference", "ours") if n in results["sides"]]
    for name, side in sides:
        colour = SIDE_COLOURS[name]
        epochs = [r["epoch"] for r in side["epochs"]]
        axes[0][0].plot(epochs, [r["loss"] for r in side["epochs"]], "-o", color=colour, label=f"{name} total")
        axes[0][0].plot(epochs, [r["bpr"] for r in side["epochs"]], "--", color=colour, label=f"{name} BPR")
        marks = [r for r in side["epochs"] if "valid" in r]
        for metric, style in (("recall@20", "-o"), ("ndcg@20", "--s")):
            axes[0][1].plot([r["epoch"] for r in marks], [r["valid"][metric] for r in marks], style, color=colour,
                            markersize=4, label=f"{name} {metric}")
        axes[1][0].plot(epochs, [r["train_seconds"] for r in side["epochs"]], "-o", color=colour, label=f"{name} wall")
        axes[1][0].plot(epochs, [r["train_cpu_seconds"] for r in side["epochs"]], "--", color=colour,
                        label=f"{name} CPU")
        samples = side["load_average"]["during_1min"]["samples"]
        axes[1][1].plot([t for t, _ in samples], [v for _, v in samples], color=colour, label=name)
    titles = ("mean training loss per epoch", "valid Recall@20 / NDCG@20",
              f"training seconds per epoch ({results['threads']} threads)", "1-minute load average while running")
    xlabels = ("epoch", "epoch", "epoch", "seconds since the side started")
    for axis, title, xlabel in zip((a for row in axes for a in row), titles, xlabels):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(xlabel)
        axis.legend(fontsize=8)
    fig.suptitle(f"REARM parity, commit {results['commit']}: {results.get('verdict', 'our side only')}")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def seed_means(runs: list[dict]) -> dict:
    """Both codes over several seeds: per checkpoint, each side's mean valid Recall@20, the gap
    between the means and the verdict on it, and each side's spread after the last epoch.

    ``runs`` are full comparisons (results with ``comparison``) of the same input, hyper-parameters
    and epochs at different seeds. A single seed's gap mixes the two codes' difference with the
    seed-to-seed variation of each code; the mean over seeds shrinks the latter.
    """
    if len({seeded["seed"] for seeded in runs}) != len(runs) or len(runs) < 2:
        raise ValueError(f"seed_means needs runs at two or more distinct seeds, got {[r['seed'] for r in runs]}")
    runs = sorted(runs, key=lambda seeded: seeded["seed"])
    tables = [seeded["comparison"]["checkpoints"] for seeded in runs]
    epochs = [row["epoch"] for row in tables[0]]
    if any([row["epoch"] for row in table] != epochs for table in tables):
        raise ValueError("seed_means needs runs compared at the same checkpoints")
    rows = []
    for position, epoch in enumerate(epochs):
        reference = float(np.mean([table[position]["reference_recall@20"] for table in tables]))
        ours = float(np.mean([table[position]["ours_recall@20"] for table in tables]))
        gap = ours / reference - 1
        rows.append({"epoch": epoch, "reference_recall@20": reference, "ours_recall@20": ours, "recall_gap": gap,
                     "seed_gaps": [table[position]["recall_gap"] for table in tables],
                     "within_tolerance": abs(gap) <= TOLERANCE})
    spread = {side: [table[-1][f"{side}_recall@20"] for table in tables] for side in ("reference", "ours")}
    return {"seeds": [seeded["seed"] for seeded in runs], "threads": [seeded["threads"] for seeded in runs],
            "commits": [seeded["commit"] for seeded in runs], "checkpoints": rows,
            "last_epoch_spread": {side: {"min": min(v), "max": max(v), "range": max(v) / min(v) - 1}
                                  for side, v in spread.items()},
            "verdict": "PASS" if all(row["within_tolerance"] for row in rows) else "FAIL"}


def _seed_runs_phrase(seeds, threads, commits) -> str:
    """'2025: 2 threads, commit abc1234, 2026: 1 thread, commit …' for README lines."""
    return ", ".join(f"{s}: {t} thread{'s' if t != 1 else ''}, commit {c}" for s, t, c in zip(seeds, threads, commits))


def seed_means_lines(intro: str, means: dict, epochs: int) -> list[str]:
    """README lines for :func:`seed_means`: ``intro``, each seed's gap and the gap of the means
    per checkpoint, each side's spread after the last epoch and the verdict on the means."""
    lines = ["", intro + " (seeds " + _seed_runs_phrase(means["seeds"], means["threads"], means["commits"])
             + "): each seed's gap, and the gap between the two codes' means over the seeds.", "",
             "| epoch | " + " | ".join(f"gap seed {s}" for s in means["seeds"])
             + " | reference mean R@20 | ours mean R@20 | gap of the means |",
             "|---|" + "---|" * (len(means["seeds"]) + 3)]
    for row in means["checkpoints"]:
        lines.append(f"| {row['epoch']} | " + " | ".join(f"{g:+.1%}" for g in row["seed_gaps"])
                     + f" | {row['reference_recall@20']:.4f} | {row['ours_recall@20']:.4f} | "
                     f"{row['recall_gap']:+.1%} |")
    spread = means["last_epoch_spread"]
    lines += ["", f"After epoch {epochs} the seeds spread the reference's valid Recall@20 over "
              f"{spread['reference']['min']:.4f} to {spread['reference']['max']:.4f} "
              f"({spread['reference']['range']:.1%}) and ours over {spread['ours']['min']:.4f} to "
              f"{spread['ours']['max']:.4f} ({spread['ours']['range']:.1%}). Seed means within "
              f"±{TOLERANCE:.0%} at every checkpoint: **{means['verdict']}** (largest "
              f"{max(abs(r['recall_gap']) for r in means['checkpoints']):.1%}; mean of the gaps from epoch "
              f"{means['checkpoints'][len(means['checkpoints']) // 2]['epoch']} on "
              f"{np.mean([r['recall_gap'] for r in means['checkpoints'][len(means['checkpoints']) // 2:]]):+.1%})."]
    return lines


def identical_start_lines(runs: list[dict]) -> list[str]:
    """README lines for the --same-init --reference-ties runs: the two codes from the same parameters
    and graphs, so a gap holds only the effect of their different random draws; each seed's gap per
    checkpoint and the verdict of each seed."""
    runs = sorted(runs, key=lambda seeded: seeded["seed"])
    tables = [seeded["comparison"]["checkpoints"] for seeded in runs]
    gaps = [abs(row["recall_gap"]) for table in tables for row in table]
    lines = ["", "With `--same-init --reference-ties`, our side from the reference's initial parameters and with its "
             "co-occurrence neighbour sets, so that the two codes start from the same parameters and graphs and "
             "differ only in their random draws: negatives, dropout masks, batch order (seeds "
             + _seed_runs_phrase(*zip(*[(r["seed"], r["threads"], r["commit"]) for r in runs])) + "): each seed's gap.",
             "",
             "| epoch | " + " | ".join(f"gap seed {r['seed']}" for r in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for position, row in enumerate(tables[0]):
        lines.append(f"| {row['epoch']} | " + " | ".join(f"{table[position]['recall_gap']:+.1%}" for table in tables)
                     + " |")
    lines += ["", "Largest gap " + f"{max(gaps):.1%}; every checkpoint within ±{TOLERANCE:.0%}: "
              + ", ".join(f"seed {r['seed']} **{r['verdict']}**" for r in runs) + "."]
    return lines


def companions(results: dict, same_init: dict | None, seed_runs: list[dict], tie_runs: list[dict] = (),
               identical_start: list[dict] = ()) -> list[str]:
    """The --same-init run of the same command, the runs with --same-init and --reference-ties
    (identical parameters and graphs: only the random draws differ), both codes at other seeds (the
    seed means), the --reference-ties runs (the seed means with the reference's neighbour sets),
    and our side alone at other seeds (its spread)."""
    lines = []
    if same_init and "comparison" in same_init and not results["same_init"]:
        rows = same_init["comparison"]["checkpoints"]
        lines += ["", f"With `--same-init` (commit {same_init['commit']}; our side from the reference's initial "
                  "parameters, everything else the same): gap per checkpoint "
                  + ", ".join(f"{r['epoch']}: {r['recall_gap']:+.1%}" for r in rows)
                  + f"; largest {max(abs(r['recall_gap']) for r in rows):.1%}: **{same_init['verdict']}**."]
    if identical_start and not results["same_init"]:
        lines += identical_start_lines(identical_start)
    compared = [seeded for seeded in seed_runs if "comparison" in seeded]
    if compared and "comparison" in results and not results["same_init"]:
        lines += seed_means_lines("Both codes at other seeds, same input and hyper-parameters",
                                  seed_means([results, *compared]), results["epochs"])
    if len(tie_runs) >= 2:
        lines += seed_means_lines("With `--reference-ties`, our side keeping the reference's top-k co-occurrence "
                                  "neighbour sets (ties at the k-th count broken as there), everything else as above",
                                  seed_means(list(tie_runs)), results["epochs"])
    alone = [seeded for seeded in seed_runs if "comparison" not in seeded]
    if alone:
        last = results["epochs"]
        by_seed = sorted((other["seed"], next(r["valid"]["recall@20"] for r in other["sides"]["ours"]["epochs"]
                                            if r["epoch"] == last and "valid" in r)) for other in alone)
        commits = ", ".join(sorted({other["commit"] for other in alone}))
        own = next(r["valid"]["recall@20"] for r in results["sides"]["ours"]["epochs"]
                   if r["epoch"] == last and "valid" in r)
        values = [own] + [v for _, v in by_seed]
        lines += ["", f"Our side alone at other seeds (commit {commits}; same input and hyper-parameters; the spread "
                  "one seed change makes): "
                  f"valid Recall@20 after epoch {last} "
                  + ", ".join(f"seed {seed} {value:.4f}" for seed, value in by_seed)
                  + f", against {own:.4f} at seed {results['seed']}; range {min(values):.4f} to {max(values):.4f} "
                  f"({max(values) / min(values) - 1:.1%})."]
    return lines


def markdown(results: dict, same_init: dict | None = None, seed_runs: list[dict] = (),
             tie_runs: list[dict] = (), identical_start: list[dict] = ()) -> str:
    data = results["data"]
    lines = [BEGIN, "## REARM against the reference code (`rearm_parity.py`)", "",
             f"Commit {results['commit']}, {results['date']}; reference code "
             f"MrShouxingMa/REARM {results.get('reference_commit', REFERENCE_COMMIT)} under "
             f"`{results.get('reference_python', 'n/a')}`. Input (both sides read the same files): the "
             f"{data['n_items_requested']:,} most popular Sports items and their users with at least "
             f"{data['min_train']} train interactions and a valid and a test interaction among them "
             f"({data['users']:,} users, {data['items']:,} items, {data['train']:,} train interactions), real "
             f"384-d text features and seeded 4096-d stand-in image features. The reference README's Sports "
             f"hyper-parameters, seed {results['seed']}, {results['threads']} threads on a "
             f"{results['cpu_count']}-CPU machine, {results['epochs']} epochs without early stopping; our side "
             f"trains the user-interest tables as the reference does"
             f"{' and starts from the reference initial parameters (--same-init)' if results['same_init'] else ''}. "
             f"Pass: every valid Recall@20 of ours within ±{TOLERANCE:.0%} of the reference's at our evaluation "
             f"epochs (every {EVAL_EVERY}).", ""]
    if "comparison" in results:
        lines += ["| epoch | reference R@20 | ours R@20 | gap | reference N@20 | ours N@20 |",
                  "|---|---|---|---|---|---|"]
        for row in results["comparison"]["checkpoints"]:
            lines.append(f"| {row['epoch']} | {row['reference_recall@20']:.4f} | {row['ours_recall@20']:.4f} | "
                         f"{row['recall_gap']:+.1%} | {row['reference_ndcg@20']:.4f} | {row['ours_ndcg@20']:.4f} |")
        lines += ["", f"**{results['verdict']}**.", ""]
    lines += ["| side | s/epoch (wall, median) | CPU s/epoch (median) | setup s | peak RSS MB | "
              "load before / during (mean, max) / after |", "|---|---|---|---|---|---|"]
    for name, side in results["sides"].items():
        t, load = side["timing"], side["load_average"]
        lines.append(f"| {name} | {t['median_epoch_seconds']:.2f} | {t['median_epoch_cpu_seconds']:.2f} | "
                     f"{t['setup_seconds']:.1f} | {t['peak_rss_mb']:.0f} | {load['before'][0]} / "
                     f"{load['during_1min']['mean']}, {load['during_1min']['max']} / {load['after'][0]} |")
    if "reference" in results["sides"]:
        ref, own = results["sides"]["reference"]["timing"], results["sides"]["ours"]["timing"]
        wall, cpu = ref["median_epoch_seconds"] / own["median_epoch_seconds"], \
            ref["median_epoch_cpu_seconds"] / own["median_epoch_cpu_seconds"]
        lines += ["", f"Our epoch is {wall:.1f}x faster than the reference's in wall time ({cpu:.1f}x in CPU time); "
                  f"goal {SPEED_GOAL:g}x: {'met' if wall >= SPEED_GOAL else 'NOT met'}."]
    lines += companions(results, same_init, seed_runs, tie_runs, identical_start)
    if "neighbours" in results:
        parts = [f"{kind} {v['share_differing']:.1%} of {v['rows_with_neighbours']:,} rows (k = {v['k']}; "
                 f"{v['other']} not explained by a tie)" for kind, v in results["neighbours"].items()]
        lines += ["", "Accepted difference, ties at the k-th co-occurrence count broken differently: the top-k "
                  "neighbour sets differ for " + "; ".join(parts) + "."]
    lines += ["", "The reference needs its own interpreter: `python3 -m venv refenv && refenv/bin/pip install "
              "\"numpy<1.24\" \"scipy==1.11.*\" \"torch==2.*\" tqdm matplotlib tensorboardX` (a CPU build of torch "
              "suffices), then `python bench/rearm_parity.py --reference REARM_CHECKOUT --reference-python "
              "refenv/bin/python`. The script's docstring lists the compatibility edits it applies to a "
              "temporary copy of the reference. Plot: `results/rearm_parity.png`.", "", END]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="checkout of github MrShouxingMa/REARM (commit 6502a00); "
                        "omitted: our side only")
    parser.add_argument("--reference-python", default=None,
                        help="interpreter for the reference (see the docstring for how to make one)")
    parser.add_argument("--source", type=Path, default=SHARED_DATA / "amazon" / "sports",
                        help="REARM split folder with text_feat.npy to take the input from")
    parser.add_argument("--items", type=int, default=3000, help="most popular items kept")
    parser.add_argument("--min-train", type=int, default=5, help="train interactions a kept user keeps")
    parser.add_argument("--image-dim", type=int, default=4096, help="columns of the stand-in image features")
    parser.add_argument("--epochs", type=int, default=45)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--same-init", action="store_true",
                        help="start our side from the reference's initial parameters (needs --reference)")
    parser.add_argument("--reference-ties", action="store_true",
                        help="our side keeps the reference's top-k co-occurrence neighbour sets (ties broken as "
                             "there; needs --reference)")
    parser.add_argument("--work", type=Path, default=None, help="keep inputs, logs and the reference copy here")
    parser.add_argument("--out", type=Path, default=OUT, help="results JSON (the plot goes beside it, .png)")
    parser.add_argument("--no-readme", action="store_true", help="do not write the bench/README.md section")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the README section from --out, the --same-init results and the "
                             f"{SEED_RUNS} runs at other seeds and the {TIE_RUNS} runs")
    parser.add_argument("--ours-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--init-from", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--neighbours-from", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference is not None and not args.reference_python:
        parser.error("--reference needs --reference-python (an interpreter with the reference's packages)")
    if args.same_init and args.reference is None:
        parser.error("--same-init needs --reference (it starts our side from the reference's initial parameters)")
    if args.reference_ties and args.reference is None:
        parser.error("--reference-ties needs --reference (it reads the neighbour lists the reference saves)")
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be positive")
    return args


def run(args) -> dict:
    from recsys.compose import resolve

    work = args.work or Path(tempfile.mkdtemp(prefix="rearm_parity_"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    subset = build_parity_dataset(args.source, data, n_items=args.items, min_train=args.min_train,
                                  image_dim=args.image_dim, seed=0, name=DATASET_NAME)
    config = resolve(ours_config(data, args.epochs, args.seed, args.threads, args.device, work / "ours_runs"))
    results = {"commit": commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "threads": args.threads, "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "epochs": args.epochs, "seed": args.seed, "device": args.device, "eval_every": EVAL_EVERY,
               "same_init": args.same_init, "reference_ties": args.reference_ties,
               "data": {"source": str(args.source), "n_items_requested": args.items, "min_train": args.min_train,
                        "image_dim": args.image_dim, "image_seed": 0, **{k: subset.stats()[k] for k in
                                                                          ("users", "items", "train", "valid", "test")}},
               "config": {"model": config["model"], "train": config["train"]}, "sides": {}}
    env = thread_env(args.threads)
    if args.reference is not None:
        flags = reference_hyper_parameters(config, readme_sports_flags(args.reference / "README.md"))
        command = reference_command(args.reference_python, flags, args.epochs, args.seed, args.device)
        log, initial = work / "reference.jsonl", work / "reference_initial_state.pt"
        copy = work / "reference"
        if not finished(log, args.epochs, command):
            prepare_reference(args.reference, data, copy)
        side = run_side("reference", command, copy, {**env, "PARITY_LOG": str(log), "PARITY_INIT": str(initial)},
                        log, work / "reference.out", args.epochs)
        results.update(reference_commit=_git_head(args.reference), reference_python=args.reference_python,
                       reference_edits=[e.__dict__ for e in REFERENCE_EDITS])
        results["sides"]["reference"] = side
    log = work / "ours.jsonl"
    command = [sys.executable, str(Path(__file__).resolve()), "--ours-worker", "--data", str(data),
               "--epochs", str(args.epochs), "--seed", str(args.seed), "--threads", str(args.threads),
               "--device", args.device, "--log", str(log), "--run-dir", str(work / "ours_run"),
               *(["--init-from", str(work / "reference_initial_state.pt")] if args.same_init else []),
               *(["--neighbours-from", str(work / "reference" / "data" / DATASET_NAME)] if args.reference_ties
                 else [])]
    shutil.rmtree(work / "ours_run", ignore_errors=True)
    results["sides"]["ours"] = run_side("ours", command, REPO, {**env, "PYTHONPATH": str(REPO)}, log,
                                        work / "ours.out", args.epochs)
    for side in results["sides"].values():
        side["timing"] = timing(side)
    if args.reference is not None:
        results["comparison"] = compare(results["sides"]["reference"]["epochs"], results["sides"]["ours"]["epochs"],
                                        args.epochs)
        results["verdict"] = results["comparison"]["verdict"]
        results["neighbours"] = neighbour_agreement(work / "reference", data, int(config["model"]["user_knn_k"]),
                                                    int(config["model"]["item_knn_k"]))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _git_head(path: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"unknown (not a git checkout; {REFERENCE_COMMIT} expected)"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ours_worker:
        run_ours_worker(args)
        return 0
    if args.report:
        results = read_json(args.out, None)
        if results is None:
            raise SystemExit(f"{args.out} does not exist: run the comparison first")
    else:
        results = run(args)
        io.write_json(args.out, results)
        plot(results, args.out.with_suffix(".png"))
    seed_runs = [read_json(p, None) for p in sorted(RESULTS.glob(SEED_RUNS)) if p.resolve() != args.out.resolve()]
    seed_runs = [seeded for seeded in seed_runs if seeded["seed"] != results["seed"]]
    if not args.no_readme:
        tie_runs = [read_json(p, None) for p in sorted(RESULTS.glob(TIE_RUNS))]
        write_readme_section(markdown(results, read_json(SAME_INIT, None), seed_runs, tie_runs,
                                      [read_json(p, None) for p in sorted(RESULTS.glob(IDENTICAL_START_RUNS))]),
                             BEGIN, END)
    for row in results.get("comparison", {}).get("checkpoints", []):
        print(f"epoch {row['epoch']:3d}  valid R@20 reference {row['reference_recall@20']:.4f}  "
              f"ours {row['ours_recall@20']:.4f}  gap {row['recall_gap']:+.1%}")
    for row in results.get("comparison", {}).get("losses", []):
        print(f"epoch {row['epoch']:3d}  loss ours/reference - 1: total {row.get('loss_gap', math.nan):+.2%}, "
              f"BPR {row.get('bpr_gap', math.nan):+.2%}")
    for name, side in results["sides"].items():
        t = side["timing"]
        print(f"{name}: {t['median_epoch_seconds']:.2f} s/epoch wall, {t['median_epoch_cpu_seconds']:.2f} CPU s/epoch "
              f"(median), setup {t['setup_seconds']:.1f} s")
    print(results.get("verdict", "our side only: no comparison (give --reference)"))
    compared = [seeded for seeded in seed_runs if "comparison" in seeded]
    if compared and "comparison" in results and not results["same_init"]:
        means = seed_means([results, *compared])
        for row in means["checkpoints"]:
            print(f"epoch {row['epoch']:3d}  mean over seeds {means['seeds']}: "
                  f"reference {row['reference_recall@20']:.4f}  ours {row['ours_recall@20']:.4f}  "
                  f"gap {row['recall_gap']:+.1%}")
        print(f"seed means: {means['verdict']}")
    return 0 if results.get("verdict", "PASS") == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
