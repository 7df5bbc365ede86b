"""What users do after the first run: more epochs (the best one kept, early stopping), imbalanced classes (loss
weights), pairs of texts, live curves (TensorBoard). Each runs train.py as a user does and opens what it wrote."""
import json
import os
import random

import pytest
import torch
from conftest import in_process, reviews, write_split
from safetensors.torch import load_file
from test_predict import predict


@pytest.fixture(scope="module")
def overfitting_data(tmp_path_factory):
    """Training labels flipped against the validation and test rows': the more the model learns, the worse it scores
    on them, so an early epoch is the best one (a stark version of a model that starts to overfit)."""
    folder = tmp_path_factory.mktemp("overfitting")
    rows = reviews(400, seed=1)
    write_split(folder, "train", {"text": rows["text"], "label": [1 - label for label in rows["label"]]})
    write_split(folder, "validation", reviews(200, seed=3))
    write_split(folder, "test", reviews(200, seed=2))
    return str(folder)


def accuracy_of(adapter, base, data, split="test", n=100):
    """What a user does: fresh base model, the adapter (or a checkpoint) on top, rows drawn as train.py draws them."""
    from datasets import load_dataset
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    rows = load_dataset(data)[split].shuffle(seed=42).select(range(n))
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(adapter), "adapter"))  # the run's
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        logits = model(**tokenizer(list(rows["text"]), padding=True, return_tensors="pt")).logits
    return (logits.argmax(-1) == torch.tensor(rows["label"])).float().mean().item()


def test_the_best_epoch_is_chosen_on_validation_rows_and_reported_on_others(tiny_model, overfitting_data, tmp_path):
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", overfitting_data, "--train_size", "200",
                      "--min_epoch_rows", "0", "--eval_size", "100", "--num_epochs", "3", "--mixed_precision", "no",
                      "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "200 from 'validation' to choose the epoch kept" in proc.stdout  # the data's own split, all of it
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["rows"]["epoch_kept_chosen_on"].startswith("200 rows of 'validation'")
    assert metrics["rows"]["scores_reported_on"].startswith("100 rows of 'test'")

    # each epoch's score is its checkpoint's accuracy on the validation rows, as a user computes it
    scores = [e["accuracy"] for e in metrics["epochs"]]
    assert [e["scored_on"] for e in metrics["epochs"]] == ["validation"] * 3
    for epoch, score in enumerate(scores, 1):
        checkpoint = os.path.join(out, f"checkpoint-{50 * epoch}")
        assert accuracy_of(checkpoint, tiny_model, overfitting_data, "validation", 200) == pytest.approx(score)
    kept = metrics["kept_epoch"]
    assert kept["epoch"] == scores.index(max(scores)) + 1 and kept["epoch"] < 3, (kept, scores)
    assert kept["score"] == max(scores) > scores[-1] == kept["last_score"]

    # the adapter is that epoch's checkpoint, and the accuracy reported is its accuracy on the test rows
    adapter = os.path.join(out, "adapter")
    final = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    chosen = load_file(os.path.join(out, f"checkpoint-{50 * kept['epoch']}", "adapter_model.safetensors"))
    assert all(torch.equal(final[k], chosen[k]) for k in final)
    assert accuracy_of(adapter, tiny_model, overfitting_data) == pytest.approx(metrics["eval_accuracy"], abs=1e-6)

    said = (f"epoch {kept['epoch']} of 3 kept, best by accuracy on the validation rows ({max(scores):.4f}; "
            f"last epoch {scores[-1]:.4f})")
    assert said in proc.stdout and said in open(os.path.join(adapter, "README.md")).read()


def test_early_stopping_ends_the_run_after_epochs_without_improvement(tiny_model, overfitting_data, tmp_path):
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", overfitting_data, "--train_size", "200",
                      "--min_epoch_rows", "0", "--eval_size", "100", "--num_epochs", "6",
                      "--early_stopping_patience", "2", "--mixed_precision", "no", "--best_metric", "macro_f1",
                      "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    kept = metrics["kept_epoch"]
    # stopped two epochs after the best one, well before the sixth
    assert len(metrics["epochs"]) == kept["epoch"] + 2 < 6, (kept, metrics["epochs"])
    assert kept["by"] == "macro_f1" and kept["score"] == metrics["epochs"][kept["epoch"] - 1]["macro_f1"]
    assert {d for d in os.listdir(out) if d.startswith("checkpoint-")} == {
        f"checkpoint-{50 * e}" for e in range(1, len(metrics["epochs"]) + 1)}


@pytest.mark.slow  # real learning on AG News
def test_balanced_class_weights_lift_the_rare_class(rare_sports):
    """Sports is a tenth of each other class among the training rows; the test rows are as the data set has them.
    The thresholds, and the rows it takes for the effect to show: bench/README.md."""
    recalls = {}
    # the plain run first: the four-class test, started at the same time by the other worker, builds the weighted one
    for weighted in (False, True):
        _, stdout, out = rare_sports(weighted)
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        recalls[weighted] = metrics["per_class"]["Sports"]["recall"]
        if not weighted:  # four classes learned without weights too, the rare one aside
            assert metrics["eval_macro_f1"] >= 0.65 and not metrics["class_weights"], metrics["eval_macro_f1"]
    # the weights are the inverse of each class's share of the drawn rows, as the startup line and metrics.json say
    weights = metrics["class_weights"]
    assert weights[1] > 5 * max(weights[0], weights[2], weights[3]), weights
    assert "loss weights " in stdout
    assert recalls[True] >= 0.6 and recalls[True] >= recalls[False] + 0.1, recalls
    assert metrics["eval_macro_f1"] >= 0.7, metrics["eval_macro_f1"]


def news_pairs(ag_news, path, n, seed=0):
    """Pairs of real AG News items, half of the same topic and half of two topics: do they share a topic?"""
    from datasets import load_dataset
    news = load_dataset(ag_news)["train"]
    rng, by_topic = random.Random(seed), {}
    for i, label in enumerate(news["label"]):
        by_topic.setdefault(label, []).append(i)
    with open(path, "w") as f:
        for k, i in enumerate(rng.sample(range(len(news)), n)):
            topic = news[i]["label"]
            other = rng.choice(by_topic[topic] if k % 2 == 0
                               else by_topic[rng.choice([t for t in by_topic if t != topic])])
            f.write(json.dumps({"first": news[i]["text"], "second": news[other]["text"],
                                "same": "same topic" if k % 2 == 0 else "different topic"}) + "\n")
    return str(path)


@pytest.mark.slow  # real learning on IMDB pairs
def test_pairs_of_texts_are_learned_and_predicted(minilm, real_data, tmp_path):
    """Neither text alone says whether two news items share a topic: the pair must reach the model as one input. The
    bar is chance (0.5) plus about three standard errors at 300 pairs; what runs reach, and why 1,000 pairs of 96
    tokens: bench/README.md."""
    data, out = news_pairs(real_data("ag_news"), tmp_path / "pairs.jsonl", 1300), str(tmp_path / "run")
    proc = in_process("train", "--model_name", minilm, "--dataset_name", data, "--text_column", "first", "second",
                      "--label_column", "same", "--train_size", "1000", "--eval_size", "300", "--max_length", "96",
                      "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pairs of texts from first and second" in proc.stdout
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["config"]["text_column"] == ["first", "second"]
    assert metrics["eval_accuracy"] >= 0.58, metrics["eval_accuracy"]

    # the pair goes in as the tokenizer's pair, with its separator: [CLS] first [SEP] second [SEP]
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(out, "adapter"))
    ids = tokenizer("stocks fell", "the striker scored")["input_ids"]
    assert ids.count(tokenizer.sep_token_id) == 2

    # predict.py: two tab-separated fields a line, from arguments or standard input alike
    lines = ["Stocks fell sharply as oil prices rose\tShares slid on Wall Street as crude climbed",
             "The striker scored twice in the final\tNew chip doubles the speed of laptops"]
    by_args, by_stdin = predict(os.path.join(out, "adapter"), *lines), predict(os.path.join(out, "adapter"),
                                                                               stdin="\n".join(lines))
    assert by_args.returncode == 0, by_args.stderr[-3000:]
    assert by_args.stdout == by_stdin.stdout and len(by_args.stdout.splitlines()) == 2
    assert all(line.split("  ")[0].strip() in ("same topic", "different topic") and " | " in line
               for line in by_args.stdout.splitlines())
    mixed = predict(os.path.join(out, "adapter"), lines[0], "one text alone")
    assert mixed.returncode == 2 and "text 2 is not a pair" in mixed.stderr


def test_tensorboard_gets_the_training_loss_and_the_scores(train):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    # in a process: the warning looked for below is logged by transformers, which only a process's stderr shows
    proc, out = train("--report_to", "tensorboard", "--num_epochs", "2", "--mixed_precision", "no", in_a_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trainer is attempting to log a value" not in proc.stderr  # a dict or a matrix among the scores: dropped
    runs = [os.path.join(root) for root, _, files in os.walk(os.path.join(out, "runs"))
            if any(f.startswith("events.out.tfevents") for f in files)]
    assert len(runs) == 1, runs
    events = EventAccumulator(runs[0])
    events.Reload()
    assert {"train/loss", "eval/validation_accuracy"} <= set(events.Tags()["scalars"]), events.Tags()
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    # per epoch the validation rows' accuracy; the kept adapter's on the evaluation rows comes after the tracker's run
    # has ended (a score logged then would open another run, in trackio and mlflow): metrics.json has it
    assert [e.value for e in events.Scalars("eval/validation_accuracy")] == pytest.approx(
        [e["accuracy"] for e in metrics["epochs"]])
    assert "eval/accuracy" not in events.Tags()["scalars"]
    assert len(events.Scalars("train/loss")) >= 25
