"""acs-triage benchmarks: `python -m bench [--quick] [--markdown]` (see bench/README.md).

Nothing is imported here: `python -m bench.child` runs in fresh processes whose imports are measured.
"""
