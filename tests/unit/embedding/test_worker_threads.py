"""How many threads the write worker gives torch: one for a small write, every core for a large one."""

import os

from kb.documents.document import Document
from kb.embedding.worker import SMALL_WRITE, threads_for


def doc(n: int, chars: int) -> Document:
    return Document(id=f"d{n}", title="t", source="s", text="x" * chars)


def test_a_small_write_is_embedded_on_one_thread():
    assert threads_for([doc(0, 200)]) == 1
    assert threads_for([doc(n, SMALL_WRITE // 4) for n in range(4)]) == 1


def test_a_large_write_gets_every_core():
    assert threads_for([doc(0, SMALL_WRITE + 1)]) == (os.cpu_count() or 1)
    assert threads_for([doc(n, SMALL_WRITE // 4) for n in range(5)]) == (os.cpu_count() or 1)
