"""Feature extractors: a candidate model seen as a function from images to features.

:func:`load_extractor` turns a model spec into a :class:`FeatureExtractor`. A spec names its
source with a prefix, as timm does with ``hf-hub:``:

- ``timm:<repo id or dir>``: a timm model (``config.json`` with ``architecture``).
- ``transformers:<repo id or dir>``: a transformers image model and its image processor.
- ``entrypoint:<module>:<function>`` (or bare ``<module>:<function>``): a function returning
  a :class:`FeatureExtractor`.
- no prefix: a directory or Hub repo whose ``config.json`` tells timm from transformers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from PIL import Image

from hf_stdembed.errors import ModelLoadError

from .weight_files import WEIGHT_SUFFIXES, check_weight_files, weights_hash


@dataclass
class FeatureExtractor:
    """A model as a feature function ``X -> R^n`` with its own preprocessing.

    Attributes:
        name: canonical spec of the model (``timm:org/name``, ``transformers:./dir``,
            ``entrypoint:pkg.mod:func``...). Part of every cache key.
        revision: commit sha / version of the weights, or ``None`` when unknown.
        transform: the model's own preprocessing, one PIL image to a ``(C, H, W)`` tensor.
        forward: a batch ``(B, C, H, W)`` to penultimate (pre-logits) features ``(B, n)``.
        preprocessing: a stable text description of ``transform`` (part of cache keys).
        module: the ``torch.nn.Module`` behind ``forward`` when there is one (moved to the
            device and put in eval mode by the feature pipeline); ``None`` otherwise.
        metadata: free-form facts worth recording (library, architecture...).
    """

    name: str
    revision: str | None
    transform: Callable[[Image.Image], torch.Tensor]
    forward: Callable[[torch.Tensor], torch.Tensor]
    preprocessing: str
    module: torch.nn.Module | None = None
    metadata: dict[str, str] = field(default_factory=dict)


SOURCES = ("timm", "transformers", "entrypoint")
"""Spec prefixes understood by :func:`load_extractor`."""

_ENTRYPOINT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_TIMM_WEIGHTS = "model.safetensors"
_MISSING_KEYS_RE = re.compile(r"Missing key\(s\) in state_dict: ([^\n]*?)(?:\. |\.?$)", re.M)


@dataclass(frozen=True)
class _Location:
    """Where a model's files are, and which weights they are."""

    # the model directory (local, or a Hub snapshot) or ``None`` for a Hub repo not downloaded
    path: Path | None
    # the Hub repo id, or ``None`` for a local directory
    repo_id: str | None
    # commit sha (Hub) or weights hash (local dir)
    revision: str | None
    # the parsed config.json
    config: dict[str, Any]


def load_extractor(
    spec: str, *, revision: str | None = None, token: str | bool | None = None
) -> FeatureExtractor:
    """Load a model spec as a feature extractor.

    Args:
        spec (`str`): ``timm:<repo or dir>``, ``transformers:<repo or dir>``,
            ``entrypoint:<module>:<function>``, ``<module>:<function>``, or a bare repo id or
            directory whose ``config.json`` says which library it belongs to.
        revision (`str`, *optional*): Hub branch, tag or commit. Resolved to a commit sha.
            Only for Hub repos.
        token (`str` or `bool`, *optional*): Hub token, as in ``huggingface_hub``.

    Returns:
        `FeatureExtractor`: its ``revision`` is the commit sha for Hub repos, the first 16 hex
        chars of the sha256 of the weight files for local directories, and whatever the
        function returned for entry points.

    Raises:
        ModelLoadError: the spec is malformed, or the model cannot be found or loaded (the
            message says how to fix it).

    Example:
        ```py
        >>> extractor = load_extractor("timm:timm/resnet18.a1_in1k")
        >>> extractor.forward(extractor.transform(image)[None]).shape
        torch.Size([1, 512])
        ```
    """
    source, target = parse_spec(spec)
    if source == "entrypoint":
        if revision is not None:
            raise ModelLoadError("a revision applies to Hub repos, not entry points", spec=spec)
        return _load_entrypoint(target, spec=spec)
    with _hub_errors(spec):
        location = _locate(target, revision=revision, token=token, spec=spec)
    detected = _resolve_source(location.config, source, spec=spec)
    if detected == "timm":
        return _load_timm(location, token=token, spec=spec)
    return _load_transformers(location, token=token, spec=spec)


def parse_spec(spec: str) -> tuple[str | None, str]:
    """Split a model spec into its source prefix and target.

    Args:
        spec (`str`): the model spec.

    Returns:
        `tuple[str | None, str]`: the source (one of :data:`SOURCES`, or ``None`` when the spec
        has no prefix) and the rest of the spec.

    Raises:
        ModelLoadError: the spec is empty or has a known prefix and nothing after it.
    """
    if not spec.strip():
        raise ModelLoadError("empty model spec", spec=spec)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in SOURCES:
        if not rest:
            raise ModelLoadError(
                f"nothing after the '{prefix}:' prefix; write {prefix}:org/name or"
                f" {prefix}:./folder",
                spec=spec,
            )
        return prefix, rest
    if _ENTRYPOINT_RE.match(spec):
        return "entrypoint", spec
    return None, spec


# --- locating files ---------------------------------------------------------------------


def _locate(target: str, *, revision: str | None, token: str | bool | None, spec: str) -> _Location:
    """Find a model's config and revision in a local directory or a Hub repo."""
    path = Path(target).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ModelLoadError(
                f"revision {revision!r} given for a local directory; revisions apply to Hub repos",
                spec=spec,
            )
        path = path.resolve()
        config = _read_config(path / "config.json", spec)
        revision = weights_hash(path)
        if revision is None:
            raise ModelLoadError(
                f"no weight file ({', '.join('*' + s for s in WEIGHT_SUFFIXES)}) in {path}",
                spec=spec,
            )
        return _Location(path, None, revision, config)
    if path.exists():
        raise ModelLoadError(
            f"{target} is a file, not a model folder: give the folder holding config.json and"
            " the weights, or a Hub repo id (org/name)",
            spec=spec,
        )
    problem = _not_a_repo_id(target)
    if problem is not None:
        raise ModelLoadError(problem, spec=spec)
    config_file = hf_hub_download(
        target, "config.json", revision=revision, token=token, **_library_info()
    )
    sha = _commit_of(config_file)
    if sha is None:  # not in the usual cache layout: ask the Hub
        # the sha only: a full answer's card data is parsed by ModelCardData, which raises
        # TypeError on a stranger's `tags: 5`
        sha = HfApi().model_info(target, revision=revision, token=token, expand=["sha"]).sha
    return _Location(None, target, sha, _read_config(Path(config_file), spec))


def _not_a_repo_id(target: str) -> str | None:
    """Why ``target`` (no folder of that name exists) is not a Hub repo id either, or None."""
    if target.startswith((".", "/", "~")) or "\\" in target:
        return f"no folder {target}; for a Hub repo write org/name"
    if target.count("/") > 1:
        return (
            f"no folder {target}, and a Hub repo id has one '/' (org/name): not a model"
            " directory nor a Hub repo id"
        )
    try:
        validate_repo_id(target)
    except HFValidationError:
        return (
            f"no folder {target!r}, and a Hub repo id holds only letters, digits, '-', '_' and"
            " '.' (org/name): not a model directory nor a Hub repo id"
        )
    return None


def _commit_of(cached_file: str) -> str | None:
    """The commit sha of a file in the Hub cache (``.../snapshots/<sha>/<file>``)."""
    parent = Path(cached_file).parent
    return parent.name if _COMMIT_RE.match(parent.name) else None


def _read_config(path: Path, spec: str) -> dict[str, Any]:
    """Parse a ``config.json``."""
    if not path.is_file():
        raise ModelLoadError(
            f"no config.json in {path.parent}; expected a timm or transformers model directory",
            spec=spec,
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}", spec=spec) from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object", spec=spec)
    return config


def _resolve_source(config: dict[str, Any], source: str | None, *, spec: str) -> str:
    """The library of a config: timm has ``architecture``, transformers ``model_type``."""
    detected = (
        "timm" if "architecture" in config else "transformers" if "model_type" in config else None
    )
    if detected is None:
        hint = (
            f"it is not a {source} model directory"
            if source
            else "prefix the spec with 'timm:' or 'transformers:'"
        )
        raise ModelLoadError(
            f"config.json has neither 'architecture' (timm) nor 'model_type' (transformers):"
            f" {hint}, or wrap the model in an entry point ('entrypoint:module:function')",
            spec=spec,
        )
    if source is not None and source != detected:
        raise ModelLoadError(
            f"config.json describes a {detected} model; use the '{detected}:' prefix", spec=spec
        )
    return detected


# --- timm -------------------------------------------------------------------------------


def _load_timm(location: _Location, *, token: str | bool | None, spec: str) -> FeatureExtractor:
    """A timm model (pooled pre-logits features) and its eval transform."""
    import timm
    import timm.data

    architecture = str(location.config.get("architecture"))
    if not timm.is_model(architecture):
        raise ModelLoadError(
            f"timm {timm.__version__} has no architecture {architecture!r}; upgrade timm"
            " (pip install -U timm)",
            spec=spec,
        )
    model_dir = location.path
    if model_dir is None:
        with _hub_errors(spec):
            model_dir = Path(
                snapshot_download(
                    location.repo_id,
                    revision=location.revision,
                    token=token,
                    allow_patterns=["config.json", _TIMM_WEIGHTS],
                    **_library_info(),
                )
            )
        if not (model_dir / _TIMM_WEIGHTS).is_file():
            raise ModelLoadError(
                f"the repo has no {_TIMM_WEIGHTS}; timm models are loaded from safetensors weights",
                spec=spec,
            )
    check_weight_files(model_dir, spec=spec)
    try:
        # built with the checkpoint's own classifier so that timm loads the weights strictly
        # (with num_classes=0 it drops the classifier and loads whatever matches, leaving any
        # missing tensor random); the classifier is removed afterwards
        model = timm.create_model(f"local-dir:{model_dir}", pretrained=True)
    except Exception as e:
        missing = _MISSING_KEYS_RE.search(str(e))
        if missing:
            keys = re.findall(r'"([^"]+)"', missing.group(1))
            raise ModelLoadError(
                f"the weights lack {len(keys)} of the model's tensors ({', '.join(keys[:3])}"
                f"{', ...' if len(keys) > 3 else ''}), which would be random; check that"
                f" {_TIMM_WEIGHTS} holds a complete {architecture} checkpoint",
                spec=spec,
            ) from e
        raise ModelLoadError(
            f"timm could not build {architecture!r}: {type(e).__name__}: {e}", spec=spec
        ) from e
    model.reset_classifier(0)
    model.eval()
    data_config = timm.data.resolve_data_config({}, model=model)
    pipeline = timm.data.create_transform(**data_config, is_training=False)
    mode = "L" if data_config["input_size"][0] == 1 else "RGB"
    return FeatureExtractor(
        name=f"timm:{location.repo_id or model_dir}",
        revision=location.revision,
        transform=partial(_convert_then, mode, pipeline),
        forward=partial(_timm_forward, model),
        preprocessing=json.dumps(data_config, sort_keys=True),
        module=model,
        metadata={
            "library": "timm",
            "architecture": architecture,
            "num_features": str(model.num_features),
        },
    )


def _timm_forward(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features of a timm model built with ``num_classes=0``."""
    model.eval()
    return model(pixels).float().flatten(1)


# --- transformers -----------------------------------------------------------------------


def _load_transformers(
    location: _Location, *, token: str | bool | None, spec: str
) -> FeatureExtractor:
    """A transformers image model (pooled or mean-pooled features) and its image processor."""
    from transformers import AutoImageProcessor, AutoModel

    where = str(location.path) if location.path is not None else location.repo_id
    _refuse_custom_code(location.config, spec=spec)
    if location.path is not None:
        check_weight_files(location.path, spec=spec)
    # never run a repo's own code, and never let transformers ask whether to (a 15 s prompt)
    options = {"token": token, "trust_remote_code": False}
    if location.repo_id is not None:
        options["revision"] = location.revision
    try:
        with _hub_errors(spec):
            model, loading = AutoModel.from_pretrained(where, output_loading_info=True, **options)
            processor = AutoImageProcessor.from_pretrained(where, **options)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(
            f"transformers could not load it as an image model with an image processor: {e}",
            spec=spec,
        ) from e
    missing = sorted(loading.get("missing_keys", ()))
    # a pooler absent from the checkpoint is freshly (randomly) initialised: pool by mean
    untrained_pooler = any("pooler" in key for key in missing)
    untrained = [key for key in missing if "pooler" not in key]
    if untrained:
        raise ModelLoadError(
            f"the checkpoint lacks {len(untrained)} weights of {type(model).__name__}"
            f" ({', '.join(untrained[:3])}...), which would be random; check that the repo holds"
            " a complete image model",
            spec=spec,
        )
    model.eval()
    channels = getattr(model.config, "num_channels", 3)
    return FeatureExtractor(
        name=f"transformers:{where}",
        revision=location.revision,
        transform=partial(
            _convert_then, "L" if channels == 1 else "RGB", partial(_pixels, processor)
        ),
        forward=partial(_transformers_forward, model, use_pooler=not untrained_pooler),
        preprocessing=processor.to_json_string(),
        module=model,
        metadata={
            "library": "transformers",
            "architecture": type(model).__name__,
            "model_type": str(location.config.get("model_type")),
            "pooling": "mean" if untrained_pooler else "pooler_output, else mean",
        },
    )


def _refuse_custom_code(config: dict[str, Any], *, spec: str) -> None:
    """Refuse a config whose architecture is not built into transformers but comes with the
    repo's own code (``auto_map``): hf-stdembed never runs code from a model repo."""
    from transformers import CONFIG_MAPPING

    if "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING:
        raise ModelLoadError(
            f"the model needs its own code (auto_map in config.json; model_type"
            f" {config.get('model_type')!r} is not built into transformers), which hf-stdembed"
            " never runs; review the code, then wrap the model in an entry point"
            " (entrypoint:module:function)",
            spec=spec,
        )


def _pixels(processor: Any, image: Image.Image) -> torch.Tensor:
    """One image through a transformers image processor, as ``(C, H, W)``."""
    return processor(images=image, return_tensors="pt")["pixel_values"][0]


def _transformers_forward(
    model: torch.nn.Module, pixels: torch.Tensor, *, use_pooler: bool = True
) -> torch.Tensor:
    """``pooler_output`` when the model has one (and ``use_pooler``), else the mean of
    ``last_hidden_state`` over tokens or spatial positions."""
    model.eval()
    output = model(pixel_values=pixels)
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None and use_pooler:
        return pooled.float().flatten(1)
    hidden = output.last_hidden_state
    # (B, tokens, D) for transformers, (B, C, H, W) for convolutional models
    dims = (1,) if hidden.ndim == 3 else tuple(range(2, hidden.ndim))
    return hidden.float().mean(dim=dims).flatten(1)


# --- entry points -----------------------------------------------------------------------


def _load_entrypoint(target: str, *, spec: str) -> FeatureExtractor:
    """Call ``module:function`` and check that it returns a :class:`FeatureExtractor`."""
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not _ENTRYPOINT_RE.match(target):
        raise ModelLoadError(
            "an entry point is written 'entrypoint:package.module:function'", spec=spec
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelLoadError(
            f"cannot import module {module_name!r} ({e}); install the package that provides it"
            " or add its folder to PYTHONPATH",
            spec=spec,
        ) from e
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ModelLoadError(f"module {module_name!r} has no function {function_name!r}", spec=spec)
    try:
        extractor = function()
    except Exception as e:
        raise ModelLoadError(f"entry point raised {type(e).__name__}: {e}", spec=spec) from e
    if not isinstance(extractor, FeatureExtractor):
        raise ModelLoadError(
            f"entry point returned {type(extractor).__name__}, expected a"
            " hf_stdembed.extractors.FeatureExtractor",
            spec=spec,
        )
    return extractor


# --- shared helpers ---------------------------------------------------------------------


def _convert_then(
    mode: str, pipeline: Callable[[Image.Image], torch.Tensor], image: Image.Image
) -> torch.Tensor:
    """Convert an image to the colour mode a model expects, then preprocess it."""
    return pipeline(image if image.mode == mode else image.convert(mode))


@contextlib.contextmanager
def _hub_errors(spec: str) -> Iterator[None]:
    """Turn Hub download errors into :class:`ModelLoadError` saying how to fix them."""
    try:
        yield
    except GatedRepoError as e:
        raise ModelLoadError(
            "the repo is gated: accept its conditions on its Hub page, then log in"
            " (`hf auth login`) or pass a token",
            spec=spec,
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelLoadError(
            "no such Hub repo (if it is private, log in with `hf auth login` or pass a token),"
            " and no local folder of that name",
            spec=spec,
        ) from e
    except RevisionNotFoundError as e:
        raise ModelLoadError(
            "revision not found in the repo; give an existing branch, tag or commit", spec=spec
        ) from e
    except (LocalEntryNotFoundError, IncompleteSnapshotError) as e:
        raise ModelLoadError(
            "the files are not in the local Hub cache and the Hub cannot be reached; connect"
            " (and unset HF_HUB_OFFLINE) or download the model first",
            spec=spec,
        ) from e
    except EntryNotFoundError as e:
        raise ModelLoadError(f"a file is missing from the repo: {e}", spec=spec) from e
    except HfHubHTTPError as e:
        raise ModelLoadError(f"Hub request failed: {e}", spec=spec) from e
    except HFValidationError as e:
        raise ModelLoadError(
            f"not a model folder nor a valid Hub repo id (org/name): {e}", spec=spec
        ) from e


def _library_info() -> dict[str, str]:
    """``library_name`` / ``library_version`` for Hub requests."""
    try:
        version = importlib_metadata.version("hf-stdembed")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    return {"library_name": "hf-stdembed", "library_version": version}
