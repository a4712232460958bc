"""The lab: benchmarks and the figures in docs/, each a script run as ``python -m benchmarks.NAME``."""
