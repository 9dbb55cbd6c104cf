"""`kb backup DIR` and `kb restore DIR`: a consistent copy of a knowledge base, taken while it serves and writes.

    DIR/backup.json   what the backup holds; written last, so a backup without it (killed midway) is never restored
    DIR/...           the store's own part: on FAISS corpus/ (the record) and index/ (so a restore embeds
                      nothing); on PostgreSQL documents.jsonl, an export (pg_dump copies the index as well)

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
from kb.stores.record import iso_time

MANIFEST = "backup.json"
FORMAT = 1


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Back the configured knowledge base up into ``target`` (a new or empty folder); the backup's manifest."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupProblem(f"{target} is not an empty folder: back up into a new one")
    target.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    facts = store_class(settings).backup(settings, target)
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
    return manifest, store_class(settings).restore(settings, Path(source), force)
