"""Use an adapter that train.py wrote: label texts, or export a merged standalone model.

    python predict.py outputs/distilbert-imdb-lora/adapter "What a wonderful film." "Dull and far too long."
    python predict.py outputs/distilbert-imdb-lora/adapter --file reviews.txt     # one text per line
    cat reviews.txt | python predict.py outputs/distilbert-imdb-lora/adapter      # or standard input
    printf 'first\tsecond\n' | python predict.py outputs/pairs/adapter            # a pair: two tab-separated fields
    python predict.py outputs/distilbert-imdb-lora/adapter --merge outputs/merged # base + adapter in one model

The base model named in adapter_config.json is loaded first (--base_model points to a local copy instead).
"""
import argparse
import json
import os
import shutil
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("adapter_dir", help="the adapter/ folder of a train.py run")
parser.add_argument("reviews", nargs="*", help="texts to label (a pair: two tab-separated fields); none: read --file "
                                                "or standard input")
parser.add_argument("--file", help="a text file with one text per line (a pair: two tab-separated fields a line)")
parser.add_argument("--base_model", help="base model to load instead of the one in adapter_config.json")
parser.add_argument("--merge", metavar="OUT_DIR", help="write base + adapter as one standalone model to OUT_DIR")
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--max_length", type=int, default=512)
parser.add_argument("--trust_remote_code", action="store_true")
cfg = parser.parse_args()


def fail(message):
    print(f"predict.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# -- check the input before loading anything -------------------------------------------------------
config_path = os.path.join(cfg.adapter_dir, "adapter_config.json")
if not os.path.isfile(config_path):
    fail(f"{cfg.adapter_dir!r} is not an adapter folder (no adapter_config.json); train.py writes one to OUTPUT_DIR/adapter")
if cfg.merge:
    if os.path.exists(cfg.merge) and os.listdir(cfg.merge):
        fail(f"--merge: {cfg.merge!r} already exists and is not empty")
    reviews = []
else:
    if cfg.reviews:
        reviews = cfg.reviews
    else:
        try:
            reviews = open(cfg.file, encoding="utf-8").read().splitlines() if cfg.file else sys.stdin.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"cannot read --file {cfg.file!r}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}")
    reviews = [r for r in reviews if r.strip()]
    if not reviews:
        fail("no reviews given: pass them as arguments, with --file, or on standard input")
    pairs = sum("\t" in r for r in reviews)
    if pairs not in (0, len(reviews)):
        fail(f"{pairs} of {len(reviews)} lines are pairs (two tab-separated fields) and the others are not; "
             f"give all pairs or no pairs")
    if cfg.batch_size <= 0:
        fail(f"--batch_size must be at least 1, got {cfg.batch_size}")

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

base_name = cfg.base_model or json.load(open(config_path))["base_model_name_or_path"]
labels_path = os.path.join(cfg.adapter_dir, "labels.json")
id2label = {int(k): v for k, v in json.load(open(labels_path)).items()} if os.path.exists(labels_path) else None
try:
    tokenizer = AutoTokenizer.from_pretrained(cfg.adapter_dir)
    # the adapter's head has one output per class; the base model's saved head may have another number
    base = AutoModelForSequenceClassification.from_pretrained(
        base_name, trust_remote_code=cfg.trust_remote_code,
        **({"num_labels": len(id2label), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()},
            "ignore_mismatched_sizes": True} if id2label else {}))
    model = PeftModel.from_pretrained(base, cfg.adapter_dir).eval()
except (OSError, ValueError, RuntimeError) as e:
    fail(f"cannot load base model {base_name!r} with this adapter ({str(e).splitlines()[0]}); "
         f"set --base_model to a local copy")

# -- merge: fold the LoRA matrices into the base weights, save like any transformers model -----------
if cfg.merge:
    tmp = cfg.merge.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a merge killed while writing: no stale files in the new model
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp)  # safetensors, config.json with the label names
    tokenizer.save_pretrained(tmp)
    if os.path.isdir(cfg.merge):
        os.rmdir(cfg.merge)  # empty, checked above
    os.replace(tmp, cfg.merge)
    print(f"merged model written to {cfg.merge}/; load it with\n"
          f"  AutoModelForSequenceClassification.from_pretrained(\"{cfg.merge}\")")
    sys.exit(0)

# -- predict, in batches of similar length ----------------------------------------------------------
device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)
order = sorted(range(len(reviews)), key=lambda i: len(reviews[i]))
probabilities = [None] * len(reviews)
with torch.no_grad():
    for start in range(0, len(order), cfg.batch_size):
        ids = order[start:start + cfg.batch_size]
        texts = list(zip(*(reviews[i].split("\t", 1) for i in ids))) if pairs else [[reviews[i] for i in ids]]
        batch = tokenizer(*texts, truncation=True, max_length=cfg.max_length, padding=True,
                          return_tensors="pt").to(device)
        for i, p in zip(ids, model(**batch).logits.float().softmax(-1).tolist()):
            probabilities[i] = p
names = model.config.id2label
width = max(8, *map(len, names.values()))
for review, p in zip(reviews, probabilities):
    best = max(range(len(p)), key=p.__getitem__)
    short = " ".join(review.replace("\t", " | ").split())
    print(f"{names[best]:<{width}}  {p[best]:.3f}  {short[:70] + ('...' if len(short) > 70 else '')}")
