"""The README's main job: the offline demo, end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_stdembed.embeddings import load_embedding
from hf_stdembed.standards import standard_from_yaml


@pytest.mark.slow
def test_demo_ranks_pretrained_models_above_random_ones(tmp_path: Path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_STDEMBED_CACHE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_stdembed",
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert len(rows) == 4
    assert {r["model"] for r in rows[:2]} == {
        "zoo:mobilenet_v2.tv_in1k@128",
        "zoo:efficientnet_lite0.tf_in1k@128",
    }
    # the ranking agrees with the ground truth: pretrained features probe far better
    accuracy = {r["model"]: float(r["probe accuracy %"]) for r in rows}
    assert (
        min(accuracy[r["model"]] for r in rows[:2])
        > max(accuracy[r["model"]] for r in rows[2:]) + 10
    )

    standard = standard_from_yaml(tmp_path / "demo" / "standard.yaml")
    files = sorted((tmp_path / "demo" / "embeddings").glob("*.safetensors"))
    assert len(files) == 4
    for f in files:
        assert load_embedding(f, standard=standard).standard_hash == standard.hash
    # features are cached under the Hugging Face cache folder
    assert list((tmp_path / "hf" / "stdembed" / "features").glob("*.safetensors"))
