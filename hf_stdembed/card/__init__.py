"""Model cards: what a published embedding records in its repo's README.md.

Publishing adds the tag ``hf-stdembed`` and one namespaced metadata key to the card's YAML
front matter::

    tags: [..., hf-stdembed]
    hf_stdembed:
      schema_version: 1
      embeddings:
        resnet18-in1k-val:          # one entry per standard
          file: stdembed/resnet18-in1k-val.safetensors
          sha256: 3b1f...           # of the file's bytes
          dim: 512
          standard_hash: 9c0e...
          l_to: 0.91
          l_from: 0.87
          fidelity: 0.87            # min(l_to, l_from), for people reading the card
          model_revision: 5d2c...   # the commit embedded
          tool_version: 0.1.0
          model: timm:org/name      # optional: the model spec embedded (loadable)
          standard_file: stdembed/my-standard.yaml  # optional: a custom standard's YAML

and a short human-readable section (``templates/stdembed_section.md``) between two HTML
comment markers, each alone on its own line, so publishing again replaces it. An existing card
is edited as text (:func:`update_card`): every other front matter line, comments included,
and all of the owner's prose are kept byte for byte. A new card comes from
``templates/modelcard.md`` through ``huggingface_hub``'s :class:`~huggingface_hub.ModelCard`.

Cards of other people's repos are read by crawlers, so :func:`card_entries` trusts no type:
a malformed entry becomes a reason, never an exception.

The package: :mod:`.entries` (what an entry holds, where files go, validating a stranger's
entries), :mod:`.reading` (:func:`read_card`, the one reader of every path), :mod:`.editing`
(recording entries in a README) and :mod:`.section` (the rendered section).
"""

from __future__ import annotations

from .editing import editable_card, update_card
from .entries import (
    CARD_TAG,
    EMBEDDING_FOLDER,
    MAX_DIM,
    METADATA_KEY,
    SCHEMA_VERSION,
    SECTION_END,
    SECTION_START,
    STANDARD_ID_RE,
    CardEntry,
    card_entries,
    embedding_path,
    standard_path,
)
from .reading import CardReading, read_card, read_front_matter

__all__ = [
    "CARD_TAG",
    "EMBEDDING_FOLDER",
    "MAX_DIM",
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "SECTION_END",
    "SECTION_START",
    "STANDARD_ID_RE",
    "CardEntry",
    "CardReading",
    "card_entries",
    "editable_card",
    "embedding_path",
    "read_card",
    "read_front_matter",
    "standard_path",
    "update_card",
]
