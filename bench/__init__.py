"""Benchmarks of the authentication path (issue 7): ``make bench`` or ``python -m bench``.

Every figure is measured in one run and printed as a ratio against a baseline measured in the
same run, because the machine is noisy. Not a test: it is not part of ``make test`` or CI.
"""
