"""Read-only understanding of model files: containers, tensor tables, classification.

Nothing here imports httpx, sqlite3, textual, rich or torch.
"""
