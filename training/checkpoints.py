"""Resuming from a Trainer checkpoint with every weight restored under the model's own names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from torch import nn

from pruneofa.core.errors import InputError

_LEGACY = ((re.compile(r"\.gamma$"), ".weight"), (re.compile(r"\.beta$"), ".bias"))
_MAX_SHARDS = 10_000


def _weight_files(folder: Path) -> list[Path] | None:
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return None
    weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    names = sorted(set(weight_map.values()))
    if len(names) > _MAX_SHARDS or any("/" in n or "\\" in n or n.startswith(".") for n in names):
        raise InputError(f"{index}: not a checkpoint index this Trainer wrote; delete {folder} to restart")
    return [folder / n for n in names]


def _aliases(state: dict[str, Any]) -> dict[str, set[str]]:
    """For each state entry, the other names of the same storage (an MLM decoder tied to the embeddings,
    NNCF's scale shared by Q/K/V): safetensors stores such a tensor once, under one of its names."""
    groups: dict[tuple[int, tuple[int, ...]], set[str]] = {}
    for name, tensor in state.items():
        groups.setdefault((tensor.data_ptr(), tuple(tensor.shape)), set()).add(name)
    return {name: group - {name} for group in groups.values() for name in group}


def load_resume_weights(model: nn.Module, checkpoint: Path) -> bool:
    """Load ``checkpoint``'s safetensors weights into ``model`` in place; False when the checkpoint holds no
    safetensors weights (the caller then uses transformers' own loader). Legacy LayerNorm names are mapped
    to the model's; a model weight the checkpoint lacks (other than tied ones) is an :class:`InputError`."""
    from safetensors.torch import load_file

    files = _weight_files(checkpoint)
    if files is None:
        return False
    target = getattr(model, "module", model)
    own = target.state_dict()
    state = {}
    for file in files:
        for name, tensor in load_file(str(file), device="cpu").items():
            if name not in own:
                for pattern, repl in _LEGACY:
                    renamed = pattern.sub(repl, name)
                    if renamed in own:
                        name = renamed
                        break
            state[name] = tensor
    result = target.load_state_dict(state, strict=False)
    aliases = _aliases(own)
    missing = sorted(k for k in result.missing_keys if not aliases.get(k, set()) & state.keys())
    if missing:
        raise InputError(
            f"{checkpoint} lacks {len(missing)} weights of the model (e.g. {missing[0]}), so resuming would "
            f"continue from wrong values; delete {checkpoint.parent} to restart the stage"
        )
    return True
