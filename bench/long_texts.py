"""Long texts: cut, head and tail, or every token in windows, on the same reviews. Prints one table.

    python bench/long_texts.py                       # IMDB, the stand-in, 128 tokens: most reviews are longer
    python bench/long_texts.py --max_length 256 --strides 32 64

train.py trains the stand-in (standin_model.py) on --train_size IMDB training reviews, one epoch, at MAX_LENGTH
--max_length, once per LONG_TEXTS (windows once per stride), and scores --eval_size test reviews. For each windows
run the evaluation reviews are labelled again through predict.py's labelling path with each rule that turns a
review's windows into one prediction (the mean of their logits, train.py's rule; their max; the first window alone),
so that the rules are compared on the same window logits. Wall seconds are the whole train.py process.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def rules_on(adapter, imdb, eval_size, seed):
    """Accuracy of each window rule on the run's own evaluation rows (the same draw as train.py's)."""
    import datasets
    import numpy as np

    import predict
    from textlora import inference, labelling
    cfg = predict.arguments([adapter, "--mixed_precision", "no"])
    facts, codec = predict.read_adapter(adapter)
    labeller = labelling.Labeller(cfg, facts, codec, rows=None, bar=False)
    test = datasets.load_dataset(imdb)["test"]
    rows = test.select(np.random.default_rng(seed).permutation(len(test))[:eval_size])  # train.py's draw
    labels = np.asarray(rows["label"])
    kept, found = inference.per_text, {}

    def rule(reduce):
        def per_text(values, text_ids):
            values, ids = np.asarray(values), np.asarray(text_ids)
            return np.stack([reduce(values[ids == i]) for i in np.unique(ids)])
        return per_text
    for name, reduce in (("mean", lambda v: v.mean(0)), ("max", lambda v: v.max(0)), ("first window", lambda v: v[0])):
        inference.per_text = rule(reduce)
        try:
            logits = np.concatenate([labeller.logits(rows.select(range(i, min(len(rows), i + 500))).with_format(
                "arrow")[:], ["text"]) for i in range(0, len(rows), 500)])
        finally:
            inference.per_text = kept
        found[name] = float((logits.argmax(-1) == labels).mean())
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", default=os.path.join(ROOT, "..", "shared", "data", "imdb"))
    parser.add_argument("--train_size", type=int, default=1000)
    parser.add_argument("--eval_size", type=int, default=500)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--strides", type=int, nargs="+", default=[32])
    a = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    work = tempfile.mkdtemp(prefix="long-texts-")
    model = os.path.join(work, "standin")
    subprocess.run([sys.executable, "standin_model.py", model], cwd=ROOT, env=env, check=True, capture_output=True)
    runs = [("truncate", None), ("head_tail", None)] + [("windows", s) for s in a.strides]
    table = []
    for long, stride in runs:
        out = os.path.join(work, f"{long}-{stride}")
        start = time.time()
        proc = subprocess.run([sys.executable, "train.py", "--model_name", model, "--dataset_name", a.imdb,
                               "--train_size", str(a.train_size), "--eval_size", str(a.eval_size), "--max_length",
                               str(a.max_length), "--long_texts", long, *(["--stride", str(stride)] if stride else []),
                               "--mixed_precision", "no", "--output_dir", out], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        m = json.load(open(os.path.join(out, "metrics.json")))
        rules = rules_on(os.path.join(out, "adapter"), a.imdb, a.eval_size, m["config"]["seed"]) \
            if long == "windows" else {}
        table.append((long, stride, m, time.time() - start, rules))
    m = table[0][2]
    print(f"machine: {machine()}\nIMDB, the stand-in, {a.train_size} training / {a.eval_size} evaluation reviews, "
          f"{a.max_length} tokens, one epoch, fp32; {m['long_texts']['said']}\n")
    print("| LONG_TEXTS | stride | accuracy | ECE after calibration | train s | wall s | window rules (accuracy) |\n"
          "|---|---|---|---|---|---|---|")
    for long, stride, m, wall, rules in table:
        said = ", ".join(f"{k} {v:.4f}" for k, v in rules.items())
        print(f"| {long} | {stride or ''} | {m['eval_accuracy']:.4f} | {m['calibration']['ece_after']:.4f} | "
              f"{m['train_runtime_s']:.0f} | {wall:.0f} | {said} |")


if __name__ == "__main__":
    main()
