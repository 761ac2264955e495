#!/usr/bin/env bash
# The folders and the two `pruneofa benchmark` runs behind docs/kernels.md's INT8 target tables.
# Usage: bash benchmarks/int8_targets.sh OUT [prepare|avx2|vnni|vnni-bf16|all]   (default all)
#
# prepare: all-MiniLM-L6-v2 one-shot magnitude-pruned (the method's selection, same share per layer) to
#   85 % and 90 % unstructured, 90 % in 1x4 blocks and 90 % in 4x1 blocks; each exported to OpenVINO
#   (feature extraction) and the dense model too; INT8 folders by `pruneofa calibrate` on 300 SST-2
#   training sentences, twice: with NNCF's overflow fix (7-bit weights, what calibrate writes on a CPU
#   without VNNI/AMX) and without (8-bit weights, what it writes on a VNNI CPU).
# avx2: OpenVINO capped with ONEDNN_MAX_CPU_ISA=AVX2 and pruneofa's kernels forced to their AVX2 path:
#   dense FP32, dense INT8, 90 % unstructured FP32 sparse, 85 % unstructured, 90 % 4x1 FP32 and 90 % 1x4
#   INT8 (INT8 compute), batch 1 and 16, seq 128, 2 threads, no peers.
# vnni: the CPU as it is (needs AVX512-VNNI or AVX-VNNI): dense INT8 against 90 % 1x4 INT8 sparse and
#   the FP32 folders, with optimum-intel's own INT8 as the peer; OpenVINO at f32 (pruneofa's default).
# vnni-bf16: the same at OpenVINO's bf16 inference (--precision bf16: OpenVINO's own default on CPUs with
#   native bf16, AVX512_BF16 or AMX), every OpenVINO variant and the peer alike.
# Accuracy is not the point of these folders (one-shot pruning); docs/training.md has trained models.
set -euo pipefail
out=${1:?usage: int8_targets.sh OUT [prepare|avx2|vnni|vnni-bf16|all]}
what=${2:-all}
py=${PYTHON:-.venv/bin/python}
pf=${PRUNEOFA:-.venv/bin/pruneofa}
sst2=${SST2:-../shared/data/glue/SST-2}
duration=${DURATION:-12}
mkdir -p "$out"
if [[ $what == prepare || $what == all ]]; then
  "$py" - "$out" <<'PY'
import sys
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from pruneofa.core.modelio import default_model_path
from pruneofa.training.masks import PruningConfig, apply_pruning, remove_pruning, sparsity_by_module, update_masks

source, out = str(default_model_path()), Path(sys.argv[1])
for name, sparsity, pattern, shape in [
    ("u85", 0.85, "unstructured", (1, 4)), ("u90", 0.9, "unstructured", (1, 4)),
    ("b14", 0.9, "block", (1, 4)), ("b41", 0.9, "block", (4, 1)),
]:
    folder = out / name / "pt"
    if (folder / "config.json").is_file():
        continue
    model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()
    config = PruningConfig(pattern=pattern, block_shape=shape)
    apply_pruning(model, config)
    update_masks(model, sparsity, config)
    remove_pruning(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    shares = sparsity_by_module(model, config).values()
    print(f"{name}: {len(shares)} layers, sparsity {min(shares):.4f}-{max(shares):.4f}", file=sys.stderr)
PY
  dense_src=$("$py" -c "from pruneofa.core.modelio import default_model_path as d; print(d())")
  [[ -e $out/dense/ov/pruneofa.json ]] || "$pf" export "$dense_src" --target openvino --task feature-extraction --output "$out/dense/ov" --quiet
  for name in u85 u90 b14 b41; do
    [[ -e $out/$name/ov/pruneofa.json ]] || "$pf" export "$out/$name/pt" --target openvino --task feature-extraction --output "$out/$name/ov" --quiet
  done
  for name in dense b14; do
    [[ -e $out/$name/ov-int8/pruneofa.json ]] || "$pf" calibrate "$out/$name/ov" --task sst2 --data "$sst2" --overflow-fix disable --output "$out/$name/ov-int8" --quiet
    [[ -e $out/$name/ov-int8-7bit/pruneofa.json ]] || "$pf" calibrate "$out/$name/ov" --task sst2 --data "$sst2" --overflow-fix enable --output "$out/$name/ov-int8-7bit" --quiet
  done
fi
cpu() { echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')load: $(cut -d' ' -f1-3 /proc/loadavg)"; }
if [[ $what == avx2 || $what == all ]]; then
  cpu
  ONEDNN_MAX_CPU_ISA=AVX2 PRUNEOFA_KERNELS_ISA=avx2 "$pf" benchmark \
    "$out/dense/ov" "$out/dense/ov-int8-7bit" "$out/u90/ov" "$out/u85/ov" "$out/b41/ov" "$out/b14/ov-int8-7bit" \
    --vs none --batch 1,16 --seq 128 --threads 2 --duration "$duration" --repeats 4 --output "$out/bench-avx2" --overwrite
fi
if [[ $what == vnni || $what == all ]]; then
  cpu
  "$pf" benchmark "$out/dense/ov" "$out/dense/ov-int8" "$out/u90/ov" "$out/b14/ov-int8" \
    --vs optimum-intel --batch 1,16 --seq 128 --threads 2 --duration "$duration" --repeats 4 --output "$out/bench-vnni" --overwrite
fi
if [[ $what == vnni-bf16 || $what == all ]]; then
  cpu
  "$pf" benchmark "$out/dense/ov" "$out/dense/ov-int8" "$out/u90/ov" "$out/b14/ov-int8" --precision bf16 \
    --vs optimum-intel --batch 1,16 --seq 128 --threads 2 --duration "$duration" --repeats 4 --output "$out/bench-vnni-bf16" --overwrite
fi
