"""A real `kb serve` on a free loopback port, started once for the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SEED_CORPUS, free_port


class Server:
    def __init__(self, process: subprocess.Popen, base: str, log_path, log_handle) -> None:
        self.process, self.base, self.log_path, self.log_handle = process, base, log_path, log_handle

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_handle.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return response.status, json.loads(response.read())


def call(base: str, method: str, path: str, body=None, key: str | None = None, timeout: float = 120):
    """(status, body) of one request to a real server: JSON decoded, anything else as text."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            is_json = response.headers.get_content_type() == "application/json"
            return response.status, (json.loads(raw) if is_json else raw.decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_server(index_dir, log_path, extra_env=None, timeout=180.0, corpus_dir=SEED_CORPUS, ready=True,
                 flags=False) -> Server:
    """A `kb serve` on a free port, returned once it is ready (or, without ``ready``, once it answers at all).

    With ``flags``, where it listens and what it reads come as its documented flags rather than KB_* variables."""
    port = free_port()
    # The query log lives in the corpus folder's .kb/ (FAISS): off unless a test asks, so that servers over the
    # repository's own corpus/ write nothing into it.
    env = {**os.environ, "KB_CORPUS_DIR": str(corpus_dir), "HF_HUB_OFFLINE": "1", "KB_QUERY_LOG": "off",
           **(extra_env or {})}
    if flags:
        argv = ["--host", "127.0.0.1", "--port", str(port), "--threads", "4", "--log-json", "-v",
                "--index-dir", str(index_dir), "--model", "all-MiniLM-L6-v2"]
    else:
        argv = []
        env.update(KB_INDEX_DIR=str(index_dir), KB_HOST="127.0.0.1", KB_PORT=str(port))
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", *argv], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log_path, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"kb serve exited with {process.returncode}:\n{server.output()}")
        try:
            status, body = server.get_json("/api/health")
            if status == 200 and body.get("status") == "ok":
                return server
        except urllib.error.HTTPError:
            if not ready:
                return server
            time.sleep(0.25)
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"kb serve did not answer within {timeout}s:\n{server.output()}")


def server_on_a_copy(tmp_path_factory, name: str, extra_env: dict | None = None, ready: bool = True) -> Server:
    """A `kb serve` on a copy of the seed corpus of its own (a test that writes, or counts what it logs);
    ``server.folder`` holds corpus/, index/ and server.log."""
    import shutil

    folder = tmp_path_factory.mktemp(name)
    shutil.copytree(SEED_CORPUS, folder / "corpus", ignore=shutil.ignore_patterns(".kb"))  # the seed document alone
    server = start_server(folder / "index", folder / "server.log", corpus_dir=folder / "corpus", ready=ready,
                          extra_env=extra_env)
    server.folder = folder
    return server


@pytest.fixture(scope="session")
def server(seed_settings, seed_index, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    server = start_server(seed_settings.index_dir, log_path, flags=True)  # every documented flag of kb serve
    yield server
    server.stop()
    print(f"\n--- kb serve output ---\n{server.output()[-3000:]}")


# ---- a real browser: Debian's Chromium driven by Playwright (test_browser.py, test_insights.py) ----------------

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


class Page:
    """One browser tab in a fresh context, with its console errors (a CSP violation is one) collected;
    the browser's own line for each 4xx/5xx or failed request is left out (those states are tested)."""

    def __init__(self, browser, **options) -> None:
        self.context = browser.new_context(**options)
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda message: message.type == "error"
                    and not message.text.startswith("Failed to load resource") and self.errors.append(message.text))
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))


@pytest.fixture()
def open_page(browser):
    made = []

    def _open(**options):
        made.append(Page(browser, **options))
        return made[-1]

    yield _open
    for page in made:
        page.context.close()
    for page in made:
        assert not page.errors, page.errors


def accessible(tab, name: str) -> None:
    """axe-core's WCAG 2.1 A/AA and best-practice rules: no serious or critical violation; a screenshot."""
    assert AXE.exists(), f"{AXE} is missing: `make install-test` installs it (npm ci in tests/e2e/axe)"
    tab.wait_for_load_state("load")
    tab.evaluate(AXE.read_text())  # through DevTools, so the page's CSP stays as it is
    result = tab.evaluate("() => axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"
    assert result["passes"], "axe-core ran no rule at all"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"))
