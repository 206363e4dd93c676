"""Where the tests find the repository and the shared reference data beside it.

``../shared`` (next to the repository) holds the real third-party corpus, the files with the
hashes civitai.com published for them, and recorded Civitai answers. It is not part of the
repository: tests that need it skip when it is missing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CORPUS", "PUBLISHED", "REPO", "SAMPLES", "SHARED"]

#: The repository root (where pyproject.toml is).
REPO = Path(__file__).resolve().parents[2]
#: ``../shared`` beside the repository.
SHARED = REPO.parent / "shared"
#: Real third-party model files with their expected kinds (MANIFEST.tsv). Never unpickled.
CORPUS = SHARED / "corpus" / "real"
#: Real files with the hashes civitai.com published for them (published.tsv).
PUBLISHED = SHARED / "corpus" / "civitai-published"
#: Recorded real Civitai API responses.
SAMPLES = SHARED / "reference" / "samples"
