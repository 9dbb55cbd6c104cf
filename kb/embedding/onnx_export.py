"""The model exported to ONNX once, keyed by its content hash, checked before it is trusted.

An export folder holds ``model.onnx`` (the transformer, up to its last hidden state, made with
``torch.onnx.export``), ``tokenizer.json`` (the model's fast tokenizer) and ``manifest.json``
(how to pool, the dimension, the SHA-256 of both files, and how closely the exported model's
vectors agreed with sentence-transformers' own when it was made). It lives under
``<KB_INDEX_DIR>/encoders/<model hash>/`` and is written to a temporary folder, checked, then
renamed into place, so a crash leaves either a whole export or none. A missing or damaged
export is made again; an export is only ever made when an embedder is set up (``kb build``,
the start of ``kb serve``), never while answering a query.

Only models made of a Transformer and a Pooling module (mean, CLS or max), with no default
prompt, are exported; anything else (a Dense layer, a prompt, a slow-only tokenizer) stays on
torch. The same sentence-transformers pooling as ``encode`` is redone in NumPy (see
``kb/embedding/onnx_encoder.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import NotExportable

FORMAT = 1
POOLINGS = ("mean", "cls", "max")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MIN_COSINE = 0.9999  # the issue's bar for an engine: vectors agree with torch float32's at least this closely
SKIPPED_FOLDERS = {"onnx", "openvino", ".git", ".cache"}  # other formats some model folders ship; not this model's content
# Texts the export is checked on: short and long (truncated), spaces, accents, ligatures, an empty line.
PROBES = (
    "How does Kazakhstan see its relations with the United States?",
    "  Leading and trailing spaces  ",
    "Ünïcode: naïve café, the ﬁ ligature, 日本語, emoji 🙂.",
    "Tabs\tand\nnew lines\n\nin one text",
    "",
    "x",
    " ".join(["A long passage that the model must truncate at its limit."] * 60),
)


def model_hash(folder: Path) -> str:
    """SHA-256 over the model folder's files (names and bytes), so a changed weight or config gives a new export."""
    digest = hashlib.sha256(f"kb-onnx-{FORMAT}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if relative.parts[0] in SKIPPED_FOLDERS:
            continue
        digest.update(f"\0{relative.as_posix()}\0{path.stat().st_size}\0".encode("utf-8", "surrogatepass"))
        _feed(digest, path)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return _feed(hashlib.sha256(), path).hexdigest()


def _feed(digest, path: Path):
    """``digest`` updated with the file's bytes, a MiB at a time."""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest


def read_export(folder: Path) -> dict[str, Any] | None:
    """The export's manifest when the folder holds a whole, undamaged export of this format; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            return None
        for name, expected in manifest["files"].items():
            if file_sha256(folder / name) != expected:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def exportable(model) -> dict[str, Any]:
    """How the exported model must pool and tokenize, or NotExportable naming what stands in the way."""
    modules = [type(module).__name__ for module in model]
    if modules[:2] != ["Transformer", "Pooling"] or any(name != "Normalize" for name in modules[2:]):
        raise NotExportable(f"its modules are {' + '.join(modules)}, not Transformer + Pooling")
    config = model[1].get_config_dict()
    pooling = config.get("pooling_mode")
    if pooling not in POOLINGS:
        raise NotExportable(f"its pooling is {pooling!r}, not one of {', '.join(POOLINGS)}")
    if getattr(model, "default_prompt_name", None):
        raise NotExportable(f"it adds the prompt {model.default_prompt_name!r} to every text")
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
        raise NotExportable("its tokenizer has no fast (Rust) version")
    inputs = [name for name in INPUTS if name in tokenizer.model_input_names]
    if inputs[:2] != ["input_ids", "attention_mask"]:
        raise NotExportable(f"its tokenizer gives {tokenizer.model_input_names}, not input_ids and attention_mask")
    return {
        "format": FORMAT,
        "pooling": pooling,
        "inputs": inputs,
        "max_seq_length": int(model.max_seq_length),
        "dimension": int((getattr(model[1], "get_embedding_dimension", None) or model[1].get_sentence_embedding_dimension)()),
        "lower_case": bool(getattr(model[0], "do_lower_case", False)),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
    }


def export(model, folder: Path, reference) -> dict[str, Any]:
    """Export ``model`` (a SentenceTransformer) into ``folder`` and check it against ``reference(texts)``.

    ``reference`` gives sentence-transformers' own normalized vectors. The export is kept only
    when the token ids are the same and every probe's vector agrees at a cosine of at least
    MIN_COSINE; otherwise NotExportable.
    """
    from kb.embedding.onnx_encoder import OnnxEncoder

    manifest = exportable(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=folder.parent))
    try:
        _write_onnx(model, work / "model.onnx", manifest["inputs"])
        model.tokenizer.backend_tokenizer.save(str(work / "tokenizer.json"))
        manifest["files"] = {name: file_sha256(work / name) for name in ("model.onnx", "tokenizer.json")}
        encoder = OnnxEncoder(work, manifest)
        ours = encoder.tokenize(list(PROBES))[0]
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # preprocess since sentence-transformers 6
        theirs = tokenize(list(PROBES))["input_ids"].numpy()
        if ours["input_ids"].shape != theirs.shape or not np.array_equal(ours["input_ids"], theirs):
            raise NotExportable("its tokenizer file gives other word pieces than the model's tokenizer")
        cosines = np.sum(encoder.encode(list(PROBES)) * reference(list(PROBES)), axis=1)
        if float(cosines.min()) < MIN_COSINE:
            raise NotExportable(f"the exported model's vectors agree only at cosine {cosines.min():.6f}")
        manifest["min_cosine"] = round(float(cosines.min()), 7)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # a damaged earlier export
        try:
            os.replace(work, folder)
        except OSError:  # another process put its export there first: use it if it is whole
            existing = read_export(folder)
            if existing is None:
                raise
            return existing
        return manifest
    except NotExportable:
        raise
    except Exception as exc:  # torch's exporter fails in many ways on architectures it cannot trace; disks fill up
        raise NotExportable(f"exporting it failed: {type(exc).__name__}: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_onnx(model, path: Path, inputs: list[str]) -> None:
    import torch

    transformer = model[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        """The transformer called by keyword, as sentence-transformers calls it, giving token embeddings."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors):
            return self.transformer(**dict(zip(inputs, tensors)), return_dict=True).last_hidden_state

    sample = model.tokenizer(["a short text", "and a somewhat longer one, to pad"], padding=True,
                             return_tensors="pt").to(transformer.device)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
    # The tracer warns about every Python branch it freezes; the probes in export() are the real check.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(), tuple(sample[name] for name in inputs), str(path), input_names=inputs,
            output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False,
        )
