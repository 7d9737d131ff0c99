#!/usr/bin/env bash
# One pass on a machine with a CUDA GPU, in phases that each have their own time limit:
#   info        nvidia-smi, python, torch, CUDA, NCCL, triton versions
#   cli         `python3 -m flowforge --version` and `train --help` from the source tree (no install)
#   cuda-tests  tests/test_cuda*.py (skipped on machines without CUDA)
#   suite       the normal test suite on 8 workers, less the notebook and site-build tests
#   benchmark   benchmarks/gpu.py, writing OUT/gpu.json
# A phase that fails or runs out of time is logged and the next one runs; the limits add up to
# 470 s. Everything printed also goes to OUT/log.txt ($OUT if set, else ./device-out).
# Usage: bash scripts/device_check.sh   (from anywhere; PYTHON overrides python3)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
tee_pid=$!
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # absolute: tests start subprocesses in other folders
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 NCCL_DEBUG=WARN MPLBACKEND=Agg
python=${PYTHON:-python3}
failed=()

phase() {  # phase NAME SECONDS COMMAND...: SIGINT at the limit (pytest then prints its summary), KILL 10 s later
  local name=$1 limit=$2 begin=$SECONDS
  shift 2
  echo "=== $name (limit ${limit} s): $*"
  timeout -s INT -k 10 "$limit" "$@"
  local code=$?
  echo "=== $name: exit $code after $((SECONDS - begin)) s"
  [ "$code" -eq 0 ] || failed+=("$name (exit $code)")
}

versions='
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| available", torch.cuda.is_available(), "| devices", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0),
          "| NCCL", torch.cuda.nccl.version(), "| bf16", torch.cuda.is_bf16_supported())
for name in ("triton", "numpy", "matplotlib", "sklearn", "pytest", "xdist", "hypothesis"):
    try:
        print(name, __import__(name).__version__)
    except Exception as error:
        print(name, "-", type(error).__name__)
'
phase info 20 bash -c 'nvidia-smi; "$0" -c "$1"; echo "cpus $(nproc)"; free -g | head -2' "$python" "$versions"
phase cli 20 bash -c '"$0" -m flowforge --version && "$0" -m flowforge train --help | head -3' "$python"
phase cuda-tests 150 "$python" -m pytest -q -p no:cacheprovider -rfEs --tb=short --durations=15 tests/test_cuda*.py
skip=()
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -lt 2 ]; then  # its 2 torchrun ranks, --device auto, would each take a GPU
  skip=(--deselect tests/train/test_distributed.py::test_torchrun_cli_train_matches_single_process)
fi
phase suite 110 "$python" -m pytest -q -p no:cacheprovider -n "${WORKERS:-8}" -rfE --tb=short --durations=10 \
  --ignore=tests/docs/test_notebook.py --ignore=tests/docs/test_site.py --ignore-glob="tests/test_cuda*.py" ${skip[@]+"${skip[@]}"}
phase benchmark 170 "$python" benchmarks/gpu.py --budget 100 --out "$out/gpu.json"

echo "=== done in $SECONDS s; failed: ${failed[*]:-none}"
status=$(( ${#failed[@]} > 0 ))
exec >&- 2>&-  # tee reads to the end and closes OUT/log.txt before the script returns
wait "$tee_pid" 2>/dev/null
exit "$status"
