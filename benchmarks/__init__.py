"""Benchmarks: each exits non-zero when its budget did not hold. Run from the repository root:
``python -m benchmarks.estimator`` and so on. Not installed with the package."""
