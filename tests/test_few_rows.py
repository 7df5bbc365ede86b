"""A few labelled rows, as the defaults train them: the tiny model, from 8 rows per class of a set it can learn,
learns it with nothing changed but the data (MIN_EPOCH_ROWS: each epoch passes over the rows until it saw 1,000),
where one pass leaves it at chance; and the run says so in the data line, metrics.json, training.json and the card."""
import json
import os
import random

from conftest import in_process, write_split


def one_word(n, seed):
    """The class is one word (great or awful), beside at most one other: a handful of distinct texts per class, so
    8 rows of each hold most of what the evaluation rows are. (The fixture's reviews, 3 to 6 sentiment words among
    filler, a random tiny model learns from 200 rows, and from 16 only memorises.)"""
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    texts = []
    for label in labels:
        words = [rng.choice(["the", "a"]) for _ in range(rng.randint(0, 1))]
        words.insert(rng.randrange(len(words) + 1), "great" if label else "awful")
        texts.append(" ".join(words))
    return {"text": texts, "label": labels}


def test_eight_rows_per_class_are_learnt_with_the_defaults(tiny_model, tmp_path):
    data = tmp_path / "data"
    write_split(data, "train", one_word(16, seed=3))  # 8 rows of each class, all of them trained on
    write_split(data, "test", one_word(100, seed=4))

    def run(name, *flags):
        out = tmp_path / name
        proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "16",
                          "--eval_size", "100", "--output_dir", str(out), *flags)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc, out, json.loads((out / "metrics.json").read_text())

    proc, out, metrics = run("defaults")
    passes = 63  # 1,000 / 16 = 62.5 rows' passes, rounded up: 63 * 16 = 1,008 rows an epoch, 252 steps of 4
    assert metrics["eval_accuracy"] >= 0.8, metrics["eval_accuracy"]
    assert [d for d in os.listdir(out) if d.startswith("checkpoint-")] == ["checkpoint-252"]
    said = f"each epoch passes over them {passes} times (fewer than --min_epoch_rows 1000)"
    assert f"data: 16 rows from 'train' for training ({said})" in proc.stdout
    assert "1 epoch(s) of 63 passes over the rows" in proc.stdout
    assert metrics["rows"]["trained_on"] == f"16 rows of 'train', {said}"
    assert json.loads((out / "adapter" / "training.json").read_text())["passes_per_epoch"] == passes
    assert said in (out / "adapter" / "README.md").read_text()

    # one pass, as before MIN_EPOCH_ROWS: 4 steps of a new random head, and the texts stay near chance
    proc, out, once = run("once", "--min_epoch_rows", "0")
    assert [d for d in os.listdir(out) if d.startswith("checkpoint-")] == ["checkpoint-4"]
    assert once["eval_accuracy"] <= 0.6, once["eval_accuracy"]
    assert "passes" not in proc.stdout and once["rows"]["trained_on"] == "16 rows of 'train'"
    assert json.loads((out / "adapter" / "training.json").read_text())["passes_per_epoch"] == 1
