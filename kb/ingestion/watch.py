"""`kb serve` keeps the index in step with its corpus folder while it serves: saves, renames, deletions, big drops.

The watcher (watchfiles: Rust's notify, inotify on Linux, or polling with KB_WATCH=poll) only says *that*
something changed. What changed is decided by the same sync as `kb build` (kb/ingestion/sync.py): every file's
size and modification time against what the store recorded, only changed files read, only changed documents
embedded, in batched transactions, so a burst of events (an editor's atomic save, a drop of a thousand files)
is one sync, and a lost event costs nothing once the next sync runs. That makes these cases one rule:

- create, modify, delete; a folder added or removed whole; a file replaced by a folder of the same name;
- a rename or a move is the old path gone and a new one there: the document's id follows its path (a
  citation names the file it came from), so a moved file is a new id, its passages embedded again;
- an editor's atomic save (write a temporary file, rename it over the old one): the temporary file is not a
  document kb reads (a dot-file, a `~` or swap suffix, no suffix), and the events come within one debounce
  window, so the sync sees the new file in place of the old: one update, never a moment without it;
- a file still being copied: a file modified within KB_WATCH_SETTLE_SECONDS is left as the index has it and
  looked at again once it has been quiet that long, so a slow copy is read once, whole;
- kb's own writes (API documents in `corpus/.kb/`) come back as events; the store recorded their size and
  time when it wrote them, so the sync finds nothing changed and writes nothing.

A full sync also runs every KB_WATCH_RESCAN_SECONDS, which repairs whatever events were lost (an overflowing
inotify queue). One sync runs at a time, in the watcher's thread; searches never wait for it (each batch is
one store transaction, as for API writes). One process watches a store (``Store.watch_claim``: a file lock
for the FAISS store, an advisory lock on PostgreSQL), so two servers never race to write the same change.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

from kb.documents.access import ACCESS_FILE
from kb.documents.folder import KB_FOLDER, SUPPORTED_SUFFIXES, is_read
from kb.ingestion.sync import BuildReport
from kb.settings import Settings

log = logging.getLogger(__name__)

DEBOUNCE_MS = 1_600  # watchfiles: the longest a burst of events is gathered before it is handed over
STEP_MS = 50  # watchfiles: a burst ends after this long without a new event
TICK_MS = 250  # how often the watcher looks up from the events (held files, the rescan, stopping)
RETRY_SECONDS = 5.0  # after a failed sync, the next try
LOGGED_SKIPS = 10_000  # skipped paths remembered, so that each is logged once

Sync = Callable[..., BuildReport]  # build_index with its settings bound: sync(settle=..., progress=...)


@dataclass
class SyncState:
    """What /api/health reports of the folder watch."""

    mode: str  # on, poll, off, or elsewhere (another process watches this store)
    pending: int = 0  # files changed and not yet in the index (held ones included)
    syncing: bool = False
    done: int = 0  # the sync under way: documents written (a large one, by the write worker) or passages embedded
    total: int = 0  # of how many
    syncs: int = 0
    last_sync: str | None = None  # when the last sync ended (UTC, ISO 8601)
    last_error: str | None = None  # the last sync's failure, None once one succeeds
    last_report: str | None = None

    def json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


class FolderWatch:
    """Watches ``settings.corpus_dir`` in a thread of its own and syncs the store with it (``sync``).

    ``events``: where changes come from (watchfiles by default); a test gives its own to lose events on purpose."""

    def __init__(self, settings: Settings, sync: Sync, claim: Callable[[], Callable[[], None] | None],
                 owner: Callable[[], str | None] = lambda: None,
                 events: Callable[[threading.Event], Iterator[set[tuple[Any, str]]]] | None = None) -> None:
        self.settings = settings
        self.folder = Path(settings.corpus_dir).resolve()
        self._sync_fn = sync
        self._claim = claim
        self._owner = owner  # the corpus folder the store was last brought in line with (None: none yet)
        self._events = events or (self._polling if settings.watch == "poll" else self._watchfiles)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._release: Callable[[], None] | None = None
        self._pending: set[str] = set()
        self._skipped: set[str] = set()
        self.state = SyncState(mode=settings.watch)

    # ---- life ----------------------------------------------------------------------------------

    def start(self) -> bool:
        """Claim the store and start watching; False when KB_WATCH=off or another process watches it."""
        if self.settings.watch == "off":
            return False
        owner = self._owner()
        if owner not in (None, str(self.folder)):
            self.state.mode = "off"
            log.warning("watch: not watching %s: the index holds the documents of %s (`kb build` switches it)",
                        self.folder, owner)
            return False
        try:
            self._release = self._claim()
        except Exception as exc:  # noqa: BLE001 - e.g. the database unreachable: serving goes on without a watch
            self.state.mode, self.state.last_error = "off", f"could not start the folder watch: {exc}"
            log.warning("watch: %s", self.state.last_error)
            return False
        if self._release is None:
            self.state.mode = "elsewhere"
            log.info("watch: another process watches %s for this store; this one only serves", self.folder)
            return False
        self._thread = threading.Thread(target=self._run, name="kb-watch", daemon=True)
        self._thread.start()
        log.info("watch: keeping the index in step with %s (%s)", self.folder,
                 "polling" if self.settings.watch == "poll" else "file system events")
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._release is not None:
            self._release()
            self._release = None

    # ---- the loop ------------------------------------------------------------------------------

    def _watchfiles(self, stop: threading.Event) -> Iterator[set[tuple[Any, str]]]:
        import watchfiles

        return watchfiles.watch(self.folder, watch_filter=None, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop,
                                rust_timeout=TICK_MS, yield_on_timeout=True, raise_interrupt=False, recursive=True,
                                ignore_permission_denied=True)

    def _polling(self, stop: threading.Event) -> Iterator[set[tuple[Any, str]]]:
        """KB_WATCH=poll: "the folder may have changed" every KB_WATCH_POLL_SECONDS; the sync's own look at every
        file's size and time (to the nanosecond) is the poll. notify's poller, which watchfiles offers, compares
        modification times to the second and no sizes, and missed an edit made within a second of the last one."""
        interval, next_poll = self.settings.watch_poll_seconds, time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + interval
                yield {("poll", str(self.folder))}
            else:
                yield set()  # a tick: files held back are looked at again when due
            stop.wait(min(TICK_MS / 1000, max(next_poll - time.monotonic(), 0.0)))

    def _run(self) -> None:
        rescan = self.settings.watch_rescan_seconds
        due = time.monotonic()  # a first sync at once: whatever changed since the server's start-up sync
        next_rescan = time.monotonic() + rescan if rescan else float("inf")
        try:
            for changes in self._events(self._stop):
                if self._stop.is_set():
                    break
                if self._note(changes):
                    due = min(due, time.monotonic())
                now = time.monotonic()
                if now >= next_rescan:
                    due, next_rescan = now, now + rescan
                if now >= due:
                    due = self._sync()
        except Exception as exc:  # noqa: BLE001 - the watcher stops, the server goes on serving; health says why
            self.state.last_error = f"the folder watch stopped: {exc}"
            log.error("watch: stopped: %s", exc)

    def _note(self, changes: Iterable[tuple[Any, str]]) -> bool:
        """Whether any of these changes may concern a document (each skipped file is logged once, with why)."""
        relevant = False
        for _, raw in changes:
            path = Path(raw)
            try:
                relative = path.relative_to(self.folder).as_posix()
            except ValueError:
                continue
            if relative == ".":
                relevant = True
                continue
            why = _skipped_because(relative, path)
            if why is None:
                relevant = True
                self._pending.add(relative)
            elif why and relative not in self._skipped and len(self._skipped) < LOGGED_SKIPS:
                self._skipped.add(relative)
                log.info("watch: skipped %s: %s", relative, why)
        self.state.pending = len(self._pending)
        return relevant

    def _sync(self) -> float:
        """One sync; when the next is due (monotonic seconds): soon when files were held back, else on events."""
        self.state.syncing, self.state.done, self.state.total = True, 0, 0
        began = time.perf_counter()
        try:
            report = self._sync_fn(settle=self.settings.watch_settle_seconds, progress=self._progress)
        except Exception as exc:  # noqa: BLE001 - said in health and the log; tried again shortly
            self.state.last_error = str(exc)
            log.warning("watch: the sync failed (tried again in %.0f s): %s", RETRY_SECONDS, exc)
            return time.monotonic() + RETRY_SECONDS
        finally:
            self.state.syncing = False
        self.state.syncs += 1
        self.state.last_error = None
        self.state.last_sync = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._pending = set(report.held)
        self.state.pending = len(self._pending)
        if report.written:
            self.state.last_report = report.summary()
            log.info("watch: %s added, %s changed, %s removed in %.2f s", len(report.added), len(report.changed),
                     len(report.removed), time.perf_counter() - began)
        if report.held:  # looked at again once the last of them has been quiet for the settle time
            return time.monotonic() + max(self._quiet_in(report.held), 0.02)
        return float("inf")

    def _quiet_in(self, held: list[str]) -> float:
        """Seconds until every one of these files has gone unmodified for the settle time."""
        latest = 0
        for relative in held:
            try:
                latest = max(latest, (self.folder / relative).stat().st_mtime_ns)
            except OSError:
                continue
        return latest / 1e9 + self.settings.watch_settle_seconds - time.time()

    def _progress(self, total: int) -> Callable[[int], None]:
        self.state.total = total
        step = max(total // 10, 1)

        def tick(n: int) -> None:
            before = self.state.done
            self.state.done += n
            if total >= 100 and before // step != self.state.done // step:
                log.info("watch: %d of %d written", self.state.done, total)

        return tick


def _skipped_because(relative: str, path: Path) -> str | None:
    """None when kb reads this path (or it may be a folder, or gone); else why not ("" for kb's own files,
    which are not worth a line)."""
    parts = PurePosixPath(relative).parts
    if relative == ACCESS_FILE:
        return None  # the folder's access rules: every document under a rule may change
    if parts[0] == KB_FOLDER and not is_read(relative):
        return ""
    if not is_read(relative):
        return "hidden (a dot-file or inside a dot-folder, as editors' swap files are)"
    suffix = path.suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return None
    try:
        if path.is_dir():
            return None
    except OSError:
        return None
    if not path.exists():
        return None  # gone: perhaps a folder; the sync will know
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"kb does not read {suffix or 'files without a suffix'} (an editor's backup or temporary file, or " \
           f"another type; kb reads {kinds})"
