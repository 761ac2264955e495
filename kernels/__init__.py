"""Sparse-aware CPU execution: an OpenVINO extension with a sparse Linear operation (in progress)."""
