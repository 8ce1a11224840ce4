"""Speed benchmarks of keras_ahbf (not part of the installed package).

Run them all with `python benchmarks/run_all.py`; see `benchmarks/README.md`.
"""
