#!/usr/bin/env bash
# Creates .venv at the repository root and installs exactly requirements.lock, then pruneofa itself.
#
# Why --no-deps: optimum-intel 2.2 declares torchvision, but PyPI's torchvision cannot be imported beside
# the CPU build of torch 2.13 ("operator torchvision::nms does not exist") and, when importable, breaks
# optimum-intel's imports. The lock is a complete, resolved set without torchvision, so installing it
# without resolution gives the same environment on every machine. torch is pinned to 2.13.0; on this
# machine pip takes the CPU build from local disk (never a CUDA build).
# Re-running is cheap: nothing is installed when the lock has not changed since the last run.
#
# pruneofa itself is installed in setuptools' strict editable mode: the component folders at the repository
# root install as `pruneofa.*` (package-dir in pyproject.toml), and strict mode maps them through a tree of
# links (build/__editable__.*) that editors and type checkers (pyright) read, where the default mode uses
# an import hook they cannot. The tree links files, not folders: edits show at once, but a file added to or
# removed from a package appears only after the next run of this script (it notices and relinks in seconds).
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
# What the link tree must hold: the package mapping and every file in the package folders.
tree_stamp=.venv/.pruneofa-tree.sha256
tree_want() {
    { cat pyproject.toml; find pruneofa core training exporter calibration kernels deploy -type f \
        -not -path '*/__pycache__/*' -not -name '*.pyc' | LC_ALL=C sort; } | sha256sum | cut -d' ' -f1
}
install_pruneofa() {
    run_pip install --quiet --no-deps -e . --config-settings editable_mode=strict
    tree_want > "$tree_stamp"
}
# pruneofa's sparse kernels (kernels/, C++): built against the installed openvino wheel into a cache keyed by
# the sources, the OpenVINO version and the compiler, so this is instant when nothing changed. Without a
# compiler, or on a failed build, it prints one warning and everything runs dense; set-up never fails here.
build_kernels() {
    .venv/bin/python -m pruneofa.kernels.build >&2 || echo "pruneofa setup: warning: the sparse kernels were not built; models run dense" >&2
}
log=.venv/setup.log
run_pip() {
    if ! .venv/bin/python -m pip "$@" >>"$log" 2>&1; then
        echo "pruneofa setup: 'pip $*' failed; the last lines of $log:" >&2
        grep -v "is ignored" "$log" | tail -n 20 >&2
        exit 1
    fi
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import pruneofa' 2>/dev/null; then
    if [ ! -f "$tree_stamp" ] || [ "$(cat "$tree_stamp")" != "$(tree_want)" ]; then
        echo "pruneofa setup: package files were added or removed; relinking the editable install..." >&2
        : > "$log"
        install_pruneofa
    fi
    build_kernels
    exit 0
fi
echo "pruneofa setup: installing requirements.lock into .venv (a few minutes the first time)..." >&2
: > "$log"
run_pip install --quiet --upgrade pip
run_pip install --quiet --no-deps -r requirements.lock
install_pruneofa
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
