#!/usr/bin/env bash
# The method end to end at a tiny budget with the 1x4 block recipe, ending in the INT8 sparse op:
# masked-LM teacher -> pruneofa-90-block1x4 pruning -> sparse transfer on SST-2 -> NNCF QAT ->
# OpenVINO export with --sparse-ir (INT8 compute, FakeQuantize folded) -> validate against the PyTorch
# QAT model -> benchmark. Usage: bash benchmarks/block_int8_pipeline.sh OUT [STEPS] [DATA]
# (STEPS: pruning/transfer steps, default 40; DATA: a folder with glue/SST-2 and corpus/, default
# ../shared/data). The budget is a rehearsal's: it shows the pipeline and the kernels, not accuracy.
set -euo pipefail
out=${1:?usage: block_int8_pipeline.sh OUT [STEPS] [DATA]}
steps=${2:-40}
data=${3:-../shared/data}
pf=${PRUNEOFA:-.venv/bin/pruneofa}
common=(--seq-len 64 --batch-size 16 --logging-steps 10)
corpus=$data/corpus/wikitext-2-raw/wiki.test.raw
sst2=$data/glue/SST-2
step() { echo "== $*" >&2; "$@"; }
[ -e "$out/teacher-mlm/pruneofa.json" ] || step "$pf" teacher --corpus "$corpus" --steps "$steps" "${common[@]}" --output "$out/teacher-mlm" --overwrite
[ -e "$out/pruned/pruneofa.json" ] || step "$pf" prune "$out/teacher-mlm" --teacher "$out/teacher-mlm" --corpus "$corpus" --recipe pruneofa-90-block1x4 --steps "$steps" "${common[@]}" --output "$out/pruned" --overwrite
[ -e "$out/transfer/pruneofa.json" ] || step "$pf" finetune "$out/pruned" --task sst2 --data "$sst2" --steps "$steps" --learning-rate 2e-4 --eval-limit 200 "${common[@]}" --output "$out/transfer" --overwrite
[ -e "$out/qat/pruneofa.json" ] || step "$pf" qat "$out/transfer" --task sst2 --data "$sst2" --steps $((steps / 2)) --eval-limit 200 "${common[@]}" --no-export --output "$out/qat" --overwrite
[ -e "$out/qat-openvino/pruneofa.json" ] || step "$pf" export "$out/qat" --target openvino --sparse-ir --output "$out/qat-openvino" --overwrite
step "$pf" info "$out/qat-openvino"
step "$pf" validate "$out/qat-openvino" --reference "$out/qat" --data "$sst2" --task sst2 --limit 200
