#!/usr/bin/env bash
# The device check, in one call on a machine with an NVIDIA GPU (about 8 minutes at most on one GPU):
#   1. the GPU places of the test suite (torch-cuda-*, cupy-*: pytest -k "cuda or cupy"), on the real device;
#   2. benchmarks/gpu_check.py: the Torch CUDA kernels under torch.cuda.set_sync_debug_mode("error"), then
#      matrix_nms timed on every GPU place for N = 100, 500, 1000, 2000 masks of 200 x 336, checked against
#      NumPy; writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md (a table naming the device).
# Installs nothing: run it in an environment with the project's extras (pip install -e ".[all]").
# Without a GPU it prints "no GPU: skipped" and exits 0.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (default: gpu_check/; PYTHON=... picks the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-gpu_check}"
PYTHON="${PYTHON:-python}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi --query-gpu=name --format=csv,noheader >/dev/null 2>&1; then
    echo "no GPU: skipped (nvidia-smi finds no device)"
    exit 0
fi
mkdir -p "$OUT_DIR"
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"

status=0
# the suite's GPU places; -x: the first failure is enough to report, and keeps within the time
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-fast}" timeout 300 "$PYTHON" -m pytest tests -q -p no:cacheprovider -x \
    -k "cuda or cupy" -m "not cuda_emulation" 2>&1 | tee "$OUT_DIR/pytest_gpu.txt"
test "${PIPESTATUS[0]}" -eq 0 || status=1
timeout 150 "$PYTHON" benchmarks/gpu_check.py "$OUT_DIR" || status=1
echo "results: $OUT_DIR/gpu_check.json, $OUT_DIR/gpu_check.md, $OUT_DIR/pytest_gpu.txt (exit $status)"
exit $status
