"""predict.py with 1 process and with 2 under torchrun, on the same file: rows/s and the peak memory of each process.

    python bench/predict_processes.py                      # 1,000 IMDB test reviews, the stand-in, 256 tokens
    python bench/predict_processes.py --rows 5000 --max_length 512

The stand-in (standin_model.py's MiniLM as DistilBERT) is trained for a few steps (train.py, 64 rows) so that there
is an adapter; then predict.py labels N reviews from a parquet file into a CSV: once alone (torch's threads over all
cores, as a user runs it) and once under `torchrun --nproc_per_node 2` (one thread a process, torchrun's default).
rows/s is predict.py's own summary line (its labelling loop); peak RSS is the largest of any predict.py process,
sampled with psutil every 20 ms (the launcher's own process left out). The two outputs' labels are compared.
"""
import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # bench.py, beside this file: the same machine line


def run(cmd, env=None):
    """The finished process, its wall time, and the peak RSS (MiB) of the largest process of its tree that ran
    predict.py or train.py (the launcher itself excluded), sampled every 20 ms with psutil."""
    import psutil
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    peaks, root = {}, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for p in [root, *root.children(recursive=True)]:
                if any(s.endswith((".py", "predict.py")) for s in p.cmdline()) and "torch.distributed.run" not in \
                        " ".join(p.cmdline()):
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, 0, out, err), time.time() - start, \
        max(peaks.values()) / 2**20 if peaks else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--imdb", default=os.path.join(ROOT, "..", "shared", "data", "imdb"))
    a = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    work = tempfile.mkdtemp(prefix="predict-processes-")
    model = os.path.join(work, "standin")
    run([sys.executable, "standin_model.py", model], env)
    run([sys.executable, "train.py", "--model_name", model, "--dataset_name", a.imdb, "--train_size", "64",
         "--eval_size", "32", "--validation_size", "32", "--max_length", str(a.max_length), "--mixed_precision", "no",
         "--no_baseline", "--output_dir", os.path.join(work, "run")], env)
    import datasets
    test = datasets.load_dataset(a.imdb)["test"].shuffle(seed=0).select(range(a.rows))
    test.to_parquet(os.path.join(work, "in.parquet"))
    adapter, rows = os.path.join(work, "run", "adapter"), []
    single = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    for name, launcher in (("1 process", []), ("2 processes (torchrun)",
                                               [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"])):
        out = os.path.join(work, f"out-{len(launcher)}.csv")
        proc, wall, peak = run([*(launcher or [sys.executable]), "predict.py", adapter, "--file",
                                os.path.join(work, "in.parquet"), "--output", out, "--mixed_precision", "no"], single)
        rate = float(re.search(r"\(([\d.]+) rows/s\)", proc.stderr).group(1))
        rows.append((name, rate, wall, peak, out))
    first, second = ([r["predicted"] for r in csv.DictReader(open(out))] for *_, out in rows)
    print(f"machine: {machine()}\n{a.rows} IMDB test reviews, {a.max_length} tokens, the stand-in + adapter, fp32\n")
    print("| run | labelling rows/s | whole process s | peak RSS of a process (MiB) |\n|---|---|---|---|")
    for name, rate, wall, peak, _ in rows:
        print(f"| {name} | {rate:.1f} | {wall:.1f} | {peak:.0f} |")
    print(f"\n2 processes / 1: {rows[1][1] / rows[0][1]:.2f}x labelling rows/s; labels equal: {first == second}")


if __name__ == "__main__":
    main()
