"""INT8 folders load in optimum-intel: a PTQ folder (``pruneofa calibrate``) and a QAT folder
(``pruneofa qat --export openvino``; its test is in tests/training/test_qat.py, beside the QAT run) through
``OVModelForSequenceClassification`` give the logits of their IR compiled directly with OpenVINO (same f32
precision hint), so a user's optimum-intel code runs them."""

from __future__ import annotations

from conftest import optimum_matches_ir


def test_a_ptq_int8_folder_loads_in_optimum_intel(calibrate_once):
    optimum_matches_ir(calibrate_once("bert", "text-classification", "unstructured90", "openvino").output)
