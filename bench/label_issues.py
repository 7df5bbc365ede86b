"""Labels flipped and texts copied on purpose, and what train.py finds of them.

    python bench/label_issues.py          # AG News, the stand-in, about 6 minutes on 2 cores

From ../shared/data/ag_news: 2,000 training rows, 300 validation rows (both from its train split) and 1,000
evaluation rows (its test split), every row drawn. 5% of the training rows and 10% of the evaluation rows get another
class at random (seeded); 30 evaluation texts are replaced by training texts, half of them in upper case with doubled
spaces. train.py trains the stand-in (standin_model.py) on them, one epoch, 128 tokens. Printed: the duplicates found
against those planted, and the precision and recall of the rows label_issues.csv lists against the flips: for the
training rows (the TF-IDF baseline, cross-validated), the evaluation rows by the adapter's probabilities, and the
same evaluation rows by the baseline's (fitted on the training rows), with the cost beside the training time.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def planted(source, folder, seed=0):
    """The data folder with its flips and copies; returns {split: set of flipped positions} and the copies' count."""
    import datasets
    import numpy as np
    rng = np.random.default_rng(seed)
    data = datasets.load_dataset(source)
    train_all = data["train"].shuffle(seed=seed)
    splits = {"train": train_all.select(range(2000)), "validation": train_all.select(range(2000, 2300)),
              "test": data["test"]}
    n_classes = data["train"].features["label"].num_classes
    flipped, copies = {}, 30
    for name, rate in (("train", 0.05), ("test", 0.10)):
        rows = splits[name].to_dict()
        at = rng.choice(len(rows["label"]), size=int(rate * len(rows["label"])), replace=False)
        for i in at:
            rows["label"][i] = int((rows["label"][i] + rng.integers(1, n_classes)) % n_classes)
        flipped[name] = set(int(i) for i in at)
        if name == "test":  # training texts copied into rows that are not flipped
            free = [i for i in range(len(rows["text"])) if i not in flipped["test"]][:copies]
            for k, i in enumerate(free):
                text = splits["train"][k]["text"]
                rows["text"][i] = text.upper().replace(" ", "  ") if k % 2 else text
                rows["label"][i] = splits["train"][k]["label"] if k not in flipped["train"] else rows["label"][i]
        splits[name] = datasets.Dataset.from_dict(rows, features=splits[name].features)
    os.makedirs(folder, exist_ok=True)
    for name, rows in splits.items():
        rows.to_parquet(os.path.join(folder, f"{name}-00000-of-00001.parquet"))
    return flipped, copies, splits


def precision_recall(listed, truth):
    hit = len(listed & truth)
    return (hit / len(listed) if listed else float("nan")), hit / len(truth)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ag_news", default=os.path.join(ROOT, "..", "shared", "data", "ag_news"))
    a = parser.parse_args()
    import numpy as np
    work = tempfile.mkdtemp(prefix="label-issues-")
    flipped, copies, splits = planted(a.ag_news, os.path.join(work, "data"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    model, out = os.path.join(work, "standin"), os.path.join(work, "run")
    for cmd in ([sys.executable, "standin_model.py", model],
                [sys.executable, "train.py", "--model_name", model, "--dataset_name", os.path.join(work, "data"),
                 "--train_size", "2000", "--eval_size", "1000", "--max_length", "128", "--label_names", "none",
                 "--output_dir", out]):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    with open(os.path.join(out, "label_issues.csv"), encoding="utf-8", newline="") as f:
        listed = list(csv.DictReader(f))
    by = {name: {int(e["row"]) for e in listed if e["rows"] == name} for name in ("training", "evaluation")}

    # the baseline's probabilities of the evaluation rows, listed by the same code
    from textlora import baseline, label_issues
    from textlora.calibration import probabilities
    from textlora.labels import SINGLE
    train, test = splits["train"], splits["test"]
    (logits,) = baseline.fit_and_predict(train, [test], SINGLE, 4)
    issues, _ = label_issues.found(np.asarray(test["label"]), probabilities(logits, SINGLE), SINGLE)
    by_baseline = {int(i) for i in issues}

    d = metrics["duplicates"]
    print(f"machine: {machine()}\nAG News, the stand-in, 2,000 training / 300 validation / 1,000 evaluation rows, "
          f"128 tokens, one epoch; accuracy {metrics['eval_accuracy']:.4f} (without the duplicates "
          f"{metrics['eval_without_duplicates']['accuracy']:.4f} on {metrics['eval_without_duplicates']['rows']} "
          f"rows)\n")
    print(f"duplicates: {d['eval_rows_duplicating_a_training_row']} evaluation rows found as training rows "
          f"({copies} planted); {d['training_rows_duplicating_another']} training rows repeating another; "
          f"{d['duplicated_texts_with_different_labels']} texts with different labels\n")
    print("| rows | probabilities | flipped | listed | precision | recall |\n|---|---|---|---|---|---|")
    for rows, source, found, truth in (("training", "TF-IDF baseline, 5-fold", by["training"], flipped["train"]),
                                       ("evaluation", "the adapter (calibrated)", by["evaluation"], flipped["test"]),
                                       ("evaluation", "TF-IDF baseline (fitted on the training rows)", by_baseline,
                                        flipped["test"])):
        p, r = precision_recall(found, truth)
        print(f"| {rows} | {source} | {len(truth)} | {len(found)} | {p:.3f} | {r:.3f} |")
    print(f"\ncost: label issues {metrics['label_issues']['seconds']:.1f} s, beside training "
          f"{metrics['train_runtime_s']:.1f} s and the whole run {metrics['wall_time_s']:.1f} s")


if __name__ == "__main__":
    main()
