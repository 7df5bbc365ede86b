"""The settings search against the recipe's own settings, on the stand-in, at small sizes. Prints one table.

    python bench/search.py                            # IMDB and AG News, 8 trials
    python bench/search.py --trials 12 --train_size 500

For each data set train.py runs twice on the same rows: with its own settings (learning rate 1e-3, r 4, alpha 32,
one epoch), and with --search_trials N, whose first trial is those settings again. Both draw the same validation
rows (--validation_size given), on which the search scores its trials; the evaluation rows are scored once, by each
run's final adapter. What pruning saved is counted in epochs (those the pruned trials asked for and did not run) and
in seconds at the search's own mean seconds per epoch run. Wall seconds are the whole train.py process.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def train(model, data, out, a, *flags):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.time()
    proc = subprocess.run([sys.executable, "train.py", "--model_name", model, "--dataset_name", data, "--train_size",
                           str(a.train_size), "--validation_size", str(a.validation_size), "--eval_size",
                           str(a.eval_size), "--max_length", str(a.max_length), "--mixed_precision", "no",
                           "--label_names", "none", "--output_dir", out, *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return json.load(open(os.path.join(out, "metrics.json"))), time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.path.join(ROOT, "..", "shared", "data")
    parser.add_argument("--data", nargs="+", default=[os.path.join(shared, "imdb"), os.path.join(shared, "ag_news")])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--train_size", type=int, default=300)
    parser.add_argument("--validation_size", type=int, default=200)
    parser.add_argument("--eval_size", type=int, default=500)
    parser.add_argument("--max_length", type=int, default=128)
    a = parser.parse_args()
    work = tempfile.mkdtemp(prefix="search-")
    model = os.path.join(work, "standin")
    subprocess.run([sys.executable, "standin_model.py", model], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    rows = []
    for data in a.data:
        name = os.path.basename(data.rstrip("/"))
        own, own_wall = train(model, data, os.path.join(work, f"{name}-own"), a)
        found, wall = train(model, data, os.path.join(work, f"{name}-search"), a, "--search_trials", str(a.trials))
        record = json.load(open(os.path.join(work, f"{name}-search", "search.json")))
        rows.append((name, own, own_wall, found, wall, record))
    print(f"machine: {machine()}\nthe stand-in, {a.train_size} training / {a.validation_size} validation / "
          f"{a.eval_size} evaluation rows, {a.max_length} tokens, fp32; {a.trials} trials\n")
    print("| data | run | settings (lr, r, alpha, epochs) | validation accuracy | evaluation accuracy | trials pruned "
          "| epochs run of asked | pruning saved | search s | final run s | wall s |\n" + "|---" * 11 + "|")
    for name, own, own_wall, found, wall, record in rows:
        c, s = own["config"], found["config"]
        per_epoch = record["seconds"] / max(record["epochs_run"], 1)
        saved = record["epochs_asked"] - record["epochs_run"]
        print(f"| {name} | own settings | {c['learning_rate']:g}, {c['lora_r']}, {c['lora_alpha']}, {c['num_epochs']} "
              f"| {record['own_settings']['value']:.4f} (trial {record['own_settings']['trial']}) | "
              f"{own['eval_accuracy']:.4f} | | | | | {own['train_runtime_s']:.0f} | {own_wall:.0f} |")
        print(f"| {name} | search | {s['learning_rate']:.3g}, {s['lora_r']}, {s['lora_alpha']}, {s['num_epochs']} | "
              f"{record['best']['value']:.4f} (trial {record['best']['trial']}) | {found['eval_accuracy']:.4f} | "
              f"{record['pruned']} of {record['trials_done']} | {record['epochs_run']} of {record['epochs_asked']} | "
              f"{saved} epochs, about {saved * per_epoch:.0f} s | {record['seconds']:.0f} | "
              f"{found['train_runtime_s']:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
