"""Child process of :func:`pruneofa.deploy.packaging.ir_checks.probe`: run an IR once, as a server would.

``python -m pruneofa.deploy.packaging.ir_probe '{"xml": ..., "library": ..., "reference": ...}'`` reads the
IR in a fresh OpenVINO core (adding ``library``, pruneofa's kernels, as OVMS's ``--cpu_extension`` does),
with ``reference`` (the folder's dense IR) checks that every sparse op's weights, read back, equal the
dense IR's position for position, compiles it and runs one inference on a synthetic input of its ports
(token ids 1..8 of one sequence). It prints one JSON line (outputs and their shapes) and exits 0; a
refusal is one line on stderr and exit 3. It runs apart from ``package`` so that a crash in native code
(a malformed constant the op does not reject) is a refusal there, not the end of the command."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

_SEQUENCE = 8


class Refusal(Exception):
    """What is wrong with the IR, in one line."""


def _feed(model: Any) -> dict[str, np.ndarray]:
    """One sequence of ``_SEQUENCE`` tokens for every input port, typed as the port is."""
    feed = {}
    for port in model.inputs:
        name = port.get_any_name()
        dtype = np.dtype(port.get_element_type().to_dtype())
        rank = port.get_partial_shape().rank
        if not rank.is_static or rank.get_length() != 2:
            raise Refusal(f"input {name!r} is not [batch, sequence]; the probe cannot feed it")
        if "mask" in name:
            value = np.ones((1, _SEQUENCE))
        elif "ids" in name and "type" not in name and "position" not in name:
            value = np.arange(1, _SEQUENCE + 1)[None, :]
        elif "position" in name:
            value = np.arange(_SEQUENCE)[None, :]
        else:
            value = np.zeros((1, _SEQUENCE))
        feed[name] = value.astype(dtype)
    return feed


def _check_weights(model: Any, reference: str) -> int:
    """Every sparse op's weights equal the dense IR's (the zeros exactly, the values to float rounding)."""
    import openvino as ov

    import pruneofa.kernels as kernels
    from pruneofa.kernels.weights import NotConstant, read_weight

    dense = {}
    for op in ov.Core().read_model(reference).get_ordered_ops():
        if op.get_type_name() == "MatMul":
            try:
                dense[op.get_friendly_name()] = read_weight(op).dense
            except (NotConstant, ValueError, RuntimeError):
                continue
    compared = 0
    for node in kernels.sparse_nodes(model):
        try:
            layers = kernels.dense_weights(node)
        except Exception as err:  # noqa: BLE001 - malformed constants: a refusal, whatever numpy raised
            raise Refusal(f"the constants of {node.get_friendly_name()} are malformed ({err})") from None
        for name, back in layers.items():
            expected = dense.get(name)
            if (
                expected is None
                or back.shape != expected.shape
                or not np.array_equal(back != 0, expected != 0)
                or not np.allclose(back, expected, rtol=1e-6, atol=0)
            ):
                raise Refusal(
                    f"the weights of {name} in the sparse op differ from the folder's dense IR "
                    "(openvino_model.xml, the model validate ran)"
                )
            compared += 1
    return compared


def run(request: dict[str, Any]) -> dict[str, Any]:
    import openvino as ov

    core = ov.Core()
    if request.get("library"):
        core.add_extension(request["library"])
    try:
        model = core.read_model(request["xml"])
    except RuntimeError as err:
        raise Refusal(f"OpenVINO cannot read it: {str(err).strip().splitlines()[-1]}") from None
    compared = _check_weights(model, request["reference"]) if request.get("reference") else 0
    feed = _feed(model)
    try:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled(feed)
    except RuntimeError as err:
        raise Refusal(f"OpenVINO cannot run it: {str(err).strip().splitlines()[-1]}") from None
    outputs = {}
    for port, value in result.items():
        array = np.asarray(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise Refusal(f"output {port.get_any_name()!r} is not finite on a plain input")
        outputs[port.get_any_name()] = list(array.shape)
    return {"outputs": outputs, "sparse_weights_compared": compared}


def main(argv: list[str]) -> int:
    try:
        print(json.dumps(run(json.loads(argv[0]))), flush=True)
    except Refusal as err:
        print(err, file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
