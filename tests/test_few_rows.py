"""A few labelled rows, as the defaults train them: the tiny model, from 8 rows per class of a set it can learn,
learns it with nothing changed but the data (MIN_EPOCH_ROWS: a contrastive stage on the pairs of the rows, the head
reading the mean of the tokens and starting from a logistic regression, then epochs that pass over the rows until
they saw 128 a class), where one pass leaves it at chance; the run says so in the data line, metrics.json,
training.json and the card, and predict.py and the card's load code label as the run evaluated."""
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
    passes = 16  # after the stage, 128 rows a class an epoch: 256 / 16 = 16 passes, 64 steps of 4
    assert metrics["eval_accuracy"] >= 0.8, metrics["eval_accuracy"]
    assert [d for d in os.listdir(out) if d.startswith("checkpoint-")] == ["checkpoint-64"]
    said = f"under --min_epoch_rows 1000: {passes} passes over them an epoch, 256 rows"
    assert f"data: 16 rows from 'train' for training ({said})" in proc.stdout
    assert "1 epoch(s) of 16 passes over the rows" in proc.stdout
    assert metrics["rows"]["trained_on"] == f"16 rows of 'train', {said}"
    assert json.loads((out / "adapter" / "training.json").read_text())["passes_per_epoch"] == passes
    assert said in (out / "adapter" / "README.md").read_text()
    # before the epochs, the contrastive stage: each row read 20 times, a step of all 16 rows a round
    facts = json.loads((out / "adapter" / "training.json").read_text())
    assert metrics["pooling"] == facts["pooling"] == "mean" and metrics["contrastive_rounds"] == facts[
        "contrastive_rounds"] == 20, (metrics["pooling"], metrics["contrastive_rounds"])
    assert metrics["head_start"] == facts["head_start"] == "logistic regression"
    stage = "each of the 16 training rows read 20 times, in steps of up to 16 rows and all their pairs (of one " \
        "class or two), on the LoRA matrices; the head reads the mean of the tokens"
    assert f"contrastive stage, before the epochs: {stage}\n" in proc.stdout
    assert f"first a contrastive stage: {stage} and started from a logistic regression on it" in (
        out / "adapter" / "README.md").read_text()
    said_by(out, metrics, tmp_path)

    # one pass, as before MIN_EPOCH_ROWS: 4 steps of a new random head, and the texts stay near chance
    proc, out, once = run("once", "--min_epoch_rows", "0")
    assert [d for d in os.listdir(out) if d.startswith("checkpoint-")] == ["checkpoint-4"]
    assert once["eval_accuracy"] <= 0.6, once["eval_accuracy"]
    assert "passes" not in proc.stdout and once["rows"]["trained_on"] == "16 rows of 'train'"
    assert json.loads((out / "adapter" / "training.json").read_text())["passes_per_epoch"] == 1
    assert once["pooling"] == "first token" and once["contrastive_rounds"] == 0 and "contrastive" not in proc.stdout
    assert once["head_start"] == "random"


def said_by(out, metrics, tmp_path):
    """What predict.py and the card's load code say of the evaluation rows (all of the test split) is what
    metrics.json says: their heads read the mean of the tokens too, and --merge, which cannot, refuses."""
    import re

    import pyarrow.parquet as pq
    import torch
    adapter, given = str(out / "adapter"), str(tmp_path / "data" / "test-00000-of-00001.parquet")
    proc = in_process("predict", adapter, "--file", given, "--output", str(tmp_path / "labelled.parquet"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "labelled.parquet.metrics.json").read_text())["accuracy"] == metrics[
        "eval_accuracy"]
    # the card's code runs in fp32: predict.py too for this (the run may evaluate in bf16, where the CPU is faster)
    proc = in_process("predict", adapter, "--file", given, "--output", str(tmp_path / "fp32.parquet"),
                      "--mixed_precision", "no")
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = pq.read_table(tmp_path / "fp32.parquet")
    assert metrics["calibration"] is None  # no rows left to calibrate on: the probabilities are the logits' softmax
    code = re.search(r"```python\n(.*?)```", (out / "adapter" / "README.md").read_text(), re.S).group(1)
    loaded = {}
    exec(code, loaded)
    texts = pq.read_table(given)["text"].to_pylist()
    with torch.no_grad():
        logits = loaded["model"].eval()(**loaded["tokenizer"](texts, padding=True, return_tensors="pt")).logits
    assert [metrics["labels"][i] for i in logits.argmax(-1).tolist()] == written["predicted"].to_pylist()
    probabilities = torch.tensor([written[f"probability_{name}"].to_pylist() for name in metrics["labels"]]).T
    torch.testing.assert_close(logits.softmax(-1), probabilities.float(), rtol=0, atol=1e-5)
    proc = in_process("predict", adapter, "--merge", str(tmp_path / "merged"))
    assert proc.returncode == 2 and "reads the mean of a text's tokens" in proc.stderr and \
        not os.path.exists(tmp_path / "merged"), proc.stderr[-3000:]


def settings(*flags):
    import train
    return train.read_settings(list(flags))


def config_of(model_type, problem="single_label_classification"):
    from transformers import AutoConfig
    return AutoConfig.for_model(model_type, problem_type=problem)


def test_the_rule_and_the_order_of_an_epoch():
    import datasets

    from textlora import few_rows

    def passes(model_type, *flags, classes=2):
        config = config_of(model_type)
        config.num_labels = classes
        return few_rows.passes(settings(*flags), config)
    # with no stage (BERT's head reads its pooler), counted by hand: 1,000 / 16 = 62.5 -> 63; 1,000 / 999 -> 2; 1,000
    # rows and more, once
    assert [passes("bert", "--train_size", str(n)) for n in (16, 999, 1000, 5000)] == [63, 2, 1, 1]
    # after a stage, 128 rows a class, 2 classes: 256 / 16 = 16, 256 / 100 -> 3, 256 / 999 -> 1; 4 classes: 512 / 16
    # = 32; never more than MIN_EPOCH_ROWS (50 / 16 -> 4)
    assert [passes("distilbert", "--train_size", str(n)) for n in (16, 100, 999, 1000)] == [16, 3, 1, 1]
    assert passes("distilbert", "--train_size", "16", classes=4) == 32
    assert passes("distilbert", "--train_size", "16", "--min_epoch_rows", "50") == 4
    assert passes("distilbert", "--train_size", "16", "--no_contrastive_stage") == 63
    assert passes("bert", "--train_size", "16", "--num_epochs", "3") == 63  # per epoch, whatever epochs
    for model_type in ("bert", "distilbert"):
        assert passes(model_type, "--train_size", "16", "--min_epoch_rows", "0") == 1
        assert passes(model_type, "--train_size", "16", "--max_steps", "10") == 1  # --max_steps decides alone

    rows = datasets.Dataset.from_dict({"i": list(range(10)), "length": [3, 9, 4, 4, 7, 1, 8, 2, 6, 5]})

    def order(*flags):
        cfg = settings("--train_size", "10", "--min_epoch_rows", "30", *flags)
        drawn = few_rows.repeated(rows, cfg, few_rows.passes(cfg, config_of("bert")))["i"]
        return [list(drawn[p * 10:(p + 1) * 10]) for p in range(len(drawn) // 10)]

    for flags in ((), ("--no_group_by_length",)):
        passes = order(*flags)
        assert len(passes) == 3 and all(sorted(p) == list(range(10)) for p in passes)  # each pass every row once
        assert len({tuple(p) for p in passes}) == 3  # each pass a shuffle of its own
        assert order(*flags) == passes  # seeded: the same run, the same order
        # another seed, other orders: not the same passes shifted by one (a seed per pass, seed + p, did that)
        other = order("--seed", "43", *flags)
        assert other[0] not in passes and other[1] not in passes
    assert order("--data_seed", "7") == order("--data_seed", "7", "--seed", "1") != order()


def test_the_contrastive_stage_its_rule_its_steps_and_its_loss():
    import torch

    from textlora import few_rows
    from textlora.labels import MULTI, REGRESSION, SINGLE

    def rounds(model_type="distilbert", problem=SINGLE, *flags):
        return few_rows.stage_rounds(settings(*flags), config_of(model_type, problem))
    # 20 reads of each row, at most 2 * MIN_EPOCH_ROWS texts, counted by hand: 2,000 / 500 = 4, 2,000 / 999 -> 3
    assert [rounds("distilbert", SINGLE, "--train_size", str(n)) for n in (16, 100, 500, 999)] == [20, 20, 4, 3]
    assert rounds("roberta", SINGLE, "--train_size", "150", "--min_epoch_rows", "200") == 3  # 400 / 150 -> 3
    assert rounds("distilbert", SINGLE, "--train_size", "16", "--no_contrastive_stage") == 0
    for no_stage in (("distilbert", SINGLE, "--train_size", "1000"),
                     ("distilbert", SINGLE, "--train_size", "16", "--search_trials", "2"),
                     ("distilbert", SINGLE, "--train_size", "16", "--min_epoch_rows", "0"),
                     ("distilbert", SINGLE, "--train_size", "16", "--max_steps", "10"),
                     ("distilbert", MULTI, "--train_size", "16"), ("distilbert", REGRESSION, "--train_size", "16"),
                     ("bert", SINGLE, "--train_size", "16"), ("gpt2", SINGLE, "--train_size", "16")):
        assert rounds(*no_stage) == 0, no_stage

    labels = [0] * 20 + [1] * 13  # 33 rows: 3 steps a round, of 11
    steps = few_rows.batches(labels, 2, seed=1)
    assert [len(s) for s in steps] == [11] * 6
    for r in range(2):  # each round every row once
        assert sorted(int(i) for s in steps[3 * r:3 * r + 3] for i in s) == list(range(33))
    assert [list(s) for s in few_rows.batches(labels, 2, seed=1)] == [list(s) for s in steps] != \
        [list(s) for s in few_rows.batches(labels, 2, seed=2)]
    assert [len(s) for s in few_rows.batches([0] * 17, 1, seed=0)] == [9, 8]  # never a step of one row

    # the loss by hand: pairs (0,1) of one class, (0,2) and (1,2) of two; lengths do not count (cosines)
    def loss(*vectors, labels=(0, 0, 1)):
        return float(few_rows.pair_loss(torch.tensor(vectors, dtype=torch.float), torch.tensor(labels)))
    assert loss([2, 0], [1, 0], [0, 3]) == 0  # one class alike, two apart: nothing to learn
    assert loss([1, 0], [1, 0], [1, 0]) == 1  # (0,2), (1,2): cosine 1 for 0, squared 1 each; their mean 1
    assert loss([1, 0], [0, 1], [1, 0]) == 1.5  # (0,1): 1 from 1; (0,2): 1, (1,2): 0, their mean 0.5
    assert abs(loss([1, 0], [1, 1], [-1, 0], labels=(0, 1, 2)) - (0.5 + 1 + 0.5) / 3) < 1e-6  # no pair of one class
    alone = torch.ones(1, 2, requires_grad=True)
    few_rows.pair_loss(alone, torch.tensor([0])).backward()  # a step with no pair: a loss of 0 that backward takes
    assert alone.grad is not None and not alone.grad.any()


def test_the_head_starts_as_the_logistic_regression_on_what_it_reads(tiny_model, tmp_path):
    """After head_from_features, the model's probabilities on the training rows are scikit-learn's logistic
    regression's, fitted here on the head's inputs as a hook on its last layer reads them: two classes, three, and
    four of which the rows hold three (the fourth is never given)."""
    import datasets
    import numpy as np
    import torch
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model
    from sklearn.linear_model import LogisticRegression

    from textlora import few_rows, pooling
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    texts = one_word(24, seed=5)["text"]
    for classes, labels in ((2, [i % 2 for i in range(24)]), (3, [i % 3 for i in range(24)]),
                            (4, [(0, 1, 3)[i % 3] for i in range(24)])):
        model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=classes,
                                                                           ignore_mismatched_sizes=True)
        model = pooling.mean_pooled(get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_CLS, r=2, target_modules=["q_lin"], modules_to_save=["pre_classifier",
                                                                                        "classifier"])))
        encoded = tokenizer(texts)
        rows = datasets.Dataset.from_dict({**encoded, "label": labels, "text_id": list(range(24)),
                                           "length": [len(ids) for ids in encoded["input_ids"]]})
        args = transformers.TrainingArguments(str(tmp_path), use_cpu=True, per_device_eval_batch_size=5)
        pad = transformers.DataCollatorWithPadding(tokenizer)
        assert few_rows.head_from_features(model, rows, args, pad) == "logistic regression"
        read, mean = [], []
        hooks = [model.base_model.model.classifier.modules_to_save["default"].register_forward_hook(
            lambda module, args, out, read=read: read.append(args[0])),
            model.base_model.model.pre_classifier.register_forward_hook(
                lambda module, args, out, mean=mean: mean.append(args[0]))]
        with torch.no_grad():
            logits = model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        for hook in hooks:
            hook.remove()
        features = torch.cat(read).numpy()
        # the layer before the last (pre_classifier) passes the mean it reads, scaled to at most a half, plus 1, by ReLU
        np.testing.assert_allclose(features, torch.relu(mean[0] / (2 * mean[0].abs().max()) + 1).numpy(), rtol=1e-5)
        features -= features.mean(0)
        scale = 1 / np.linalg.norm(features, axis=1).mean()
        expected = LogisticRegression(max_iter=1000).fit(features * scale, labels).predict_proba(features * scale)
        given = logits.softmax(-1).numpy()
        present = sorted(set(labels))
        # within the solver's tolerance (lbfgs stops at tol 1e-4, on features that differ in their last bits with
        # the padding); a class, a sign, a half or the scale mixed up is off by tenths. Among the classes the rows
        # hold: a class they do not hold takes a share below one row in 24
        kept = given[:, present]
        np.testing.assert_allclose(kept / kept.sum(1, keepdims=True), expected, atol=2e-3)
        absent = given[:, [c for c in range(classes) if c not in present]]
        assert absent.size == 0 or 0 < absent.max() < 1 / 24, absent.max()


def test_a_head_fitted_on_rows_that_differ_by_rounding_alone_stays_small():
    """Rows whose features differ in their last digits (one text padded two ways, a stage that collapsed them) give a
    head that tells nothing apart, not one whose weights, scaled by the inverse of that spread, send a row a
    hundredth away to logits in the thousands."""
    import numpy as np

    from textlora import few_rows
    rng = np.random.default_rng(0)
    row = rng.normal(size=32)
    weight, bias = few_rows.logistic_head(row + rng.normal(scale=1e-7, size=(12, 32)), np.arange(12) % 2, 2)
    near = row + rng.normal(scale=1e-2, size=(5, 32))
    assert np.isfinite(weight).all() and np.abs(near @ weight.T + bias).max() < 1


def test_a_run_recorded_before_the_rule_keeps_one_pass_and_bad_values_are_refused(tmp_path):
    recorded = {"train_size": 16, "eval_size": 100, "num_epochs": 1, "seed": 42}
    old, new, best, mine = (tmp_path / f"{n}.json" for n in ("old", "new", "best", "mine"))
    old.write_text(json.dumps({"settings": recorded, "precision": "no"}))  # a run.json of an earlier train.py
    new.write_text(json.dumps({"settings": recorded | {"min_epoch_rows": 1000}, "precision": "no"}))
    # an earlier search's best_settings.json: every setting of its day, search_trials 0
    best.write_text(json.dumps(recorded | {"search_trials": 0, "output_dir": "x-best", "validation_size": 4,
                                           "eval_batch_size": 4}))
    mine.write_text(json.dumps({"train_size": 16}))  # a user's own settings file: the default
    assert [settings(str(f)).min_epoch_rows for f in (old, new, best, mine)] == [0, 1000, 0, 1000]
    # and before the contrastive stage: its head read the first token, so it does again
    assert [settings(str(f)).contrastive_stage for f in (old, new, best, mine)] == [False, False, False, True]
    assert settings(str(old), "--min_epoch_rows", "500").min_epoch_rows == 500  # a flag over the file wins

    for value in ("-1", "10000001"):
        proc = in_process("train", "--min_epoch_rows", value, "--output_dir", str(tmp_path / "run"))
        assert proc.returncode == 2 and f"--min_epoch_rows must be from 0 (each epoch passes over the rows once) " \
            f"to 10,000,000, got {value}" in proc.stderr, proc.stderr
        assert not (tmp_path / "run").exists()


def test_a_run_of_few_rows_stopped_and_resumed_ends_as_a_straight_one(tiny_model, tiny_imdb, tmp_path):
    """The order of the passes is the run's own (the Trainer takes it as given): a resume from the checkpoint of
    epoch 1 skips nothing that epoch 2 needs, and ends with the straight run's adapter."""
    import signal

    import torch
    from safetensors.torch import load_file
    from test_resilience import start_train, tiny_run, wait_for
    few = ("--train_size", "100", "--min_epoch_rows", "200", "--num_epochs", "2")  # 2 passes: 50 steps an epoch
    straight, out = str(tmp_path / "straight"), str(tmp_path / "stopped")
    done = in_process("train", *tiny_run(tiny_model, tiny_imdb, straight, *few))
    assert done.returncode == 0 and "1 epoch(s)" not in done.stdout, done.stderr[-3000:]
    assert "2 epoch(s) of 2 passes over the rows" in done.stdout
    proc = start_train(tiny_model, tiny_imdb, out, *few)
    wait_for(os.path.join(out, "checkpoint-50"), proc)  # epoch 1 of 2 saved
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    # the same run as begun by the train.py before this recipe for few rows (its run.json without the record of it):
    # refused, in one line, and nothing of it touched
    import shutil
    older = str(tmp_path / "older")
    shutil.copytree(out, older)
    record = json.loads(open(os.path.join(older, "run.json")).read())
    assert record.pop("few_rows")
    with open(os.path.join(older, "run.json"), "w") as f:
        json.dump(record, f)
    before = sorted(os.listdir(older))
    refused = in_process("train", *tiny_run(tiny_model, tiny_imdb, older, *few, "--resume"))
    assert refused.returncode == 2 and "recipe for few rows this one no longer has" in refused.stderr, \
        refused.stderr[-3000:]
    assert sorted(os.listdir(older)) == before
    resumed = in_process("train", *tiny_run(tiny_model, tiny_imdb, out, *few, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_file(os.path.join(f, "adapter", "adapter_model.safetensors")) for f in (straight, out))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
