"""Reading a directory registry's files as a stranger's: regular files only, card text bounded.

A file of a directory registry is opened only when it is a regular file when opened (a FIFO
or a device could block or never end); a README is read up to the front matter's limit.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .._yaml import MAX_YAML_BYTES
from ..errors import RemoteFileNotFoundError

CARD_TEXT_BYTES = MAX_YAML_BYTES + 64 * 1024
"""How much of a README is read while listing: the front matter and a margin."""


def check_regular(found: os.stat_result, repo_id: str, path: str) -> None:
    """Refuses anything but a regular file: reading a device or a FIFO may never end."""
    if stat.S_ISREG(found.st_mode):
        return
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kinds |= {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    kind = next((name for test, name in kinds.items() if test(found.st_mode)), "special")
    raise RemoteFileNotFoundError(
        f"{repo_id}/{path} is not a regular file ({kind}): a directory registry serves "
        "regular files only",
        repo_id=repo_id,
    )


@contextlib.contextmanager
def open_regular(path: Path, repo_id: str, name: str) -> Iterator[BinaryIO]:
    """``path`` opened for reading, refused unless it is a regular file when opened.

    Opened non-blocking and checked with ``fstat``, so a FIFO swapped in after a ``stat``
    neither blocks the ``open`` nor is read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        check_regular(os.fstat(fd), repo_id, name)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def file_digest(path: Path, name: str) -> str:
    """The sha256 of a regular file's bytes (refusing anything else)."""
    with open_regular(path, "", name) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_card_text(readme: Path, repo_id: str) -> tuple[str, bool]:
    """(the README's first :data:`CARD_TEXT_BYTES` decoded, whether there was more).

    Bytes that are not UTF-8 are replaced (U+FFFD).

    Raises:
        RemoteFileNotFoundError: the README is not a regular file.
    """
    with open_regular(readme, repo_id, "README.md") as f:
        data = f.read(CARD_TEXT_BYTES + 1)
    truncated = len(data) > CARD_TEXT_BYTES
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data[:CARD_TEXT_BYTES], final=not truncated), truncated


def card_of(read: tuple[str, bool], tag: str) -> tuple[dict[str, Any], str | None, bool]:
    """(card data, why it cannot be read or None, whether the text mentions ``tag``)."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    from ..card import read_card

    text, truncated = read
    mentioned = tag in text
    body = text.removeprefix("\ufeff")
    if truncated and REGEX_YAML_BLOCK.search(body) is None and body.lstrip().startswith("---"):
        return {}, f"README.md: its front matter is over the {MAX_YAML_BYTES} byte limit", mentioned
    card = read_card(text)
    if not card.readable:
        return {}, f"README.md: {card.problems[0]}", mentioned
    return card.data, None, mentioned
