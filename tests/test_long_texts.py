"""Texts longer than MAX_LENGTH: counted and said, cut, read by head and tail, or read whole in windows, by train.py
and predict.py alike (the round trip of every label kind is in test_round_trip.py)."""
import json

import numpy as np
import pytest
from conftest import BAD, GOOD, in_process


@pytest.fixture(scope="module")
def windows_run(tiny_model, tiny_imdb, tmp_path_factory):
    out = tmp_path_factory.mktemp("windows") / "run"
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200",
                      "--min_epoch_rows", "0", "--eval_size", "100", "--validation_size", "100", "--max_length", "8",
                      "--long_texts", "windows",
                      "--num_epochs", "2",
                      "--mixed_precision", "no", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


def test_long_texts_are_counted_and_said(windows_run, tiny_imdb):
    import datasets
    from transformers import AutoTokenizer
    proc, out = windows_run
    metrics = json.loads((out / "metrics.json").read_text())
    # counted here with the tokenizer directly, on the 100 evaluation rows drawn (datasets' shuffle with the seed)
    tokenizer = AutoTokenizer.from_pretrained(str(out / "adapter"))
    test = datasets.load_dataset(tiny_imdb)["test"]
    drawn = test.shuffle(seed=42).select(range(100))
    longer = sum(len(ids) > 8 for ids in tokenizer(list(drawn["text"]))["input_ids"])
    assert 0 < longer < 100 and metrics["long_texts"]["eval_longer"] == longer
    line = next(line for line in proc.stdout.splitlines() if line.startswith("data:"))
    assert f"and {longer} of 100 evaluation texts are longer than 8 tokens: read whole, in windows of 8 tokens" in line
    assert json.loads((out / "adapter" / "training.json").read_text())["long_texts"] == "windows"
    assert metrics["long_texts"]["said"] in (out / "adapter" / "README.md").read_text()


def test_a_text_of_100000_tokens_is_its_windows_averaged_in_its_place(windows_run, tmp_path):
    import torch
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer
    _, out = windows_run
    adapter = str(out / "adapter")
    rng = np.random.default_rng(0)
    huge = " ".join(rng.choice(GOOD + BAD, 100_000))
    texts = ["great superb loved", huge, "awful boring dull"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    said = in_process("predict", adapter, "--file", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                      "--batch_size", "512")  # 25,000 windows of 8 tokens
    assert said.returncode == 0, said.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == texts  # in their order, one row a text

    # the truth, another way: the model on each window the tokenizer makes, one at a time, their logits averaged
    facts = json.loads((out / "adapter" / "training.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = AutoPeftModelForSequenceClassification.from_pretrained(adapter, num_labels=2).eval()
    windows = tokenizer(huge, truncation=True, max_length=8, stride=facts["stride"], return_overflowing_tokens=True)
    assert len(windows["input_ids"]) > 10_000
    full, last = windows["input_ids"][:-1], windows["input_ids"][-1:]  # all of 8 tokens but the last
    with torch.no_grad():
        logits = np.concatenate([model(input_ids=torch.tensor(part)).logits.numpy()
                                 for part in [full[i:i + 4096] for i in range(0, len(full), 4096)] + [last]])
    logits = logits.mean(0) / facts["temperature"]
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert rows[1]["probability_Positive"] == pytest.approx(p[1], abs=1e-4)


def test_what_cannot_take_windows_is_refused_in_one_line(windows_run, train, tmp_path):
    _, out = windows_run
    merged = in_process("predict", str(out / "adapter"), "--merge", str(tmp_path / "merged"))
    assert merged.returncode == 2 and "--merge: this adapter was trained with --long_texts windows" in merged.stderr
    assert not (tmp_path / "merged").exists()
    proc, _ = train("--long_texts", "windows", "--stride", "6", "--max_length", "8")
    assert proc.returncode == 2 and "--stride 6: windows of 8 tokens (6 of the text's) need a stride from 0 to 5" \
        in proc.stderr, proc.stderr[-2000:]
    proc, _ = train("--long_texts", "head_tail", "--text_column", "text", "text")
    assert proc.returncode == 2 and "--long_texts head_tail reads one text column" in proc.stderr, proc.stderr[-2000:]


def test_max_steps_with_windows_counts_the_windows_seen(tiny_model, tiny_imdb, tmp_path):
    out = tmp_path / "run"
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "40",
                      "--eval_size", "20", "--max_length", "8", "--long_texts", "windows", "--max_steps", "5",
                      "--batch_size", "4", "--mixed_precision", "no", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # 5 steps of 4 rows: about 20 windows (the epochs done, times the windows), whatever the texts they came from
    said = metrics["rows"]["trained_on"]
    assert said.startswith("40 rows of 'train' (") and " windows of the 40 texts seen: --max_steps 5" in said, said
    assert 19 <= int(said.split("(")[1].split()[0]) <= 20, said
