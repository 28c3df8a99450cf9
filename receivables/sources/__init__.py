"""Where documents to age come from: billing's own books (``books``), rows synced from
Xero or imported from files (``stored``), and files read directly (``files``). Each gives
the engine's ``Doc`` and ``Alloc`` values."""
