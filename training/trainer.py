"""``DistillationTrainer``: ``transformers.Trainer`` plus a frozen teacher whose outputs the student learns.

Only ``compute_loss`` and ``log`` are overridden; the loop, checkpoints, mixed precision, gradient
accumulation and multi-device launch stay the library's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import Trainer

from pruneofa.training.distill import DistillationConfig, combined_loss, hidden_state_loss, kd_loss

_LABEL_KEYS = ("labels", "start_positions", "end_positions")


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
        self._kd_sum, self._kd_count = 0.0, 0
        if teacher is not None:
            teacher.eval()
            for parameter in teacher.parameters():
                parameter.requires_grad_(False)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """A custom learning-rate curve (e.g. rewinding at mask updates) when one is given."""
        if self.lr_factor is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, self.lr_factor)
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        hidden = self.teacher is not None and self.distillation.hidden_states > 0
        outputs = model(**inputs, output_hidden_states=True) if hidden else model(**inputs)
        loss = outputs.loss
        if self.teacher is not None:
            self.teacher.to(next(model.parameters()).device)
            teacher_inputs = {k: v for k, v in inputs.items() if k not in _LABEL_KEYS}
            with torch.no_grad():
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
                loss = loss + self.distillation.hidden_states * hidden_state_loss(
                    outputs.hidden_states, teacher_out.hidden_states
                )
            self._kd_sum += float(kd.detach())
            self._kd_count += 1
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Checkpoints of a model with NNCF quantizers: NNCF shares one scale among the Q/K/V inputs, which
        ``save_pretrained`` refuses as undeclared tied weights; safetensors' ``save_model`` keeps one copy
        of each shared tensor, and the Trainer's non-strict reload fills the others through the sharing."""
        if not any(name.startswith("__nncf_hooks") for name, _ in self.model.named_parameters()):
            return super()._save(output_dir, state_dict)
        import os

        from safetensors.torch import save_model

        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        save_model(self.model, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
        self.model.config.save_pretrained(output_dir)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._kd_count and "loss" in logs:
            logs["kd_loss"] = round(self._kd_sum / self._kd_count, 4)
            self._kd_sum, self._kd_count = 0.0, 0
        super().log(logs, *args, **kwargs)
