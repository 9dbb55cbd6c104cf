"""Search: a question in, the passages that answer it out, from one consistent snapshot of a store.

- ``pipeline``: the query path (embed, candidates, fusion and feedback, confidence, records, highlights) and the
  ``Answer``; ``fusion``: how the dense and keyword lists are fused;
- ``hit``: the one result type every surface renders; ``highlights``: answering sentences and query words;
- ``live``: a server's searcher, which follows writes and a new index made by another process.
"""
