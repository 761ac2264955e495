#!/bin/bash
# The larger-budget study run on a lent H200 on 2026-11-28 (docs/training.md), exactly as it ran there.
# That machine has torch but not this project's pins, takes at most 64 MiB from here, and cannot reach
# PyPI or a model hub, so its inputs were prepared here first:
#   .whl/   wheels of the lock's transformers 5.5.4, tokenizers 0.22.2, datasets 5.0.1, dill, multiprocess,
#           fsspec, pydantic(-core), annotated-types, typing-inspection, typing-extensions
#           (pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 …),
#           and pruneofa's own wheel (.venv/bin/pip wheel --no-deps --no-build-isolation -w .whl .): the
#           components install under pruneofa.* only through the package mapping, so the bare source tree on
#           PYTHONPATH is not enough
#   .gpu/minilm16/   the embedded MiniLM folder with model.safetensors rounded to fp16 as model16.safetensors
#   .gpu/data/       ../shared/data's SST-2, MRPC and WikiText-2 test files, xz-compressed
# and the command there was:
#   TS=1500 PS=1500 FS=1000 DEADLINE=420 STUDY_S=500 SAVE=1000 TASKS=sst2 bash benchmarks/study_on_gpu.sh
# Since issue 13 the study mixes several corpus sources, runs the pruneofa-0 control and several seeds: a new
# run needs .gpu/data/corpus/{gutenberg,tinyshakespeare} (and glue/RTE for TASKS=sst2,rte) prepared the same
# way, or CORPUS=wikitext-2-raw/wiki.test.raw to keep the old corpus; SEEDS=0,1,2 for three seeds.
# Local dry run of the plumbing (CPU, a few steps):
#   PY=.venv/bin/python OUT=/tmp/gpuout TS=2 PS=4 FS=2 DEADLINE=600 SAVE=2 bash benchmarks/study_on_gpu.sh
set -u
PY=${PY:-python3}
if [ "$PY" = python3 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
W=/tmp/gpuwork; rm -rf $W; mkdir -p $W
$PY - <<PYEOF || exit 4
import lzma, shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
import torch, transformers, datasets, pydantic
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)
src, dst = Path(".gpu/minilm16"), Path("$W/minilm")
dst.mkdir()
for f in src.iterdir():
    if f.is_file() and f.name != "model16.safetensors":
        shutil.copy(f, dst / f.name)
sd = load_file(src / "model16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, dst / "model.safetensors", metadata={"format": "pt"})
for f in Path(".gpu/data").rglob("*.xz"):
    out = Path("$W/data") / f.relative_to(".gpu/data").with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.decompress(f.read_bytes()))
print("prepared", sorted(str(p) for p in Path("$W").rglob("*") if p.is_file()))
PYEOF
timeout -k 5 ${STUDY_S:-480} $PY benchmarks/pruneofa_study.py --out $W/study --model $W/minilm --data $W/data \
  --teacher-steps ${TS:-2000} --prune-steps ${PS:-2000} --finetune-steps ${FS:-1000} --train-limit 0 \
  --save-steps ${SAVE:-1000} --tasks ${TASKS:-sst2} --deadline-s ${DEADLINE:-300} \
  --corpus ${CORPUS:-wikitext-2-raw/wiki.test.raw,gutenberg,tinyshakespeare} --seeds ${SEEDS:-0} > $W/study.log 2>&1
echo "study exit $?"
grep -E "^\[study\]|accuracy|Error|error" $W/study.log | tail -40
(cd $W/study && tar czf $OUT/manifests.tgz */pruneofa.json */recipe.yaml 2>/dev/null)
tr '\r' '\n' < $W/study.log | grep -v -E "it/s\]|s/it\]" | xz -9 > $OUT/study.log.xz
$PY benchmarks/pruneofa_study.py --out $W/study --report > $OUT/report.md 2>/dev/null
cat $OUT/report.md
