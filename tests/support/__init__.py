"""Helpers shared by the tests (importable as ``tests.support``: pyproject puts the repository
root on ``sys.path`` through pytest's ``pythonpath``)."""
