#!/usr/bin/env bash
# Run the GPU checks on a machine with an NVIDIA GPU and its own torch (the device tool's
# image): install carried wheels (.whl/, see docs/benchmarks.md) into /tmp/site, then
# the parity check and the embedding benchmark with fp16 on CUDA. Results go to $OUT if set.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/sensorium-gpu}"; mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:services PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
python3 bench/gpu_parity.py 2>&1 | tee "$out/parity.txt"
python3 bench/embedding.py --device cuda -c 16 64 -d "${DURATION:-10}" -w 3 --json "$out/embedding.json" \
  2>"$out/embedding.log" | tee "$out/embedding.md"
