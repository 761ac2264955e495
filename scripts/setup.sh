#!/usr/bin/env bash
# Creates .venv at the repository root and installs exactly requirements.lock, then pruneofa itself.
#
# Why --no-deps: optimum-intel 2.2 declares torchvision, but PyPI's torchvision cannot be imported beside
# the CPU build of torch 2.13 ("operator torchvision::nms does not exist") and, when importable, breaks
# optimum-intel's imports. The lock is a complete, resolved set without torchvision, so installing it
# without resolution gives the same environment on every machine. torch is pinned to 2.13.0; on this
# machine pip takes the CPU build from local disk (never a CUDA build).
# Re-running is cheap: nothing is installed when the lock has not changed since the last run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "pruneofa setup: Python >= 3.11 is needed ($("$python" --version 2>&1) found); set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.pruneofa-lock.sha256
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
# pruneofa's sparse kernels (kernels/, C++): built against the installed openvino wheel into a cache keyed by
# the sources, the OpenVINO version and the compiler, so this is instant when nothing changed. Without a
# compiler, or on a failed build, it prints one warning and everything runs dense; set-up never fails here.
build_kernels() {
    .venv/bin/python -m pruneofa.kernels.build >&2 || echo "pruneofa setup: warning: the sparse kernels were not built; models run dense" >&2
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import pruneofa' 2>/dev/null; then
    build_kernels
    exit 0
fi
echo "pruneofa setup: installing requirements.lock into .venv (a few minutes the first time)..." >&2
log=.venv/setup.log
: > "$log"
run_pip() {
    if ! .venv/bin/python -m pip "$@" >>"$log" 2>&1; then
        echo "pruneofa setup: 'pip $*' failed; the last lines of $log:" >&2
        grep -v "is ignored" "$log" | tail -n 20 >&2
        exit 1
    fi
}
run_pip install --quiet --upgrade pip
run_pip install --quiet --no-deps -r requirements.lock
run_pip install --quiet --no-deps -e .
# A torchvision left from an earlier resolving install breaks optimum-intel's imports (see above).
if .venv/bin/python -m pip show --quiet torchvision >/dev/null 2>&1; then run_pip uninstall --quiet -y torchvision; fi
.venv/bin/python - <<'PY'
import sys, torch
if torch.version.cuda is not None:
    sys.exit(f"pruneofa setup: a CUDA build of torch ({torch.__version__}) was installed; install the CPU "
             "build of torch 2.13.0 from PyTorch's CPU wheel index into .venv and re-run")
import pruneofa  # noqa: F401
PY
echo "$want" > "$stamp"
build_kernels
