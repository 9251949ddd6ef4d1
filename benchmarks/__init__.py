"""Benchmarks: overhead, snapshot cost, stall detection, memory (`python -m benchmarks --help`)."""
