"""predict.py's speed against train.py's evaluation and a plain transformers pipeline, on the same IMDB reviews.

    python bench/bench_predict.py                                  # 1,000 and 10,000 reviews, 128 tokens
    python bench/bench_predict.py --sizes 1000 --max_length 512

For each size N, in one run on one machine:
  train.py   trains the stand-in briefly (--train_size rows, one epoch) and evaluates N test reviews: its metrics.json
             eval_reviews_per_s (the Trainer's evaluation loop: collation, forward, gathering);
  predict.py labels the same N reviews from a parquet file into another, scoring them: rows/s of its labelling loop
             (reading, tokenizing, forward, writing; the summary line it prints) and of the whole process (start-up
             and model loading included); its accuracy beside train.py's;
  pipeline   pipeline("text-classification", model=MERGED_DIR) called once per review in a loop over the same
             reviews (the model merged by predict.py --merge), truncation at the same length: rows/s of the loop.
Each is a child process. The stand-in is standin_model.py's (the pretrained MiniLM encoder as DistilBERT).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def run(cmd):
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"bench: failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc, time.time() - start


def pipeline_loop(merged, data, n, seed, max_length, out):
    """A child: the plain way to use a merged model, one review at a time; writes its rows/s and labels to out."""
    from datasets import load_dataset
    from transformers import pipeline
    texts = load_dataset(data)["test"].shuffle(seed=seed).select(range(n))["text"]
    classify = pipeline("text-classification", model=merged, device="cpu", truncation=True, max_length=max_length)
    classify(texts[0])  # loaded and warm, as predict.py's loop is
    start = time.time()
    labels = [classify(text)[0]["label"] for text in texts]
    json.dump({"rows_per_s": n / (time.time() - start), "labels": labels}, open(out, "w"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--train_size", type=int, default=100)
    p.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "imdb"))
    p.add_argument("--model", help="a ready stand-in folder (default: build it with standin_model.py)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--_pipeline", nargs=4, help=argparse.SUPPRESS)  # MERGED N OUT (and --max_length): a child run
    a = p.parse_args()
    if a._pipeline:
        merged, data, n, out = a._pipeline
        return pipeline_loop(merged, data, int(n), a.seed, a.max_length, out)

    from datasets import load_dataset
    work = tempfile.mkdtemp(prefix="bench-predict-")
    model = a.model or os.path.join(work, "standin")
    if not a.model:
        run([sys.executable, "standin_model.py", model])
    test = load_dataset(a.data)["test"].shuffle(seed=a.seed)
    rows = []
    for n in a.sizes:
        out = os.path.join(work, f"run-{n}")
        print(f"{n} reviews: train.py ...", flush=True)
        run([sys.executable, "train.py", "--model_name", model, "--dataset_name", a.data, "--train_size",
             str(a.train_size), "--eval_size", str(n), "--max_length", str(a.max_length), "--seed", str(a.seed),
             "--output_dir", out])
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        adapter, reviews = os.path.join(out, "adapter"), os.path.join(work, f"reviews-{n}.parquet")
        test.select(range(n)).to_parquet(reviews)  # train.py's evaluation rows: the same seed, the same shuffle

        print(f"{n} reviews: predict.py ...", flush=True)
        labelled = os.path.join(work, f"labelled-{n}.csv")
        proc, wall = run([sys.executable, "predict.py", adapter, "--file", reviews, "--output", labelled])
        loop = float(re.search(r"labelled \d+ rows in [\d.]+ s \(([\d.]+) rows/s\)", proc.stderr).group(1))
        scored = json.load(open(labelled + ".metrics.json"))

        print(f"{n} reviews: pipeline ...", flush=True)
        merged, result = os.path.join(work, f"merged-{n}"), os.path.join(work, f"pipeline-{n}.json")
        run([sys.executable, "predict.py", adapter, "--merge", merged])
        run([sys.executable, __file__, "--_pipeline", merged, a.data, str(n), result, "--max_length",
             str(a.max_length), "--seed", str(a.seed)])
        piped = json.load(open(result))
        import csv
        ours = [row["predicted"] for row in csv.DictReader(open(labelled, newline="", encoding="utf-8"))]
        rows.append({"n": n, "precision": metrics["mixed_precision"], "train_eval": metrics["eval_reviews_per_s"],
                     "predict_loop": loop, "predict_process": n / wall, "pipeline": piped["rows_per_s"],
                     "train_accuracy": metrics["eval_accuracy"], "predict_accuracy": scored["accuracy"],
                     "same_labels_as_pipeline": sum(x == y for x, y in zip(ours, piped["labels"])) / n})

    print(f"\nmachine: {machine()}\nstand-in model, {a.max_length} tokens, IMDB test reviews (seed {a.seed})")
    print("| reviews | precision | train.py evaluation rows/s | predict.py loop rows/s | predict.py whole process "
          "rows/s | pipeline loop rows/s | accuracy train.py / predict.py | labels same as the pipeline's |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {'fp32' if r['precision'] == 'no' else r['precision']} | {r['train_eval']:.1f} | "
              f"{r['predict_loop']:.1f} | {r['predict_process']:.1f} | {r['pipeline']:.1f} | "
              f"{r['train_accuracy']:.4f} / {r['predict_accuracy']:.4f} | {100 * r['same_labels_as_pipeline']:.1f}% |")
    json.dump({"machine": machine(), "rows": rows}, open(os.path.join(work, "bench_predict.json"), "w"), indent=1)
    print(f"(raw figures: {work}/bench_predict.json)")


if __name__ == "__main__":
    main()
