"""Benchmarks (`python utils/benchmarks/benchmark_<name>.py`) and the closed-form receptive fields they and the
tests check probing against; measurements are in PERFORMANCE.md beside them.
"""
