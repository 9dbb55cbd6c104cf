"""Static files under names that carry a hash of their content, cached for a year.

A changed file gets a new name, so browsers may keep every name forever ("immutable"); the page
links the current names through ``asset()``. The hashes are taken once, when the app is made.
The plain name still answers, revalidated on every use, for anything that links it directly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory

FOLDER = Path(__file__).parent / "static"
YEAR = 365 * 24 * 3600

assets = Blueprint("assets", __name__)


def hashed_names(folder: Path = FOLDER) -> dict[str, str]:
    """name -> name with the first 12 hex digits of its SHA-256 before the extension (style.css -> style.0123abcd4567.css)."""
    names = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            names[path.name] = f"{path.stem}.{digest}{path.suffix}"
    return names


@assets.record_once
def _hash_once(state) -> None:
    names = hashed_names()
    state.app.extensions["kb_assets"] = {"by_name": names, "by_hashed": {v: k for k, v in names.items()}}
    state.app.jinja_env.globals["asset"] = asset


def asset(name: str) -> str:
    """The URL of a static file, under its hashed name."""
    return f"/static/{current_app.extensions['kb_assets']['by_name'][name]}"


@assets.get("/static/<name>")
def static_file(name: str):
    table = current_app.extensions["kb_assets"]
    if name in table["by_hashed"]:
        response = send_from_directory(FOLDER, table["by_hashed"][name], max_age=YEAR)
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        return response
    if name in table["by_name"]:
        response = send_from_directory(FOLDER, name)
        response.headers["Cache-Control"] = "no-cache"
        return response
    abort(404)
