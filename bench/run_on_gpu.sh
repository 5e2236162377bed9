#!/usr/bin/env bash
# The GPU checks in one run, about 7 minutes on an H100/H200 (each step has its own time limit,
# so one failure does not eat the device's time; the limits add up to 550 s, inside the device
# tool's 600 s per command): parity of the service on CUDA with open_clip,
# bench/embedding.py --device cuda (service vs open_clip in-process), and bench/overhead.py with
# ViT-B-32 fp16: 16 client processes x 1 text / 1 image per call, then 64-image calls.
#
# On the device machine (its own python3 with CUDA torch): Sensorium's other dependencies come
# as wheels in .whl/ (carried; built where PyPI is reachable, for the device's Python, e.g.
#   pip download --only-binary=:all: --python-version 3.12 --no-deps -d .whl \
#     open-clip-torch ftfy regex tokenizers wcwidth timm huggingface-hub safetensors psutil ...
# ) and are installed into /tmp/site. Results go to $OUT (or /tmp/sensorium-gpu).
#
# Without a GPU, to try the script itself:  DEVICE=cpu QUICK=1 bench/run_on_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/sensorium-gpu}"; mkdir -p "$out"
device="${DEVICE:-cuda}"
py="${PYTHON:-python3}"
if [ "${QUICK:-0}" = 1 ]; then  # tiny sizes: proves the steps run, measures nothing
  duration=1; warmup=0.5; items=8; clients=2; wide=4; model=near-free
else
  duration="${DURATION:-8}"; warmup="${WARMUP:-2}"; items=64; clients=16; wide=64; model=ViT-B-32
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:services
else
  export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}services"
fi
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log how it ended
  local name=$1 limit=$2 start=$SECONDS; shift 2
  echo "== $name (limit ${limit} s): $*" | tee -a "$out/steps.txt"
  timeout --kill-after=10 "$limit" "$@"
  echo "== $name: exit $?, $((SECONDS - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/steps.txt"
}

{
  if [ "$device" = cuda ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; fi
  "$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  nproc; cat /proc/loadavg
} 2>&1 | tee "$out/machine.txt"

step parity 120 "$py" bench/gpu_parity.py --device "$device" --items "$items" >"$out/parity.txt" 2>"$out/parity.log"
cat "$out/parity.txt"
step embedding 170 "$py" bench/embedding.py --device "$device" -c "$clients" -d "$duration" -w "$warmup" \
  --json "$out/embedding.json" 2>"$out/embedding.log" | tee "$out/embedding.md"
step overhead-1-item 150 "$py" bench/overhead.py --model "$model" --device "$device" -c "$clients" \
  --repeats 1 --security default -d "$duration" -w "$warmup" --json "$out/overhead-1.json" \
  2>"$out/overhead-1.log" | tee "$out/overhead-1.md"
step overhead-wide-calls 110 "$py" bench/overhead.py --model "$model" --device "$device" --kinds images \
  --images-per-call "$wide" -c 4 "$clients" --repeats 1 --security default -d "$duration" -w "$warmup" \
  --json "$out/overhead-wide.json" 2>"$out/overhead-wide.log" | tee "$out/overhead-wide.md"
