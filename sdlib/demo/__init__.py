"""The demo server: an offline, Civitai-compatible API and file host on 127.0.0.1.

``sdlib demo-server`` and ``sdlib tui --demo`` run it; the tests and benches use it as their
Civitai. It builds the small, structurally real model files it serves (``writers``,
``specs``, ``catalogue``, ``pickles``) and never touches the network.
"""
