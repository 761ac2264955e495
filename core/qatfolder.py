"""The folder of a quantization-aware-trained (QAT) PyTorch model: how it is written and read back.

NNCF 3 inserts its fake quantizers as hooks into the unchanged Hugging Face model; what it needs to put
them back is its own description of the hooks (``nncf.torch.get_config``) and the state dict, which
then holds the quantizer scales beside the weights. The folder therefore has:

- ``config.json`` and the tokenizer files, as any model folder;
- ``nncf_config.json``: NNCF's hook configuration (JSON);
- ``qat_model.safetensors``: every weight *and* quantizer parameter;
- ``pruneofa.json``: the manifest.

It deliberately has **no** ``model.safetensors``: NNCF's SmoothQuant rescales weights to match scales
that live in the hooks, so loading these weights with plain transformers would give wrong outputs
without any error. Transformers refuses the folder instead, and :func:`load_qat_model` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError, first_line
from pruneofa.core.jsonfile import read_json
from pruneofa.core.modelcheck import check_config

QAT_WEIGHTS = "qat_model.safetensors"
NNCF_CONFIG = "nncf_config.json"


def is_qat_folder(path: str | Path) -> bool:
    folder = Path(path)
    return folder.is_dir() and (folder / NNCF_CONFIG).is_file()


def save_qat_model(model: Any, folder: Path) -> None:
    """Write ``model`` (quantized by ``nncf.quantize``) into ``folder`` in the layout above."""
    import nncf.torch
    from safetensors.torch import save_model

    model.config.save_pretrained(folder)
    (folder / NNCF_CONFIG).write_text(json.dumps(nncf.torch.get_config(model), indent=1), encoding="utf-8")
    save_model(model, str(folder / QAT_WEIGHTS))  # drops tied duplicates (MLM heads), keeps the rest


def load_qat_model(folder: str | Path) -> Any:
    """The QAT model of ``folder``, with its quantizers, in eval mode (outputs identical to when saved)."""
    import nncf.torch
    import transformers
    from safetensors.torch import load_model

    folder = Path(folder)
    if not is_qat_folder(folder):
        raise InputError(
            f"{folder} is not a QAT model folder (no {NNCF_CONFIG}); create one with 'pruneofa qat'"
        )
    if not (folder / QAT_WEIGHTS).is_file():
        raise InputError(f"{folder} has {NNCF_CONFIG} but no {QAT_WEIGHTS}; rerun 'pruneofa qat'")
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
    check_config(config, str(folder))
    architecture = (getattr(config, "architectures", None) or [None])[0]
    model_class = getattr(transformers, architecture or "", None)
    if model_class is None:
        raise InputError(f"{folder}/config.json names no known architecture ({architecture!r})")
    hooks = read_json(folder / NNCF_CONFIG, fix="rerun 'pruneofa qat'")
    model = model_class(config).eval()
    model = nncf.torch.load_from_config(model, hooks)
    try:
        load_model(model, str(folder / QAT_WEIGHTS), strict=True)
    except (RuntimeError, OSError) as err:
        first = first_line(err)
        raise InputError(f"{folder / QAT_WEIGHTS} does not fit {NNCF_CONFIG}: {first}") from err
    return model.eval()
