"""INT8 post-training quantization of exported models (NNCF for OpenVINO, ONNX Runtime for ONNX).

Imports ``pruneofa`` and ``exporter``. Its commands arrive with their issues.
"""
