"""The index database: its tables, creating them, and upgrading an older index in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexBusyError, IndexCorruptError
from .rows import ROW_FIELDS, SOURCE_LEGACY

SCHEMA_VERSION = "4"
# 2: dead matrix positions (the ``dead`` table, ``matrices.dead``)
# 3: provenance, flags and model spec of rows (``rows.source``, ``rows.flags``,
#    ``rows.model_spec``), custom standards (the ``standards`` table)
# 4: the datasets a row's card declares (``rows.datasets``, one id a line; '' for none)
ROW_COLUMNS = ", ".join(ROW_FIELDS)  # the ``rows`` columns of :class:`IndexRow`, in order

_DEAD_TABLE = """CREATE TABLE IF NOT EXISTS dead (
    standard_hash TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (standard_hash, pos)
) WITHOUT ROWID"""
"""The dead positions of every live matrix (schema 2; created by the 1 -> 2 upgrade too)."""
_STANDARDS_TABLE = """CREATE TABLE IF NOT EXISTS standards (
    standard_hash TEXT PRIMARY KEY,
    standard_id TEXT NOT NULL,
    yaml TEXT NOT NULL,
    trusted INTEGER NOT NULL,
    origin TEXT NOT NULL,
    added_at TEXT NOT NULL
)"""
"""Custom standards seen by this index (schema 3), so that their ids resolve: ``trusted`` 1
for one its user gave (``--standard FILE``), 0 for one fetched from a stranger's repo or
index (never allowed to run code: see :func:`hf_stdembed.standards.standard_from_dict`)."""
_SCHEMA_3_INDEXES = (
    "CREATE INDEX IF NOT EXISTS rows_repo ON rows (repo_id)",
    "CREATE INDEX IF NOT EXISTS rows_sha ON rows (file_sha256)",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrices (
    standard_hash TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    count INTEGER NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0
);
{_DEAD_TABLE};
CREATE TABLE IF NOT EXISTS rows (
    standard_hash TEXT NOT NULL,
    repo_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    revision TEXT NOT NULL,
    standard_id TEXT NOT NULL,
    file_path TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_revision TEXT,
    l_to REAL NOT NULL,
    l_from REAL NOT NULL,
    library_version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    source TEXT NOT NULL,
    flags TEXT NOT NULL,
    model_spec TEXT,
    datasets TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (standard_hash, repo_id)
);
CREATE INDEX IF NOT EXISTS rows_pos ON rows (standard_hash, pos);
{_SCHEMA_3_INDEXES[0]};
{_SCHEMA_3_INDEXES[1]};
{_STANDARDS_TABLE};
CREATE TABLE IF NOT EXISTS crawl (
    repo_id TEXT PRIMARY KEY,
    sha TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at TEXT NOT NULL
);
"""


def connect(root: Path, timeout: float) -> sqlite3.Connection:
    """The connection to the database of the index in ``root`` (WAL, ``synchronous=FULL``,
    autocommit: transactions are explicit), its schema created or upgraded.

    Raises:
        IndexCorruptError: see :func:`init_schema`.
        IndexBusyError: see :func:`init_schema`.
    """
    conn = sqlite3.connect(root / "index.sqlite", timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        init_schema(conn, root, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def init_schema(conn: sqlite3.Connection, root: Path, timeout: float) -> None:
    """Creates the tables on a new index; checks (and upgrades) the schema of an existing one.

    Raises:
        IndexCorruptError: on an unknown schema version, or a version 1 index that this
            process cannot write to (so cannot upgrade).
        IndexBusyError: if creating or upgrading waited ``timeout`` seconds for another
            process's write lock.
    """
    try:
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        found = None
    if found is None:
        with _schema_change(conn, root, timeout, upgrade=False):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        # Read again: a process that created the index meanwhile may have another version.
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found[0] == "1":
        found = _migrate_from_1(conn, root, timeout)
    if found[0] == "2":
        found = _migrate_from_2(conn, root, timeout)
    if found[0] == "3":
        found = _migrate_from_3(conn, root, timeout)
    if found[0] != SCHEMA_VERSION:
        raise IndexCorruptError(
            f"index schema version {found[0]!r}; this hf-stdembed reads version "
            f"{SCHEMA_VERSION} (try upgrading hf-stdembed)",
            path=str(root),
        )


def _migrate_from_1(conn: sqlite3.Connection, root: Path, timeout: float) -> tuple[str]:
    """Schema 1 to 2 (in place, one transaction): no position of a version 1 index is dead."""
    with _schema_change(conn, root, timeout, upgrade=True):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version == "1":  # not already migrated by another process meanwhile
            if "dead" not in _columns(conn, "matrices"):
                conn.execute("ALTER TABLE matrices ADD COLUMN dead INTEGER NOT NULL DEFAULT 0")
            conn.execute(_DEAD_TABLE)
            conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
            version = "2"
    return (version,)


def _migrate_from_2(conn: sqlite3.Connection, root: Path, timeout: float) -> tuple[str]:
    """Schema 2 to 3 (in place, one transaction): rows get a source and flags, the index a
    table of custom standards.

    Whether a version 2 row was crawled or imported is unknown, so its source is ``legacy``:
    the next crawl reads its repo again (even at an unchanged commit) and replaces it with
    what the repo holds. Flags start empty (the rows were ranked unflagged before).
    """
    with _schema_change(conn, root, timeout, upgrade=True):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version == "2":  # not already migrated by another process meanwhile
            columns = _columns(conn, "rows")
            if "source" not in columns:
                conn.execute(
                    f"ALTER TABLE rows ADD COLUMN source TEXT NOT NULL DEFAULT '{SOURCE_LEGACY}'"
                )
            if "flags" not in columns:
                conn.execute("ALTER TABLE rows ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
            if "model_spec" not in columns:
                conn.execute("ALTER TABLE rows ADD COLUMN model_spec TEXT")
            for statement in (*_SCHEMA_3_INDEXES, _STANDARDS_TABLE):
                conn.execute(statement)
            conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
            version = "3"
    return (version,)


def _migrate_from_3(conn: sqlite3.Connection, root: Path, timeout: float) -> tuple[str]:
    """Schema 3 to 4 (in place, one transaction): rows get the datasets their card declares.

    A version 3 row has none (its card was read without them). The crawl states of the repos
    read at their commit lose that commit, so the next crawl reads their cards again (the
    listing carries them) and gives their rows the datasets they declare; an embedding file is
    downloaded again only for a card that declares some.
    """
    with _schema_change(conn, root, timeout, upgrade=True):
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version == "3":  # not already migrated by another process meanwhile
            if "model_spec" not in _columns(conn, "rows"):
                conn.execute("ALTER TABLE rows ADD COLUMN model_spec TEXT")
            if "datasets" not in _columns(conn, "rows"):
                conn.execute("ALTER TABLE rows ADD COLUMN datasets TEXT NOT NULL DEFAULT ''")
            conn.execute("UPDATE crawl SET sha = NULL WHERE repo_id IN (SELECT repo_id FROM rows)")
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
            )
            version = SCHEMA_VERSION
    return (version,)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {found[1] for found in conn.execute(f"PRAGMA table_info({table})")}


@contextmanager
def _schema_change(
    conn: sqlite3.Connection, root: Path, timeout: float, *, upgrade: bool
) -> Iterator[None]:
    """One write transaction that creates or upgrades the schema (inside ``open``).

    Raises:
        IndexBusyError: if another process held the write lock for ``timeout`` seconds.
        IndexCorruptError: if the database is read-only.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as e:
        code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
        primary = code & 0xFF if code is not None else None
        text = str(e).lower()
        if primary in (5, 6) or (primary is None and ("locked" in text or "busy" in text)):
            what = "an upgrade of the index" if upgrade else "creating the index"
            raise IndexBusyError(
                f"{what} was waiting for another hf-stdembed process, which is still "
                f"updating the index after {timeout:g} s: try again when it is done",
                path=str(root),
            ) from e
        if primary == 8 or (primary is None and "readonly" in text):  # SQLITE_READONLY
            if upgrade:
                message = (
                    "this index was written by an older hf-stdembed and must be upgraded "
                    f"once by a process that can write to {root}"
                )
            else:
                message = f"cannot create an index in {root}: it is read-only"
            raise IndexCorruptError(message) from e
        raise
