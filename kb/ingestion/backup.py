"""`kb backup DIR` and `kb restore DIR`: a consistent copy of a knowledge base, taken while it serves and writes.

    DIR/backup.json   what the backup holds; written last, so a backup without it (killed midway) is never restored
    DIR/...           the store's own part: on FAISS corpus/ (the record) and index/ (so a restore embeds
                      nothing); on PostgreSQL documents.jsonl, an export (pg_dump copies the index as well)
    DIR/keys.jsonl    the key table (kb/stores/keys.py): names, groups and hashes, never a key; a restore adds the
                      keys whose names are free

Each store writes and restores its own part (``Store.backup``, ``Store.restore``); a restore refuses to
overwrite a document the backup does not hold alike, unless asked to (``force``), which sets it aside first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kb.documents.folder import write_durably
from kb.errors import BackupProblem
from kb.settings import Settings
from kb.stores import store_class
from kb.stores.keys import KeyInfo
from kb.stores.record import iso_time

MANIFEST = "backup.json"
KEYS = "keys.jsonl"
FORMAT = 1


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Back the configured knowledge base up into ``target`` (a new or empty folder); the backup's manifest."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupProblem(f"{target} is not an empty folder: back up into a new one")
    target.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    kind = store_class(settings)
    facts = kind.backup(settings, target)
    table = kind.key_table(settings)
    try:
        rows = [{**info.to_json(), "created": info.created, "hash": hashed} for info, hashed in table.keys()]
    finally:
        table.close()
    write_durably(target / KEYS, "".join(json.dumps(row) + "\n" for row in rows).encode())
    facts["keys"] = len(rows)
    manifest = {"kb_backup": FORMAT, "store": settings.store, "created": iso_time(time.time_ns()),
                "seconds": round(time.perf_counter() - began, 3), **facts}
    write_durably(target / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    path = Path(source) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupProblem(f"{source} is not a complete kb backup (it has no {MANIFEST}: the backup never "
                            "finished, or this is another folder)") from None
    except (OSError, ValueError) as exc:
        raise BackupProblem(f"{path} cannot be read ({exc}): this backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("kb_backup") != FORMAT:
        raise BackupProblem(f"{path} is not a backup this kb reads (format {FORMAT})")
    return manifest


def restore(settings: Settings, source: Path, force: bool = False) -> tuple[dict[str, Any], Path | None]:
    """Put a backup back where ``settings`` point: its manifest, and an export still to be imported, if any."""
    manifest = read_manifest(source)
    if manifest.get("store") != settings.store:
        raise BackupProblem(f"{source} is a backup of a {manifest.get('store')} store and KB_STORE is "
                            f"{settings.store}: restore it with KB_STORE={manifest.get('store')}, then move it with "
                            f"`kb export | KB_STORE={settings.store} kb import -`")
    kind = store_class(settings)
    pending = kind.restore(settings, Path(source), force)
    if (Path(source) / KEYS).exists():
        table = kind.key_table(settings)
        try:
            for line in (Path(source) / KEYS).read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                table.restore(KeyInfo(row["name"], tuple(row["groups"]), bool(row["write"]), float(row["created"])),
                              row["hash"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackupProblem(f"{Path(source) / KEYS} cannot be read ({exc}): this backup's keys are damaged") from None
        finally:
            table.close()
    return manifest, pending
