"""Embedding: the model, on torch or ONNX Runtime, and what turns documents into passages ready to store.

- ``embedder``: the model loaded once per process, queries micro-batched (``batching``), passages and their
  sentences from one forward pass;
- ``onnx_export``, ``onnx_encoder``: the model exported to ONNX once per content hash, and run by ONNX Runtime;
- ``prepare``: documents chunked and embedded into ``PreparedDocument``s (what a store's ``add`` takes);
- ``worker``: a server's writes embedded in a process of their own, at lower CPU priority.
"""
