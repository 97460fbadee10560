"""`verify` on real models (issue 9 #2, issue 10 #5): the genuine embedding passes, another
model's embedding and an all-ones vector fail.

The demo zoo's ImageNet models under a tiny custom standard (MobileNetV2 baseline, 200
scikit-learn digits, 300 steps of P), published card-only in a directory registry and checked
with ``--model``. Thresholds are verify's defaults (measured by benchmarks/verify_thresholds.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from model_repos import card_only_files, write_repo

from hf_stdembed import demo
from hf_stdembed.embeddings import ModelEmbedding
from hf_stdembed.pipeline import compute_model_embedding
from hf_stdembed.standards import ProbeSpec

pytestmark = pytest.mark.slow

MOBILENET = "hf_stdembed.zoo.mobilenet_v2:pretrained_128"
EFFICIENTNET = "hf_stdembed.zoo.efficientnet_lite:pretrained_128"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("sklearn")
    folder = tmp_path_factory.mktemp("verify-zoo")
    files = demo.write_digits(folder)
    standard = demo.demo_standard(files["probe"])
    standard = dataclasses.replace(
        standard,
        id="tiny-zoo-digits",
        probe=dataclasses.replace(standard.probe, num_samples=200),
        model_embedding=dataclasses.replace(standard.model_embedding, steps=300, lr_step=75),
    )
    assert isinstance(standard.probe, ProbeSpec)
    standard_file = folder / "tiny-zoo-digits.yaml"
    standard_file.write_text(standard.to_yaml())
    return {
        "standard_file": standard_file,
        "efficientnet": compute_model_embedding(EFFICIENTNET, standard),
    }


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    return root


def publish(root: Path, repo_id: str, embedding: ModelEmbedding) -> None:
    write_repo(root, repo_id, card_only_files(embedding, repo_id=repo_id))


def test_genuine_embedding_of_a_real_model_passes(zoo: dict, registry: Path, verify):
    publish(registry, "zoo/efficientnet", zoo["efficientnet"])
    done = verify(
        "zoo/efficientnet", "-s", zoo["standard_file"], "--registry", registry,
        "--model", EFFICIENTNET, "-q",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "verdict: pass" in done.stdout


def test_another_models_embedding_fails(zoo: dict, registry: Path, verify):
    # issue 9 #2: EfficientNet-Lite0's embedding in MobileNetV2's repo passed (Jaccard 0.997)
    publish(registry, "zoo/mobilenet", zoo["efficientnet"])
    done = verify(
        "zoo/mobilenet", "-s", zoo["standard_file"], "--registry", registry,
        "--model", MOBILENET, "-q",
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    assert "verdict: FAIL (mask)" in done.stdout
    errors = done.error_lines
    assert len(errors) == 1 and "recomputed mask agrees" in errors[0]


def test_all_ones_vector_claiming_full_fidelity_fails(zoo: dict, registry: Path, verify):
    # issue 10 #5: an all-ones vector with fidelity 1.0 ranked first in 19 of 20 tasks
    forged = dataclasses.replace(
        zoo["efficientnet"],
        vector=torch.ones_like(zoo["efficientnet"].vector),
        l_to=1.0,
        l_from=1.0,
    )
    publish(registry, "zoo/forged", forged)
    done = verify(
        "zoo/forged", "-s", zoo["standard_file"], "--registry", registry,
        "--model", EFFICIENTNET, "-q",
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    assert "verdict: FAIL (fidelity, mask)" in done.stdout
    assert "short of the 1.0000 claimed" in done.error_lines[0]
