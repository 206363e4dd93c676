"""The user's webUI folders: where each kind of model goes, what is in them, and keeping them
in order.

Layouts (``layouts``: where each webUI looks for each kind, as data), the index (``index``:
one SQLite file remembering every file, its hashes and identity), ``scan``, sidecars,
``identify`` and ``updates``, placement and names, and the journaled operations that move
files (``organize``, ``dedupe``, moving into the shared store), all behind the root's wall
(``wall``: nothing outside the user's folders is touched).

The library knows no source: what it asks a remote catalogue (identity by hash, a model's
versions, previews) goes through the :class:`sdlib.lookup.Lookup` protocol, and it speaks
no HTTP. Front ends reach it through :mod:`sdlib.services`.
"""
