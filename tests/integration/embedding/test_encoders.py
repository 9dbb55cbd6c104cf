"""The engines that run the model (KB_ENCODER), with the real model: same vectors, an export made once, fallbacks."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from kb.embedding.embedder import Embedder
from kb.embedding.onnx_export import read_export
from kb.errors import ModelUnavailable
from tests.conftest import SEED_CORPUS, SEED_QUESTIONS

PASSAGES = [
    "Boundary layers thicken along a flat plate. Heat transfer rises near the leading edge.",
    "A shock wave forms ahead of a blunt body at Mach 3.",
    " ".join(["Pressure falls behind the expansion fan, and the flow turns."] * 40),  # longer than the model reads
]


def seed_questions() -> list[str]:
    return [json.loads(line)["q"] for line in SEED_QUESTIONS.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(encoder="torch")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(scope="module")
def onnx_embedder(cache):
    return Embedder(encoder="onnx", cache=cache)


def test_queries_on_onnx_runtime_agree_with_torch(onnx_embedder, torch_embedder):
    questions = seed_questions()
    assert onnx_embedder.onnx is not None and torch_embedder.onnx is None
    cosines = np.sum(onnx_embedder.encode(questions) * torch_embedder.encode(questions), axis=1)
    assert cosines.mean() >= 0.9999 and cosines.min() >= 0.999


def test_passages_and_their_sentence_vectors_agree_across_engines(onnx_embedder, torch_embedder):
    spans = [[(0, 43), (44, len(PASSAGES[0]))], [(0, len(PASSAGES[1]))], [(0, 61), (62, 123), (5000, 5100)]]
    ours, our_spans = onnx_embedder.encode_passages(PASSAGES, spans)
    theirs, their_spans = torch_embedder.encode_passages(PASSAGES, spans)
    assert np.sum(ours * theirs, axis=1).min() >= 0.9999
    for mine, other in zip(our_spans, their_spans):
        assert mine.shape == other.shape
        assert np.sum(mine * other, axis=1).min() >= 0.9999
    # a span past what the model read falls back to the passage's own vector, on both engines
    assert np.allclose(our_spans[2][2], ours[2], atol=1e-6)


def test_the_export_is_made_once_and_reused_without_torch(cache, onnx_embedder):
    folders = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1
    manifest = read_export(folders[0])
    assert manifest is not None and manifest["pooling"] == "mean" and manifest["min_cosine"] >= 0.9999
    made = (folders[0] / "model.onnx").stat().st_mtime_ns
    again = Embedder(encoder="auto", cache=cache)
    assert again.onnx is not None and again._torch_model is None  # the cached export alone answers queries
    assert (folders[0] / "model.onnx").stat().st_mtime_ns == made
    assert np.allclose(again.encode(["boundary layer"]), onnx_embedder.encode(["boundary layer"]), atol=1e-6)


def test_a_damaged_export_is_made_again(tmp_path, torch_embedder):
    Embedder(encoder="onnx", cache=tmp_path)
    [folder] = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    model = folder / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights: ONNX Runtime would load it without complaint
    model.write_bytes(bytes(data))
    assert read_export(folder) is None
    rebuilt = Embedder(encoder="onnx", cache=tmp_path)
    assert read_export(folder) is not None
    cosine = float(rebuilt.encode(["shock waves"])[0] @ torch_embedder.encode(["shock waves"])[0])
    assert cosine >= 0.9999


def test_a_model_that_cannot_be_exported_runs_on_torch_and_says_so_once(tmp_path, torch_embedder, caplog):
    from sentence_transformers import models

    dense = models.Dense(torch_embedder.dimension, 32)
    model_dir = tmp_path / "with-dense"
    model = type(torch_embedder.model)(modules=[*torch_embedder.model, dense], device="cpu")
    model.save(str(model_dir))
    with caplog.at_level(logging.WARNING, logger="kb.embedding.embedder"):
        embedder = Embedder(str(model_dir), encoder="auto", cache=tmp_path / "cache")
    warnings = [r.getMessage() for r in caplog.records if r.name == "kb.embedding.embedder"]
    assert len(warnings) == 1 and "torch" in warnings[0] and "Dense" in warnings[0]
    assert embedder.onnx is None and embedder.dimension == 32
    vectors = embedder.encode(["a question", "another"])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_cuda_asked_for_on_a_machine_without_a_gpu_is_refused_by_name():
    import torch

    if torch.cuda.is_available():  # the test machine has none; where it has one, CUDA is simply used
        assert Embedder(encoder="torch", device="cuda").model.device.type == "cuda"
        return
    with pytest.raises(ModelUnavailable, match="KB_DEVICE=cuda.*no CUDA GPU"):
        Embedder(encoder="torch", device="cuda")
    assert Embedder(encoder="torch", device="auto").model.device.type == "cpu"


def test_a_server_process_answering_from_the_export_never_imports_torch(cache, onnx_embedder):
    import subprocess

    script = (
        "import sys; from pathlib import Path; from kb.embedding.embedder import Embedder; "
        f"e = Embedder(encoder='auto', cache=Path({str(cache)!r})); e.encode_query('boundary layer'); "
        "print(e.onnx is not None, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_queries_during_a_write_run_on_one_thread_and_give_the_same_vectors(onnx_embedder):
    question = seed_questions()[3]
    wide = onnx_embedder.encode([question])
    calls = []
    with onnx_embedder.writing():
        session = onnx_embedder.onnx.narrow()
        run = session.run
        session.run = lambda *args: calls.append(1) or run(*args)
        narrow = onnx_embedder.encode([question + " "])  # not from the query cache
    assert session is not onnx_embedder.onnx.session and calls == [1]
    assert session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(narrow, wide, atol=1e-5)
    onnx_embedder.encode([question + "  "])
    assert calls == [1]  # back on every thread once the write is done


def test_the_exported_tokenizer_counts_word_pieces_as_the_models_own(cache, onnx_embedder, torch_embedder):
    texts = [*seed_questions(), (SEED_CORPUS / "astana-times-runde-interview.txt").read_text(encoding="utf-8"),
             "Ünïcödé, émojis 🚀 and CamelCaseWords — with a long-dash; URLs like https://example.com/a?b=c."]
    server_like = Embedder(cache=cache)  # KB_ENCODER=auto from a cached export: queries on ONNX Runtime, no torch
    counts = [server_like.count_tokens(text) for text in texts]
    assert server_like._torch_model is None  # counted without loading torch
    assert counts == [torch_embedder.count_tokens(text) for text in texts]
    assert counts[-2] > server_like.max_seq_length  # long texts are counted whole, not truncated
