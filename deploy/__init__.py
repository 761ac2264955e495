"""Loading exported folders into runtimes; validation, benchmarking, serving and model repositories.

Imports ``pruneofa``, ``exporter`` and ``calibration``. Its commands arrive with their issues.
"""
