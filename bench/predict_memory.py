"""predict.py's peak memory against the number of rows: it reads, labels and writes in chunks, so it should not grow.

    python bench/predict_memory.py ADAPTER_DIR [--rows 10000 100000] [--format csv]

Writes a file of N short reviews (the tests' tiny-data words) for each N, runs predict.py on it with --output in the
same format, and prints the child's peak RSS (os.wait4) and its wall time. ADAPTER_DIR: any train.py adapter; the
tests' tiny one keeps 100,000 rows to a few minutes.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import reviews  # noqa: E402  (the tests' review maker: the tiny model's vocabulary)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adapter")
    p.add_argument("--rows", type=int, nargs="+", default=[10000, 100000])
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="predict-memory-")
    for n in a.rows:
        rows = reviews(n, seed=n)
        source = os.path.join(work, f"in-{n}.{a.format}")
        if a.format == "csv":
            with open(source, "w", newline="") as f:
                csv.writer(f).writerows([["id", "text", "label"]] + [[i, t, label] for i, (t, label) in
                                                                      enumerate(zip(rows["text"], rows["label"]))])
        elif a.format == "jsonl":
            with open(source, "w") as f:
                f.writelines(json.dumps({"id": i, "text": t, "label": label}) + "\n"
                             for i, (t, label) in enumerate(zip(rows["text"], rows["label"])))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.table({"id": range(n), **rows}), source)
        del rows
        start = time.time()
        child = subprocess.Popen([sys.executable, os.path.join(ROOT, "predict.py"), a.adapter, "--file", source,
                                  "--output", os.path.join(work, f"out-{n}.{a.format}")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"predict.py failed on {source}; run it by hand to see why")
        print(f"{n:>9,} rows ({a.format}, {os.path.getsize(source) / 2**20:.1f} MiB): peak RSS "
              f"{usage.ru_maxrss / 2**10:.0f} MiB, {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
