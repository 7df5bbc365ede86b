"""Using a trained adapter: predict.py on arguments, a file and standard input; the merged export; the report."""
import json
import os
import subprocess
import sys

import torch
from conftest import ROOT, reviews


def predict(*args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_predict_labels_reviews_from_arguments_file_and_stdin(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    texts = reviews(6, seed=7)["text"]
    by_args = predict(adapter, *texts)
    assert by_args.returncode == 0, by_args.stderr[-3000:]
    lines = by_args.stdout.strip().splitlines()
    assert len(lines) == 6
    for line, text in zip(lines, texts):
        label, probability, shown = line.split(None, 2)
        assert label in ("Negative", "Positive") and 0.5 <= float(probability) <= 1
        assert text.startswith(shown.rstrip("."))
    (tmp_path / "reviews.txt").write_text("\n".join(texts) + "\n\n")
    by_file = predict(adapter, "--file", str(tmp_path / "reviews.txt"), "--batch_size", "4")
    by_stdin = predict(adapter, stdin="\n".join(texts))
    assert by_file.stdout == by_args.stdout == by_stdin.stdout


def test_predict_refuses_bad_input_with_one_line(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    for args, stdin, words in ((["--file", str(tmp_path / "missing.txt")], None, "cannot read"),
                               ([], "\n  \n", "no reviews"),
                               (["--base_model", str(tmp_path / "nowhere"), "fine film"], None, "--base_model")):
        proc = predict(adapter, *args, stdin=stdin)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("predict.py: error:"), proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr
    proc = predict(trained[1], "fine film")  # the run folder, not its adapter/
    assert proc.returncode == 2 and "not an adapter folder" in proc.stderr


def test_merged_model_loads_alone_and_gives_the_adapters_logits(trained, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    adapter, merged = os.path.join(trained[1], "adapter"), str(tmp_path / "merged")
    proc = predict(adapter, "--merge", merged)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model.safetensors" in os.listdir(merged) and not [f for f in os.listdir(merged) if f.endswith(".bin")]

    standalone = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    assert standalone.config.id2label == {0: "Negative", 1: "Positive"}
    with_adapter = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_model), adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    batch = tokenizer(reviews(20, seed=8)["text"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(standalone(**batch).logits, with_adapter(**batch).logits, rtol=1e-4, atol=1e-5)
    assert predict(adapter, "--merge", merged).returncode == 2  # never over an existing model


def test_run_reports_curves_confusion_matrix_and_examples(trained):
    stdout, out = trained
    with open(os.path.join(out, "training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert tn + fp + fn + tp == 100
    assert abs(metrics["eval_accuracy"] - (tp + tn) / 100) < 1e-9
    assert abs(metrics["eval_precision"] - tp / max(tp + fp, 1)) < 1e-9
    assert abs(metrics["eval_recall"] - tp / max(tp + fn, 1)) < 1e-9
    examples = [line for line in stdout.splitlines() if " predicted " in line and " true " in line]
    assert len(examples) == 3
