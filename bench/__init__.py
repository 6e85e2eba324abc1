"""Benchmarks: speed and memory, measured side by side with what users would otherwise use.

Never part of the tests' pass/fail; ``python -m bench.run --quick`` runs each once at tiny size.
"""
