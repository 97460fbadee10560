"""Standards: everything that must be equal for two embeddings to be comparable.

A :class:`Standard` fixes the baseline model, the probe distribution D, the preprocessing rule
and every hyper-parameter of P and Q. It has a readable :attr:`Standard.id` and a content
:attr:`Standard.hash`; every embedding records both, and embeddings of different hashes are
never compared.

A **union** standard gives ``baselines:`` (two or more baseline specs, each with the fields of
``baseline:``) instead of ``baseline:``: its coordinates are every baseline's features side by
side, each block standardised with statistics computed over the probe set (dim = the sum of
the blocks' dims). ``model_embedding: {method: r2, ridge: [...], split_seed: 0}`` makes the
model embedding the closed-form held-out ridge R^2 mask of
:func:`~hf_stdembed.core.closed_form.embed_model_r2` instead of P (``method: p``, the
default); r2 is valid with one baseline too. Both are written out only when used, so the
YAML and hash of a one-baseline P standard are what they always were.

Built-in standards are YAML files beside this module (``standards/*.yaml``); users pass
their own as a YAML path wherever a standard id is accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ._hashing import json_digest
from ._yaml import UnsafeYAMLError, load_plain_yaml
from .core import ModelEmbeddingConfig, TaskEmbeddingConfig
from .core.closed_form import R2_METHOD, R2EmbeddingConfig
from .errors import InvalidStandardError, StandardNotFoundError

MAX_STANDARD_BYTES = 1024 * 1024
"""Largest standard YAML file read."""
MAX_BASELINES = 16
"""Most baselines a union standard may list (each is downloaded and run over the probe set
by every embed, task and verify under it)."""
PREPROCESSING_RULES = ("model-default",)
"""``model-default``: each model (baseline and candidates) uses its own preprocessing config
(timm's data config, transformers' image processor, or the entry point's transform)."""


@dataclass(frozen=True)
class BaselineSpec:
    """The public model whose features are the coordinates of every embedding."""

    model: str  # model spec, as `hf-stdembed embed` takes it (e.g. "timm:timm/resnet18.tv_in1k")
    revision: str | None  # pinned commit of the weights
    dim: int  # N, the number of baseline features
    layer: str = "pre_logits"  # which layer gives the features: the pooled penultimate layer


@dataclass(frozen=True)
class ProbeSpec:
    """The probe distribution D: a dataset split and a seeded choice of its samples."""

    dataset: str  # `datasets.load_dataset` path: Hub id, builder name or local path
    split: str
    config: str | None = None
    revision: str | None = None
    data_files: tuple[str, ...] | None = None
    image_column: str | None = None  # detected when None
    num_samples: int | None = None  # None: the whole split
    seed: int = 0  # picks which samples when num_samples is set


@dataclass(frozen=True)
class Standard:
    """A baseline (or a union of baselines), a probe distribution, a preprocessing rule and
    the hyper-parameters.

    ``baseline`` is the first baseline, the only one unless ``more_baselines`` makes the
    standard a union (:attr:`baselines`, in the standard's order)."""

    id: str
    baseline: BaselineSpec
    probe: ProbeSpec
    preprocessing: str = "model-default"
    model_embedding: ModelEmbeddingConfig | R2EmbeddingConfig = field(
        default_factory=ModelEmbeddingConfig
    )
    task_embedding: TaskEmbeddingConfig = field(default_factory=TaskEmbeddingConfig)
    description: str = ""  # free text, not part of the hash
    more_baselines: tuple[BaselineSpec, ...] = ()  # a union's other baselines, in order

    def __post_init__(self) -> None:
        if not self.id or any(c.isspace() for c in self.id):
            raise InvalidStandardError(f"Invalid standard id {self.id!r}: need a non-empty word")
        if self.preprocessing not in PREPROCESSING_RULES:
            raise InvalidStandardError(
                f"Invalid preprocessing rule {self.preprocessing!r}; known: {PREPROCESSING_RULES}"
            )
        for spec in self.baselines:
            if isinstance(spec.dim, bool) or not isinstance(spec.dim, int) or spec.dim <= 0:
                raise InvalidStandardError(
                    f"Invalid baseline dim {spec.dim!r} of {spec.model!r}: give the number of "
                    "features its layer gives (a positive integer)"
                )

    @property
    def baselines(self) -> tuple[BaselineSpec, ...]:
        """Every baseline, in the standard's order (one unless a union)."""
        return (self.baseline, *self.more_baselines)

    @property
    def is_union(self) -> bool:
        """Whether the coordinates are two or more baselines' standardised features."""
        return bool(self.more_baselines)

    @property
    def method(self) -> str:
        """How model embeddings are computed: ``p`` (P, the paper's) or ``r2`` (closed form)."""
        return R2_METHOD if isinstance(self.model_embedding, R2EmbeddingConfig) else "p"

    @property
    def is_paper_form(self) -> bool:
        """Whether this is the paper's kind of standard: one baseline, model embeddings by P
        (what ``evaluate`` and ``--protocol per-step`` run)."""
        return not self.is_union and self.method == "p"

    @property
    def dim(self) -> int:
        """N, the length of every embedding of this standard (a union: the sum of its blocks)."""
        return sum(spec.dim for spec in self.baselines)

    @property
    def hash(self) -> str:
        """Content hash: sha256 of the canonical JSON of every field but the description."""
        content = {k: v for k, v in self.to_dict().items() if k != "description"}
        return json_digest(content, 16)

    def to_dict(self) -> dict[str, Any]:
        """The standard as plain data (tuples as lists), the YAML layout: ``baselines`` in
        place of ``baseline`` for a union only (a one-baseline standard's layout, and so its
        hash, is the one it always had)."""
        data = _plain(dataclasses.asdict(self))
        more = data.pop("more_baselines")
        if not more:
            return data
        return {
            ("baselines" if k == "baseline" else k): ([v, *more] if k == "baseline" else v)
            for k, v in data.items()
        }

    def to_yaml(self) -> str:
        """The standard as YAML text that :func:`standard_from_yaml` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def standard_from_dict(
    data: dict[str, Any], *, source: str = "<dict>", trusted: bool = True
) -> Standard:
    """Builds a :class:`Standard` from plain data, naming the bad field on error.

    Args:
        data: the standard as plain data (the YAML layout).
        source: where it came from, for messages.
        trusted: whether the standard comes from its user (a file they passed, a built-in
            one). A baseline given as a Python entry point (``module:function``) runs code
            when loaded, so an untrusted standard (found in a stranger's repo or index) with
            one is refused.

    Raises:
        InvalidStandardError: on an unknown or missing field or an invalid value, or an
            entry-point baseline in an untrusted standard.
    """
    try:
        data = dict(data)
        baselines = _baselines(data, source)
        probe = _section(data, "probe", source)
        if probe.get("data_files") is not None:
            files = probe["data_files"]
            probe["data_files"] = (files,) if isinstance(files, str) else tuple(files)
        model_cfg = _model_embedding(_section(data, "model_embedding", source, {}), source)
        task = _section(data, "task_embedding", source, {})
        if "gammas" in task:
            task["gammas"] = tuple(float(g) for g in task["gammas"])
        for baseline in baselines:
            if not trusted and _runs_code(baseline.model):
                raise InvalidStandardError(
                    f"{source}: the baseline {baseline.model!r} is a Python entry point, which "
                    "runs code when loaded; a standard from someone else may not name one "
                    "(download its YAML, read it, and pass it with --standard FILE.yaml if you "
                    "trust it)"
                )
        return Standard(
            baseline=baselines[0],
            more_baselines=baselines[1:],
            probe=ProbeSpec(**probe),
            model_embedding=model_cfg,
            task_embedding=TaskEmbeddingConfig(**task),
            **data,
        )
    except InvalidStandardError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidStandardError(f"{source}: invalid standard: {e}") from e


def _baselines(data: dict[str, Any], source: str) -> tuple[BaselineSpec, ...]:
    """``baseline:`` (one) or ``baselines:`` (a union of two or more), removed from ``data``.

    Raises:
        InvalidStandardError: both or neither given, or ``baselines`` not a list of two to
            :data:`MAX_BASELINES` mappings.
    """
    if "baselines" not in data:
        return (BaselineSpec(**_section(data, "baseline", source)),)
    if "baseline" in data:
        raise InvalidStandardError(
            f"{source}: invalid standard: it gives both 'baseline' and 'baselines': keep "
            "'baseline:' for one baseline or 'baselines:' for a union of two or more"
        )
    given = data.pop("baselines")
    if not isinstance(given, list) or len(given) < 2:
        count = len(given) if isinstance(given, list) else type(given).__name__
        raise InvalidStandardError(
            f"{source}: invalid standard: 'baselines' must list two or more baseline mappings "
            f"(got {count}); for one baseline write 'baseline:' instead"
        )
    if len(given) > MAX_BASELINES:
        raise InvalidStandardError(
            f"{source}: invalid standard: 'baselines' lists {len(given)} baselines; a union "
            f"takes at most {MAX_BASELINES} (each runs over the probe set for every embedding)"
        )
    specs = []
    for i, item in enumerate(given, 1):
        if not isinstance(item, dict):
            raise InvalidStandardError(
                f"{source}: invalid standard: baselines entry {i} must be a mapping of "
                f"fields (model, revision, dim, layer), not {type(item).__name__}"
            )
        specs.append(BaselineSpec(**item))
    return tuple(specs)


def _model_embedding(
    section: dict[str, Any], source: str
) -> ModelEmbeddingConfig | R2EmbeddingConfig:
    """The ``model_embedding`` section: P's hyper-parameters (``method: p`` or none), or the
    closed-form R^2 mask's (``method: r2``: ``ridge`` and ``split_seed`` only).

    Raises:
        InvalidStandardError: an unknown method, or a field the method does not have.
    """
    method = section.pop("method", "p")
    if method == "p":
        return ModelEmbeddingConfig(**section)
    if method != R2_METHOD:
        raise InvalidStandardError(
            f"{source}: invalid standard: unknown model_embedding method {method!r}: use "
            f"'p' (P, the paper's optimised mask) or '{R2_METHOD}' (closed-form ridge R^2 mask)"
        )
    extra = sorted(set(section) - {"ridge", "split_seed"})
    if extra:
        raise InvalidStandardError(
            f"{source}: invalid standard: model_embedding method r2 takes only 'ridge' and "
            f"'split_seed', not {', '.join(map(repr, extra))}"
        )
    if "ridge" in section:
        ridge = section["ridge"]
        values = ridge if isinstance(ridge, list) else [ridge]
        if any(isinstance(r, bool) or not isinstance(r, int | float) for r in values):
            raise InvalidStandardError(
                f"{source}: invalid standard: ridge must be a number or a list of numbers > 0, "
                f"not {ridge!r}"
            )
        section["ridge"] = tuple(float(r) for r in values)  # 1 and 1.0: one hash
    return R2EmbeddingConfig(**section)


def _section(
    data: dict[str, Any], name: str, source: str, default: dict | None = None
) -> dict[str, Any]:
    """The mapping ``data[name]``, removed from ``data`` (``default`` when absent, if given).

    Raises:
        InvalidStandardError: it is missing (without a default) or not a mapping.
    """
    if name not in data and default is not None:
        return dict(default)
    if name not in data:
        raise InvalidStandardError(f"{source}: invalid standard: the field {name!r} is missing")
    value = data.pop(name)
    if not isinstance(value, dict):
        raise InvalidStandardError(
            f"{source}: invalid standard: {name!r} must be a mapping of fields, "
            f"not {type(value).__name__}"
        )
    return dict(value)


def standard_from_yaml(path: str | Path, *, trusted: bool = True) -> Standard:
    """Reads a standard from a YAML file.

    Args:
        path: the file.
        trusted: as in :func:`standard_from_dict` (False for a file from a stranger).

    Raises:
        StandardNotFoundError: if the file does not exist.
        InvalidStandardError: if it is not a valid standard (or not text, or too large).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STANDARD_BYTES:
            raise InvalidStandardError(
                f"{path}: {size} bytes is too large for a standard (at most {MAX_STANDARD_BYTES})"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise StandardNotFoundError(f"no standard file at {path}") from e
    except UnicodeDecodeError as e:
        raise InvalidStandardError(f"{path}: not a YAML text file ({e.reason})") from e
    except OSError as e:
        raise InvalidStandardError(f"{path}: cannot read it ({e.strerror or e})") from e
    return standard_from_text(text, source=str(path), trusted=trusted)


def standard_from_text(text: str, *, source: str = "<text>", trusted: bool = True) -> Standard:
    """Reads a standard from YAML text (see :func:`standard_from_yaml`).

    Aliases are refused: a standard is a few dozen plain values, and an alias bomb of a
    few hundred bytes expands to gigabytes.

    Raises:
        InvalidStandardError: if it is not a valid standard.
    """
    try:
        data = load_plain_yaml(text, max_bytes=MAX_STANDARD_BYTES)
    except UnsafeYAMLError as e:
        raise InvalidStandardError(f"{source}: {e}") from e
    if not isinstance(data, dict):
        raise InvalidStandardError(f"{source}: a standard is a YAML mapping")
    return standard_from_dict(data, source=source, trusted=trusted)


def _runs_code(model_spec: Any) -> bool:
    """Whether a model spec names a Python entry point (loading it imports and runs code)."""
    from .extractors import parse_spec

    if not isinstance(model_spec, str) or not model_spec.strip():
        return False
    return parse_spec(model_spec)[0] == "entrypoint"


def builtin_standards() -> dict[str, Standard]:
    """The standards that ship with hf-stdembed, by id (fresh objects on every call)."""
    found = {}
    for entry in sorted(resources.files(__package__).joinpath("standards").iterdir(), key=str):
        if entry.name.endswith(".yaml"):
            with resources.as_file(entry) as path:
                standard = standard_from_yaml(path)
            found[standard.id] = standard
    return found


def get_standard(id_or_path: str | Path) -> Standard:
    """Resolves a built-in standard id or a YAML file path.

    Raises:
        StandardNotFoundError: naming the known ids when nothing matches.
    """
    text = str(id_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return standard_from_yaml(text)
    known = builtin_standards()
    if text in known:
        return known[text]
    raise StandardNotFoundError(
        f"unknown standard {text!r}; built-in standards: {', '.join(sorted(known))} "
        "(or pass the path of a standard YAML file)"
    )


DEFAULT_STANDARD = "resnet18-in1k-val"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
