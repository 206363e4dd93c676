"""Read-only understanding of model files: containers, tensor tables, classification.

Nothing here imports httpx2, sqlite3, textual, rich or torch.
"""

#: Bumped whenever classification rules change what a file is said to be, so that a
#: library scan re-reads the headers of files indexed by an older sdlib (2: GGUF files and
#: CLIP-vision encoders).
CLASSIFIER_VERSION = 2
