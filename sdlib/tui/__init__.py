"""The Textual front end (``sdlib tui``): Browse, Downloads, Library and Settings screens.

Layout (harlequin's shape, rule 11 of the style notes)::

    app.py          the App: bindings, modes, command palette, CSS_PATH; nothing else
    app.tcss        every style rule
    services.py     what screens call: the Civitai client, installer, caches (built once)
    downloads.py    the download queue model (jobs, states, speed/ETA) and its thread runner
    messages.py     small dataclass Messages (download progress coalesces)
    screens/        one module per screen, plus modal dialogs
    widgets/        the model detail pane, previews, result tables
    htmlmd.py, images.py                                 pure helpers

Nothing here is imported by the CLI unless ``sdlib tui`` runs.
"""
