"""How the fitted temperature and the expected calibration error settle with the number of calibration rows.

    python bench/calibration_rows.py                   # the stand-in, 1,000 IMDB training reviews, 256 tokens
    python bench/calibration_rows.py --data ../shared/data/ag_news --train_size 1000 --max_length 128

train.py trains the stand-in (standin_model.py's MiniLM as DistilBERT) on --train_size rows of the train split, one
epoch, as its default recipe does. Its logits (temperature 1, through predict.py's labelling path) are taken on
rows of the test split (at most 2,000): the first half a pool to draw calibration rows from, the second half to
measure on. For each number
of rows k, 30 seeded draws of k rows from the pool each fit a temperature (calibration.fit_temperature, as train.py
fits it); printed: the temperature's mean and spread, and the expected calibration error (calibration.ece) on the
1,000 measuring rows at it, against the temperature fitted on the whole pool and against no temperature at all.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "imdb"))
    parser.add_argument("--train_size", type=int, default=1000)
    parser.add_argument("--max_length", type=int, default=256)
    a = parser.parse_args()
    import numpy as np
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    work = tempfile.mkdtemp(prefix="calibration-rows-")
    model = os.path.join(work, "standin")
    for cmd in ([sys.executable, "standin_model.py", model],
                [sys.executable, "train.py", "--model_name", model, "--dataset_name", a.data,
                 "--train_size", str(a.train_size), "--eval_size", "50", "--validation_size", "1",
                 "--max_length", str(a.max_length), "--no_baseline", "--mixed_precision", "no",
                 "--output_dir", os.path.join(work, "run")]):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
    import datasets

    import predict
    from textlora import calibration, labelling
    from textlora.labels import SINGLE
    adapter = os.path.join(work, "run", "adapter")
    cfg = predict.arguments([adapter, "--mixed_precision", "no"])
    facts, codec = predict.read_adapter(adapter)
    labeller = labelling.Labeller(cfg, facts, codec, rows=None, bar=False)
    labeller.temperature = 1.0  # the raw logits: each draw fits its own
    test = datasets.load_dataset(a.data)["test"].shuffle(seed=1)
    n = min(2000, len(test)) // 2 * 2
    rows = test.select(range(n))
    logits = np.concatenate([labeller.logits(rows.select(range(i, min(n, i + 500))).with_format("arrow")[:], ["text"])
                             for i in range(0, n, 500)])
    labels = np.asarray(rows["label"])
    half = n // 2
    pool, measure = slice(0, half), slice(half, n)

    def ece_at(t):
        return calibration.ece(calibration.probabilities(logits[measure], SINGLE, t), labels[measure], SINGLE)
    whole = calibration.fit_temperature(logits[pool], labels[pool], SINGLE)
    print(f"machine: {machine()}\nthe stand-in, {a.train_size} training rows of {a.data}, {a.max_length} tokens; "
          f"accuracy on the {half} measuring rows {(logits[measure].argmax(-1) == labels[measure]).mean():.3f}\n")
    print(f"no temperature: ECE {ece_at(1.0):.4f}; fitted on all {half} pool rows: T {whole:.3f}, ECE "
          f"{ece_at(whole):.4f}\n")
    print("| calibration rows | T mean | T sd | ECE mean | ECE sd | ECE worst of 30 |\n|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for k in (k for k in (25, 50, 100, 200, 400, 1000) if k <= half):
        ts, eces = [], []
        for _ in range(30):
            idx = rng.choice(half, size=k, replace=False)
            t = calibration.fit_temperature(logits[pool][idx], labels[pool][idx], SINGLE)
            ts.append(t)
            eces.append(ece_at(t))
        print(f"| {k} | {np.mean(ts):.3f} | {np.std(ts):.3f} | {np.mean(eces):.4f} | {np.std(eces):.4f} | "
              f"{np.max(eces):.4f} |")


if __name__ == "__main__":
    main()
