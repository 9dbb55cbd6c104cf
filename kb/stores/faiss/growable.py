"""A NumPy array that grows at its end in amortized constant time (capacity doubles)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Growable:
    """Appends copy into spare capacity; ``view()`` is the filled part, without a copy.

    A view taken before a growth keeps the old buffer, so a reader holding one sees a stable
    prefix while a writer appends.
    """

    __slots__ = ("_data", "_length")

    def __init__(self, dtype: Any, initial: Any = None) -> None:
        values = np.asarray(initial if initial is not None else [], dtype=dtype)
        self._data = np.array(values, dtype=dtype, copy=True)
        self._length = len(values)

    def __len__(self) -> int:
        return self._length

    def view(self) -> np.ndarray:
        return self._data[: self._length]

    def append(self, values: Any) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        needed = self._length + len(values)
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data), 8), dtype=self._data.dtype)
            grown[: self._length] = self._data[: self._length]
            self._data = grown
        self._data[self._length : needed] = values
        self._length = needed
