"""A workaround for a reference-count bug of PySide6 6.12 on CPython 3.11.

PySide6 6.12 returns `None` from every void method (`label.setText(...)`,
`app.processEvents()`, ...) and `True`/`False` from `Signal.emit(...)`
without taking a new reference to them. On CPython 3.12+ these singletons
are immortal and that is harmless; on 3.11 each such call drops one real
reference, and after a few thousand calls the interpreter aborts with
"Fatal Python error: none_dealloc: deallocating None" (or `bool_dealloc`).
A desktop app makes thousands of such calls a minute, so on 3.11 we give
the three singletons the effectively infinite reference count that 3.12
gives them by design.
`tests/gui/test_gui_compat.py` shows the crash without this.
"""

from __future__ import annotations

import sys

__all__ = ["immortalize_none"]

_SINGLETONS = (None, True, False)

_DONE = False


def immortalize_none() -> bool:
    """Make `None`, `True` and `False` immortal on CPython < 3.12 (a no-op elsewhere); True if it acted."""
    global _DONE
    if _DONE or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    import ctypes

    # `ob_refcnt` is the first field of every PyObject (Py_ssize_t).
    for obj in _SINGLETONS:
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _DONE = True
    return True
