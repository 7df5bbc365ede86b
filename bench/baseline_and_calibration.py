"""Issue 30 on real data: the TF-IDF baseline beside the adapter, the calibration before and after, and tuned
thresholds for several labels; and what the baseline costs at 1,000 and 100,000 training rows.

    python bench/baseline_and_calibration.py --imdb ../shared/data/imdb --ag_news ../shared/data/ag_news

One run, one machine, each train.py a child process with the stand-in (standin_model.py) and the defaults:
  imdb      the default run (1,000 + 1,000 reviews, seed 42): adapter and baseline accuracy, ECE and Brier on its
            evaluation rows before and after the temperature (metrics.json); then predict.py on 1,000 IMDB test
            reviews outside every drawn subset (rows 1,000-1,999 of the seeded shuffle of the test split, which the
            evaluation rows are the first 1,000 of): ECE before (the written probabilities with the temperature taken
            back out) and after;
  ag_news   the same on AG News (four classes; the default sizes);
  mixtures  several topics per text: tests/conftest.py's AG News mixtures (1,200 trained on, 300 held out, 400
            evaluated): micro and macro F1 at 0.5 and at the thresholds chosen on the held-out rows;
  cost      the baseline alone (textlora/baseline.py) on 1,000 and 100,000 training rows (IMDB's 50,000 reviews,
            twice), scored on 1,000: seconds.
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
sys.path.insert(0, os.path.join(ROOT, "tests"))
from bench import machine  # noqa: E402  (bench.py, beside this file: the same machine line)


def run(cmd):
    start = time.time()
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        sys.exit(f"bench: failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc, time.time() - start


def train(model, data, out, *flags):
    _, seconds = run(["train.py", "--model_name", model, "--dataset_name", data, "--output_dir", out, *flags])
    return json.load(open(os.path.join(out, "metrics.json"))), seconds


def unseen_ece(out, data, tmp):
    """ECE on 1,000 IMDB test reviews that no subset drew, before and after the adapter's temperature."""
    import numpy as np
    import pyarrow.parquet as pq
    from datasets import load_dataset

    from textlora import calibration
    from textlora.labels import SINGLE
    rows = load_dataset(data)["test"].shuffle(seed=42).select(range(1000, 2000))
    rows.to_parquet(os.path.join(tmp, "unseen.parquet"))
    run(["predict.py", os.path.join(out, "adapter"), "--file", os.path.join(tmp, "unseen.parquet"), "--output",
         os.path.join(tmp, "unseen_out.parquet")])
    table = pq.read_table(os.path.join(tmp, "unseen_out.parquet"))
    after = np.stack([table["probability_Negative"].to_numpy(), table["probability_Positive"].to_numpy()], 1)
    t = json.load(open(os.path.join(out, "adapter", "training.json")))["temperature"]
    before = calibration.probabilities(np.log(np.clip(after, 1e-12, 1)) * t, SINGLE)  # softmax(T log p) = softmax(z)
    labels = np.asarray(rows["label"])
    return {"rows": len(rows), "temperature": t, "accuracy": float((after.argmax(1) == labels).mean()),
            "ece_before": calibration.ece(before, labels, SINGLE), "ece_after": calibration.ece(after, labels, SINGLE)}


def cost(data):
    from datasets import Dataset, concatenate_datasets, load_dataset

    from textlora import baseline
    from textlora.labels import SINGLE
    imdb = load_dataset(data)
    every = concatenate_datasets([imdb["train"], imdb["test"]]).shuffle(seed=0)
    result = {}
    for n in (1000, 100_000):
        rows = concatenate_datasets([every] * (-(-n // len(every)))).select(range(n))
        train_rows = Dataset.from_dict({"text": rows["text"], "label": rows["label"]})
        eval_rows = Dataset.from_dict(imdb["test"].select(range(1000)).to_dict())
        said = baseline.score(train_rows, eval_rows, SINGLE, ["neg", "pos"], 0.5)
        result[n] = said["seconds"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "imdb"))
    parser.add_argument("--ag_news", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "ag_news"))
    parser.add_argument("--only", nargs="+", default=["imdb", "ag_news", "mixtures", "cost"])
    cfg = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "minilm")
        run(["standin_model.py", model])
        rows = []
        for name in ("imdb", "ag_news"):
            if name not in cfg.only:
                continue
            m, seconds = train(model, getattr(cfg, name), os.path.join(tmp, name))
            c, b = m["calibration"], m["baseline"]
            rows.append(f"| {name} | {m['eval_accuracy']:.4f} | {b['accuracy']:.4f} ({b['seconds']:.1f} s) | "
                        f"{c['temperature']:.3g} | {c['ece_before']:.3f} -> {c['ece_after']:.3f} | "
                        f"{c['brier_before']:.3f} -> {c['brier_after']:.3f} | {seconds / 60:.1f} min |")
            if name == "imdb":
                u = unseen_ece(os.path.join(tmp, name), cfg.imdb, tmp)
                unseen = (f"IMDB test rows 1,000-1,999 of the seeded shuffle (never drawn): "
                          f"accuracy {u['accuracy']:.4f}, "
                          f"ECE {u['ece_before']:.3f} -> {u['ece_after']:.3f} (T {u['temperature']:.3g})")
        print("| data | adapter accuracy | TF-IDF + logistic regression | temperature | ECE (15 bins) eval rows | "
              "Brier | run |\n|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        if "imdb" in cfg.only:
            print(unseen)
        if "mixtures" in cfg.only:
            from conftest import news_mixtures
            # the tests' generator, 300 more training texts: the validation rows are drawn from what training leaves
            folder = news_mixtures(cfg.ag_news, os.path.join(tmp, "mixtures"), sizes=(("train", 1500), ("test", 400)))
            m, seconds = train(model, folder, os.path.join(tmp, "mix"), "--label_column", "topics", "--train_size",
                               "1200", "--eval_size", "400", "--validation_size", "300")
            c = m["calibration"]
            shown = {k: c.get(k) for k in ("thresholds", "scores_at_0.5")} if c else "no calibration rows"
            print(f"mixtures (several topics per text): {json.dumps(shown)}")
            if c:
                print(f"micro F1 at 0.5 {c['scores_at_0.5']['micro_f1']:.4f}, at the chosen thresholds "
                      f"{c['scores_at_thresholds']['micro_f1']:.4f}; macro F1 {c['scores_at_0.5']['macro_f1']:.4f} -> "
                      f"{c['scores_at_thresholds']['macro_f1']:.4f}; baseline micro F1 {m['baseline']['micro_f1']:.4f}")
        if "cost" in cfg.only:
            seconds = cost(cfg.imdb)
            print("baseline alone (fit on N rows, score 1,000): "
                  + ", ".join(f"{n:,} rows {s:.1f} s" for n, s in seconds.items()))


if __name__ == "__main__":
    main()
