#!/usr/bin/env bash
# How often a run launched with torchrun (2 CPU processes, gloo) ends in an abort at exit ("terminate called without
# an active exception") or a non-zero status. Usage, from the repository root:
#   bash bench/launcher_exits.sh [RUNS] [TRAIN_PY]     # defaults: 40 runs of ./train.py
# A tiny random DistilBERT and a small IMDB-shaped data set are built once in $WORK (default /tmp/launcher-exits),
# the same as the test suite's fixtures. Each run's output is kept in $WORK/logs/runN.log.
set -uo pipefail
RUNS=${1:-40}
TRAIN_PY=$(realpath "${2:-train.py}")
WORK=${WORK:-/tmp/launcher-exits}
mkdir -p "$WORK/logs"
if [ ! -e "$WORK/model/config.json" ]; then
  python - "$WORK" <<'PY'
import pathlib, sys
sys.path.insert(0, "tests")
import conftest, torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer
work = pathlib.Path(sys.argv[1])
model = work / "model"
model.mkdir(exist_ok=True)
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + conftest.GOOD + conftest.BAD + conftest.FILLER
(model / "vocab.txt").write_text("\n".join(vocab) + "\n")
DistilBertTokenizer.from_pretrained(str(model)).save_pretrained(str(model))
config = DistilBertConfig(vocab_size=len(vocab), dim=64, hidden_dim=128, n_layers=2, n_heads=2,
                          max_position_embeddings=128, initializer_range=0.2, seq_classif_dropout=0.0)
torch.manual_seed(0)
DistilBertForSequenceClassification(config).save_pretrained(str(model))
conftest.write_split(work / "data" / "plain_text", "train", conftest.reviews(400, seed=1))
conftest.write_split(work / "data" / "plain_text", "test", conftest.reviews(200, seed=2))
PY
  [ -e "$WORK/model/config.json" ] || { echo "could not build the tiny model in $WORK"; exit 1; }
fi
aborts=0; failures=0
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/out"
  env -u OMP_NUM_THREADS HF_HUB_OFFLINE=1 python -m torch.distributed.run --nproc_per_node=2 "$TRAIN_PY" \
    --model_name "$WORK/model" --dataset_name "$WORK/data" --train_size 40 --eval_size 20 --mixed_precision no \
    --output_dir "$WORK/out" > "$WORK/logs/run$i.log" 2>&1
  status=$?
  grep -q "terminate called" "$WORK/logs/run$i.log" && aborts=$((aborts + 1))
  [ "$status" != 0 ] && failures=$((failures + 1))
done
echo "$RUNS runs of $TRAIN_PY under torchrun: $aborts aborted at exit, $failures ended with a non-zero status"
