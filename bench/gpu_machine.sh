#!/bin/bash
# The whole GPU check in one go, for a lent GPU machine (docs/gpu-validation.md): the real NVML
# path, the meter against nvidia-smi, and a record and a replay with energy. About 4 minutes.
#
#   bash bench/gpu_machine.sh [OUT_DIR]
#
# Needs python3 with torch (CUDA) and transformers, and this project's own dependencies: where
# they are missing (a machine that cannot reach PyPI), put their wheels in .whl/ (see
# docs/gpu-validation.md) and they are installed into a new folder under /tmp first. Each
# step runs under its own time limit and a failed step does not stop the next; the exit status
# is the number of steps that failed. Everything printed is also kept in OUT_DIR/log.txt
# (OUT_DIR: a new folder under /tmp when not given). ONLY="validate replay": those steps alone.
set -u
# A folder of our own: a fixed name under /tmp could be another user's, with links in it.
out=${1:-${OUT:-$(mktemp -d /tmp/ph-gpu-check.XXXXXX)}}
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
py=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d /tmp/ph-site.XXXXXX)  # code goes on PYTHONPATH: never a folder we did not make
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl && export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
failed=0
only=${ONLY:-}
step() {  # step KEY SECONDS NAME COMMAND...
  local key=$1 limit=$2 name=$3; shift 3
  [ -z "$only" ] || [[ " $only " == *" $key "* ]] || return 0
  echo "== $name ($(date -u +%T), limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"; local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  [ $rc = 0 ] || failed=$((failed + 1))
}
step smi 20 "the GPU and its driver" nvidia-smi --query-gpu=name,driver_version,pstate,power.draw,power.limit,memory.used,memory.total,temperature.gpu --format=csv
step versions 60 "versions" $py -c 'import sys, torch, transformers, pynvml; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "nvidia-ml-py", getattr(pynvml, "__version__", "?"))'
step probe 60 "the sampler on the real GPU, beside nvidia-smi" $py bench/nvml_probe.py --alloc-gib 4
step tests 120 "tests/gpu with the real pynvml" $py -m pytest -q -p no:cacheprovider tests/gpu
step cost 90 "the meter's CPU cost with real NVML" $py bench/gpu.py --real --seconds 4
step validate 150 "the meter against nvidia-smi (idle, burn, generation)" \
  $py bench/gpu_validate.py --idle 6 --burn 15 --gen 25 --out "$out/gpu-validate.json"
step replay 240 "record at the gate and replay with energy" $py bench/gpu_replay.py --out "$out/replay"
echo "== $failed step(s) failed"
exit $failed
