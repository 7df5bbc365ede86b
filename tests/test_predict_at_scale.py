"""predict.py under a launcher: every process labels its share of the rows, rank 0 alone checks the input, writes the
one output file in the input's order, and prints and writes the scores, once; the output is one process's."""
import csv
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, in_process, reviews

LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]


def labelled_file(path, n, seed, blank_text_at=None):
    """A CSV of n reviews with their 0/1 ids, every seventh label left blank (labelled, not scored)."""
    data = reviews(n, seed=seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows([f"{i:05d}", "" if i == blank_text_at else t, "" if i % 7 == 3 else y]
                    for i, (t, y) in enumerate(zip(data["text"], data["label"])))


def under_torchrun(logs, *args):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([*LAUNCH, "--log-dir", str(logs), "--tee", "3", "predict.py", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env={**env, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("launcher", ["torchrun"])  # the name orders it among the long tests (conftest)
def test_two_processes_label_a_file_as_one_does(launcher, trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    # more rows than a chunk (2048), and a last chunk that two processes' batches do not divide evenly
    labelled_file(tmp_path / "big.csv", 2301, seed=31)
    alone = in_process("predict", adapter, "--file", str(tmp_path / "big.csv"), "--output", str(tmp_path / "one.csv"),
                       "--mixed_precision", "no", "--batch_size", "16")
    assert alone.returncode == 0, alone.stderr[-3000:]
    proc = under_torchrun(tmp_path / "logs", adapter, "--file", str(tmp_path / "big.csv"), "--output",
                          str(tmp_path / "two.csv"), "--mixed_precision", "no", "--batch_size", "16")
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said[-5000:]
    one, two = (list(csv.DictReader(open(tmp_path / f"{n}.csv"))) for n in ("one", "two"))
    assert [r["id"] for r in two] == [f"{i:05d}" for i in range(2301)]  # every row once, in the input's order
    assert [r["predicted"] for r in two] == [r["predicted"] for r in one]
    for a, b in zip(one, two):
        assert float(a["probability_Positive"]) == pytest.approx(float(b["probability_Positive"]), abs=1e-6)
    assert json.load(open(tmp_path / "two.csv.metrics.json"))["confusion_matrix"] == \
        json.load(open(tmp_path / "one.csv.metrics.json"))["confusion_matrix"]
    assert said.count("scored 1972 of 2301 rows") == 1 and said.count("labelled 2301 rows") == 1, said[-3000:]
    assert "in each of 2 processes" in said
    assert open(tmp_path / "two.csv.label_issues.csv").read() == open(tmp_path / "one.csv.label_issues.csv").read()
    assert sorted(os.listdir(tmp_path)) == ["big.csv", "logs", "one.csv", "one.csv.label_issues.csv",
                                            "one.csv.metrics.json", "two.csv", "two.csv.label_issues.csv",
                                            "two.csv.metrics.json"]  # no partial file left by either process
    # a bad row: rank 0 says it once, in one line, every process ends, nothing is written
    labelled_file(tmp_path / "bad.csv", 40, seed=32, blank_text_at=17)
    proc = under_torchrun(tmp_path / "logs-bad", adapter, "--file", str(tmp_path / "bad.csv"), "--output",
                          str(tmp_path / "bad-out.csv"))
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "predict.py: error:" in line]
    assert proc.returncode != 0 and len(errors) == 1 and "row 18 has an empty text" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in "".join(p.read_text() for p in (tmp_path / "logs-bad").rglob("*.log"))
    assert not os.path.exists(tmp_path / "bad-out.csv")
