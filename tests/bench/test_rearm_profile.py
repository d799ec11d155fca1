"""bench/rearm_profile.py on a tiny parity input: every stage and floor term is reported, and the
multiply-add counts of the floor are those of the model's dimensions."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import rearm_profile  # noqa: E402
from parity_data import build_parity_dataset  # noqa: E402

from tests.bench.test_rearm_parity import skewed_source  # noqa: E402

STAGES = {"item feature projections", "user interest projections", "item homography", "user homography",
          "attention integration", "heterography", "meta-network and representations", "loss terms",
          "gradient norm", "AdamW step"}


def test_profile_of_a_tiny_input(tmp_path):
    skewed_source(tmp_path / "source")
    build_parity_dataset(tmp_path / "source", tmp_path / "input", n_items=20, min_train=3, image_dim=16, seed=0)
    result = rearm_profile.measure(tmp_path / "input", threads=1, epochs=1, repeats=1)
    users, items = result["input"]["users"], result["input"]["items"]
    assert result["input"]["feature_dims"] == [16, 8]
    assert [e["epoch"] for e in result["epochs"]] == [1] and result["epochs"][0]["train_cpu_seconds"] > 0
    assert set(result["stage_cpu_ms"]) == STAGES and all(v >= 0 for v in result["stage_cpu_ms"].values())
    d, r, widths = 64, 7, 16 + 8  # configs/experiments/rearm_sports.yaml: embedding_size 64, rank 7
    macs = result["dense_multiply_adds"]
    assert macs["item feature projections (forward, weight and table gradients)"] == 3 * items * d * widths
    assert macs["user interest projections"] == 3 * users * d * widths
    assert macs["meta-network (2 heads per node type, every node)"] == \
        2 * (users + items) * (d * d * r + 3 * (d * r) ** 2 + d * r * d)
    assert macs["contrastive logits (forward, two gradients)"] > 0
    floor = result["floor_cpu_seconds"]
    assert set(floor) == {"dense products", "sparse products", "optimizer memory traffic"}
    assert all(v > 0 for v in floor.values())
    assert abs(result["floor_cpu_seconds_total"] - sum(floor.values())) < 1e-3
    assert result["machine"]["gemm_multiply_adds_per_second"] > 0 and result["step_cpu_seconds_median"] > 0
    assert result["profile_one_step"] and result["threads"] == 1
    text = rearm_profile.markdown({"1-thread": {**result, "commit": "abc1234"}})
    assert text.startswith(rearm_profile.BEGIN) and text.endswith(rearm_profile.END)
    assert f"{result['step_over_floor']:.2f}x the floor" in text and "commit abc1234" in text
