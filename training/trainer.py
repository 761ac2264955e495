"""``DistillationTrainer``: ``transformers.Trainer`` plus a frozen teacher whose outputs the student learns.

Only ``compute_loss``, ``create_scheduler`` and ``log`` are overridden; the loop, checkpoints, mixed
precision, gradient accumulation and multi-device launch stay the library's.

Masked-LM steps (teacher preparation and pruning) form vocabulary logits only where a loss needs them:
the output layer (decoder) is bypassed during the forward, and its weight is applied to the masked
positions (the MLM loss), to every non-padding position for full-vocabulary distillation, to the
teacher's top-k tokens with ``top_k``, and nowhere for hidden-state distillation alone. The losses are
the same as with the model's own logits; the 30,522-way matrix product is what is saved.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from pruneofa.core.modelio import hf_base_model, hf_config, hf_output_embeddings
from pruneofa.training.distill import (
    DistillationConfig,
    combined_loss,
    hidden_state_loss,
    kd_divergence,
    kd_loss,
    top_k_kd_divergence,
)

_LABEL_KEYS = ("labels", "start_positions", "end_positions")
logger = logging.getLogger("pruneofa.training")


@functools.cache
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively (CUDA with bf16, or a CPU with
    AVX512_BF16 / AMX through oneDNN); elsewhere bf16 autocast is emulated and slower than float32.
    Cached: asked at every distillation step, and the hardware does not change.

    On a CPU both must agree: oneDNN able to run bf16 (False under ``ONEDNN_MAX_CPU_ISA=AVX2``), and the
    CPU's own flags naming bf16 instructions. oneDNN alone also says yes on AVX-512 CPUs without them
    (Skylake to Ice Lake: it converts and computes in float32), where a bf16 teacher's step measured 1.21x
    slower than a float32 one (docs/training.md, the Intel Xeon step times)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    from pruneofa.core.cpu import detect_cpu

    cpu = detect_cpu()
    if cpu.known and not cpu.has_native_bf16:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# Warnings given once per process, by topic.
_warned_once: dict[str, bool] = {}


def teacher_precision(config: DistillationConfig, device: torch.device) -> AbstractContextManager:
    """The context the teacher's forward runs in: bf16 autocast when asked for (or ``auto``) and native
    here; float32 otherwise, with one warning where bf16 was asked for explicitly."""
    if config.teacher_precision == "float32":
        return nullcontext()
    if not native_bf16(device):
        if config.teacher_precision == "bfloat16" and not _warned_once.get("bf16", False):
            _warned_once["bf16"] = True
            logger.warning(
                "teacher_precision: bfloat16 asked for, but %s has no native bf16 (AVX512_BF16/AMX or a bf16 "
                "GPU): the teacher runs in float32, which is faster here",
                device.type,
            )
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextmanager
def decoder_bypassed(model: nn.Module) -> Iterator[nn.Linear]:
    """Replace the output layer of a masked-LM model by the identity for the forwards inside, so the
    model's ``logits`` are the decoder's *inputs*; yields the decoder (its tied weight and bias)."""
    decoder = hf_output_embeddings(model)
    if not isinstance(decoder, nn.Linear):
        raise TypeError(f"{type(model).__name__} has no Linear output layer to bypass")
    parent_name, _, child = next(n for n, m in model.named_modules() if m is decoder).rpartition(".")
    parent = model.get_submodule(parent_name)
    setattr(parent, child, nn.Identity())
    try:
        yield decoder
    finally:
        setattr(parent, child, decoder)


@contextmanager
def pooler_output(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Capture the output of the model's pooler (BERT/RoBERTa ``base_model.pooler``) during the forwards
    inside, as ``store["pooled"]``; nothing when the model has none."""
    store: dict[str, torch.Tensor] = {}
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is None:
        yield store
        return
    handle = pooler.register_forward_hook(lambda module, args, output: store.__setitem__("pooled", output))
    try:
        yield store
    finally:
        handle.remove()


def _logits(features: torch.Tensor, decoder: nn.Linear) -> torch.Tensor:
    return F.linear(features, decoder.weight, decoder.bias)


def _rows(values: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``values[keep]`` (the non-padding positions of [batch, seq, ...], in order); every position where
    ``keep`` is None, as a view: the same rows without a gather forward and a scatter into zeros backward."""
    return values.flatten(0, 1) if keep is None else values[keep]


class DistillationTrainer(Trainer):
    def __init__(
        self,
        *args: Any,
        teacher: torch.nn.Module | None,
        distillation: DistillationConfig,
        kind: str,
        lr_factor: Callable[[int], float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lr_factor = lr_factor
        self.teacher = teacher
        self.distillation = distillation
        self.kind = kind
        self._terms: dict[str, tuple[float, int]] = {}  # loss term → (sum, count) since the last log
        self._ddp_static_graph = False
        if teacher is not None:
            teacher.eval()
            for parameter in teacher.parameters():
                parameter.requires_grad_(False)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint's weights to resume, under the model's own parameter names, or fail.

        transformers loads them with ``strict=False``, and BERT checkpoints are written with the legacy
        LayerNorm names (``gamma``/``beta``) that ``from_pretrained`` maps but ``load_state_dict`` does not,
        which would leave every LayerNorm at its value from the start of the stage. They are renamed here;
        any other weight still missing is an error."""
        from pruneofa.training.checkpoints import load_resume_weights

        target = model if model is not None else self.model
        if target is None or not load_resume_weights(target, Path(resume_from_checkpoint)):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def training_step(self, model: nn.Module, inputs: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Under torchrun the model arrives wrapped in DDP. The masked-LM loss applies the decoder (tied to
        the word embeddings) outside the model's forward, to non-padding positions only, so that weight gets
        its gradient twice per step, which plain DDP refuses; the graph is the same every step, so DDP's
        static-graph mode (set once, before the first forward) reduces it correctly."""
        if isinstance(model, torch.nn.parallel.DistributedDataParallel) and not self._ddp_static_graph:
            model._set_static_graph()
            self._ddp_static_graph = True
        return super().training_step(model, inputs, *args, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """A custom learning-rate curve (e.g. rewinding at mask updates) when one is given."""
        if self.lr_factor is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            target = optimizer or self.optimizer
            if not isinstance(target, torch.optim.Optimizer):
                raise TypeError("a custom learning-rate curve needs the optimizer created first")
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(target, self.lr_factor)
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.kind == "masked-lm" and not return_outputs:
            return self._masked_lm_loss(model, inputs)
        hidden = self.teacher is not None and self.distillation.hidden_states > 0
        outputs = model(**inputs, output_hidden_states=True) if hidden else model(**inputs)
        loss = outputs.loss
        if self.teacher is not None:
            device = next(model.parameters()).device
            self.teacher.to(device)
            teacher_inputs = {k: v for k, v in inputs.items() if k not in _LABEL_KEYS}
            with torch.no_grad(), teacher_precision(self.distillation, device):
                teacher_out = (
                    self.teacher(**teacher_inputs, output_hidden_states=True)
                    if hidden
                    else self.teacher(**teacher_inputs)
                )
            kd = kd_loss(
                self.kind, outputs, teacher_out, self.distillation.temperature, inputs.get("attention_mask")
            )
            loss = combined_loss(loss, kd, self.distillation)
            if hidden:
                hidden_term = hidden_state_loss(
                    outputs.hidden_states, teacher_out.hidden_states, inputs.get("attention_mask")
                )
                loss = loss + self.distillation.hidden_states * hidden_term
                self._record("hidden_loss", hidden_term)
            self._record("kd_loss", kd)
        return (loss, outputs) if return_outputs else loss

    def _masked_lm_loss(self, model, inputs) -> torch.Tensor:
        """MLM cross-entropy on the masked tokens plus the configured distillation terms (see module doc)."""
        config, teacher = self.distillation, self.teacher
        student = getattr(model, "module", model)  # DDP / accelerate wrappers
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k not in _LABEL_KEYS}
        mask = features.get("attention_mask")
        # the non-padding positions; None where every position counts (no mask, or packed pre-training
        # blocks, which have no padding), decided once for every term below
        keep = mask.bool() if mask is not None and not bool(mask.all()) else None
        logit_kd = teacher is not None and config.alpha_kd > 0
        hidden = teacher is not None and config.hidden_states > 0
        with decoder_bypassed(student) as decoder, pooler_output(student) as pooled:
            out = model(**features, output_hidden_states=hidden)
        head = _rows(out.logits, keep)  # non-padding positions × hidden: the decoder's inputs
        targets = _rows(labels, keep)
        full = logit_kd and config.top_k is None  # the full KL needs the student's logits everywhere
        masked = targets != -100
        logits = _logits(head, decoder) if full else None
        masked_logits = logits[masked] if logits is not None else _logits(head[masked], decoder)
        if bool(masked.any()):
            mlm = F.cross_entropy(masked_logits.float(), targets[masked])
        else:  # no token masked in this batch: no MLM signal, but a loss the graph can use
            mlm = head.sum() * 0.0
        self._record("mlm_loss", mlm)
        if teacher is None:
            return mlm
        teacher.to(head.device)
        with (
            torch.no_grad(),
            teacher_precision(config, head.device),
            pooler_output(teacher) as teacher_pooled,
        ):
            if logit_kd:
                with decoder_bypassed(teacher) as teacher_decoder:
                    teacher_out = teacher(**features, output_hidden_states=hidden)
                teacher_logits = _logits(_rows(teacher_out.logits, keep), teacher_decoder)
            else:  # hidden states (and pooler) only: the teacher's MLM head is never run
                teacher_out = hf_base_model(teacher)(**features, output_hidden_states=True)
        loss = config.alpha_task * mlm
        if logit_kd:
            if logits is not None:
                kd = kd_divergence(logits, teacher_logits, config.temperature)
            else:
                kd = top_k_kd_divergence(
                    head, decoder.weight, decoder.bias, teacher_logits, config.top_k or 0, config.temperature
                )
            loss = loss + config.alpha_kd * kd
            self._record("kd_loss", kd)
        if hidden:
            hidden_term = hidden_state_loss(out.hidden_states, teacher_out.hidden_states, keep)
            loss = loss + config.hidden_states * hidden_term
            self._record("hidden_loss", hidden_term)
        if config.pooler > 0 and "pooled" in pooled and "pooled" in teacher_pooled:
            pooler_term = F.mse_loss(pooled["pooled"].float(), teacher_pooled["pooled"].float())
            loss = loss + config.pooler * pooler_term
            self._record("pooler_loss", pooler_term)
        return loss

    def _record(self, term: str, value: torch.Tensor) -> None:
        """Accumulate an unweighted loss term (``kd_loss``, ``mlm_loss``, ``hidden_loss``, ``pooler_loss``)
        until the next log line, which shows its mean: the terms' shares of the loss along the run."""
        total, count = self._terms.get(term, (0.0, 0))
        self._terms[term] = (total + float(value.detach()), count + 1)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Checkpoints of a model with NNCF quantizers: NNCF shares one scale among the Q/K/V inputs, which
        ``save_pretrained`` refuses as undeclared tied weights; safetensors' ``save_model`` keeps one copy
        of each shared tensor, and the Trainer's non-strict reload fills the others through the sharing."""
        model = self.model
        if model is None or not any(name.startswith("__nncf_hooks") for name, _ in model.named_parameters()):
            return super()._save(output_dir, state_dict)
        from safetensors.torch import save_model

        folder = Path(output_dir or self.args.output_dir or ".")
        folder.mkdir(parents=True, exist_ok=True)
        save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
        hf_config(model).save_pretrained(folder)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._terms and "loss" in logs:
            for term, (total, count) in self._terms.items():
                logs[term] = round(total / count, 4)
            self._terms = {}
        super().log(logs, *args, **kwargs)
