"""Getting documents in and out of a knowledge base, always through the store's record.

- ``sync``: `kb build`, a corpus folder brought into the store (only what changed is read and embedded);
- ``writes``: documents written while kb runs (the API, `kb add`), grouped into one transaction at a time;
- ``transfer``: `kb export` and `kb import`, every document as JSON lines;
- ``backup``: `kb backup` and `kb restore`, a consistent copy taken while kb serves.
"""
