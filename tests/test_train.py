"""A user's session with train.py: run it on the tiny model and data, then open what it wrote."""
import hashlib
import json
import os
import shutil

import pytest
import torch
from conftest import in_process, run_train, write_split

from safetensors.torch import load_file


def files_digest(folder):
    """Names and contents of every file under folder: equal digests mean nothing was touched."""
    h = hashlib.sha256()
    for root, _dirs, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(path.encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_run_leaves_checkpoints_adapter_metrics_and_card(train):
    proc, out = train("--num_epochs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one checkpoint per epoch: 200 reviews / batch 4 = 50 steps each
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-100", "checkpoint-50"]

    adapter = os.path.join(out, "adapter")
    config = json.load(open(os.path.join(adapter, "adapter_config.json")))
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 32, 0.01)
    assert config["target_modules"] == ["q_lin"]
    assert {"pre_classifier", "classifier"} <= set(config["modules_to_save"])  # the trained head travels with it
    weights = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    assert any("lora_A" in k for k in weights) and any("classifier" in k for k in weights)
    assert {w.dtype for w in weights.values()} == {torch.float32}  # trained in fp32 even where bf16 runs the products
    assert {"tokenizer.json", "tokenizer_config.json", "README.md"} <= set(os.listdir(adapter))
    assert not [f for f in os.listdir(adapter) if f.endswith((".bin", ".pt", ".pth"))]

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert [(e["epoch"], e["scored_on"]) for e in metrics["epochs"]] == [(1, "validation"), (2, "validation")]
    assert all(e["train_loss"] > 0 for e in metrics["epochs"])
    assert metrics["train_runtime_s"] > 0 and metrics["train_reviews_per_s"] > 0 and metrics["eval_reviews_per_s"] > 0
    assert metrics["device"] == "cpu"
    # auto precision on a CPU: measured here (the rule: test_functions.py), and the startup line and the card say
    # what was chosen and why
    assert metrics["mixed_precision"] in ("bf16", "no") and set(metrics["matmul_gflops"]) == {"fp32", "bf16"}
    chosen = "bf16" if metrics["mixed_precision"] == "bf16" else "fp32"
    assert f"training on cpu in {chosen} (matmul " in proc.stdout
    assert set(metrics["versions"]) == {"torch", "transformers", "peft"}
    assert metrics["config"]["train_size"] == 200 and metrics["config"]["eval_size"] == 100
    # the other settings are the constants' defaults
    defaults = {"group_by_length": True, "attention_dropout": 0.0, "hidden_dropout": 0.0, "mixed_precision": "auto",
                "target_modules": ["q_lin"], "text_column": ["text"], "label_column": ["label"],
                "label_names": ["neg=Negative", "pos=Positive"], "num_epochs": 2, "best_metric": "auto",
                "early_stopping_patience": None, "class_weights": [], "report_to": "none", "validation_size": 100}
    assert {k: metrics["config"][k] for k in defaults} == defaults

    # the validation rows are scored once per epoch; the evaluation rows only after training, by the kept adapter
    state = json.load(open(os.path.join(out, "checkpoint-100", "trainer_state.json")))
    assert len([h for h in state["log_history"] if "eval_validation_accuracy" in h]) == 2
    assert not [h for h in state["log_history"] if "eval_accuracy" in h]
    assert proc.stdout.count("'eval_validation_accuracy'") == 2 and "'eval_accuracy'" not in proc.stdout

    card = open(os.path.join(adapter, "README.md")).read()
    for fact in ("200 texts", "100 from `test`", "r=4", "alpha=32", "dropout=0.01", "q_lin", "learning rate 0.001",
                 "batch size 4", "2 epoch", f"{metrics['eval_accuracy']:.4f}", metrics["config"]["base_model"],
                 f"{chosen} (matmul ", "GFLOP/s", "0 = Negative, 1 = Positive"):
        assert fact in card, fact

    summary = proc.stdout[proc.stdout.rindex("=" * 72, 0, proc.stdout.rindex("=" * 72)):]
    assert f"accuracy {metrics['eval_accuracy']:.4f}" in summary
    assert adapter in summary and "AutoPeftModelForSequenceClassification.from_pretrained" in summary
    examples = [line for line in summary.splitlines() if " predicted " in line]
    assert len(examples) == 3 and not any(line.endswith('..."') for line in examples)  # the fixture's texts are short


def test_reloaded_adapter_predicts_like_the_trained_model(trained, tiny_model, tiny_imdb):
    import torch
    from datasets import load_dataset
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, out = trained
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["eval_accuracy"] >= 0.6, "the tiny model should learn the tiny data"

    # what a user does: fresh base model, adapter on top, predict the same eval subset
    eval_rows = load_dataset(tiny_imdb)["test"].shuffle(seed=42).select(range(100))
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(out, "adapter"))
    batch = tokenizer(list(eval_rows["text"]), padding=True, return_tensors="pt")
    labels = torch.tensor(eval_rows["label"])
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        base_logits = base(**batch).logits
        model = PeftModel.from_pretrained(base, os.path.join(out, "adapter")).eval()
        logits = model(**batch).logits
    accuracy = (logits.argmax(-1) == labels).float().mean().item()
    assert accuracy == pytest.approx(metrics["eval_accuracy"], abs=1e-6)
    assert not torch.allclose(logits, base_logits), "the trained head must come with the adapter"

    # the adapter holds exactly the weights of the kept epoch's checkpoint (the best of three)
    final = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
    last = load_file(os.path.join(out, f"checkpoint-{50 * metrics['kept_epoch']['epoch']}",
                                  "adapter_model.safetensors"))
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)


# ---- bad input: one line on stderr, exit status 2, nothing written ---------------------------------

@pytest.fixture
def bad_datasets(tmp_path_factory):
    from conftest import reviews
    root = tmp_path_factory.mktemp("bad")
    import datasets
    rows = reviews(50, seed=3)
    for name, table in {"one_label": {"text": rows["text"], "label": [1] * 50},
                        "empty_text": {"text": rows["text"][:7] + ["  "] + rows["text"][8:], "label": rows["label"]},
                        "missing_label": {"text": rows["text"],
                                          "label": rows["label"][:9] + [None] + rows["label"][10:]},
                        "dict_label": {"text": rows["text"], "label": [{"stars": i % 3} for i in range(50)]}}.items():
        for split in ("train", "test"):
            os.makedirs(root / name, exist_ok=True)
            datasets.Dataset.from_dict(table).to_parquet(str(root / name / f"{split}-00000-of-00001.parquet"))
    return root


def assert_refused(proc, out, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    # progress bars may come first; the message is the one last line, and no traceback
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("train.py: error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len([line for line in lines if "rror" in line]) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    assert not os.path.exists(out)


# Settings refused before anything is loaded are also checked in-process (test_functions.py); these cases show the
# whole process: exit status 2, one line, nothing written, for a setting and for each kind of data check.
@pytest.mark.parametrize("flags, words", [
    (["--train_size", "0"], ["--train_size", "at least 1"]),
    (["--eval_size", "201"], ["'test'", "200"]),
    (["--num_epochs", "2", "--validation_size", "201"],  # drawn from 'train' after the 200 training rows
     ["--train_size + --validation_size = 401, but split 'train'", "400 rows"]),
    (["--train_split", "validation"], ["validation", "train, test"]),
    (["--text_column", "review"], ["no 'review' column", "text, label", "--text_column"]),
    (["--label_column", "stars"], ["no 'stars' column", "text, label", "--label_column"]),
    (["--class_weights", "1", "2", "3"], ["--class_weights has 3 numbers for 2 classes (Negative, Positive)"]),
    (["--text_column", "text", "summary"], ["no 'summary' column", "--text_column"]),
    (["--report_to", "wandb"], ["--report_to wandb", "pip install wandb"]),  # not in tests/requirements.txt
])
def test_bad_flags_are_refused(tiny_model, tiny_imdb, tmp_path, flags, words):
    if "--report_to" in flags:
        import importlib.util
        assert importlib.util.find_spec("wandb") is None, "this case needs a tracker that is not installed"
    said = refused_in_process(tiny_model, tiny_imdb, tmp_path, *flags)
    for word in words:
        assert word in said, (word, said)


def refused_in_process(tiny_model, tiny_imdb, tmp_path, *flags):
    """train.py's main() in this process, as the script runs it: what it refuses with (one line), nothing written.
    The process around it (exit status 2, the line on stderr) is shown once, by test_a_refusal_is_one_line."""
    import train as recipe
    from textlora import Refused
    out = tmp_path / "run"
    with pytest.raises(Refused) as refusal:
        recipe.main(["--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200", "--eval_size",
                     "100", "--min_epoch_rows", "0", "--validation_size", "100", "--output_dir", str(out), *flags])
    message = str(refusal.value)
    assert message and "\n" not in message and not out.exists(), message
    return message


@pytest.mark.parametrize("flags, words", [
    (["--train_size", "0"], ["--train_size", "at least 1"]),  # a setting, refused before anything is loaded
    (["--text_column", "review"], ["no 'review' column", "text, label", "--text_column"]),  # a data check
])
def test_a_refusal_is_one_line_exit_2_and_writes_nothing(train, flags, words):
    assert_refused(*train(*flags, in_a_process=True), *words)


@pytest.mark.parametrize("name, words", [
    ("one_label", ["all 20 training rows", "'1'", "two classes"]),
    ("empty_text", ["1 rows of split 'train'", "empty or missing", "row 7"]),
    ("missing_label", ["1 rows of split 'train'", "row 9"]),
    ("dict_label", ["--label_column 'label'", "holds {'stars'", "class names, integer ids"]),
])
def test_bad_datasets_are_refused(tiny_model, bad_datasets, tmp_path, name, words):
    said = refused_in_process(tiny_model, str(bad_datasets / name), tmp_path, "--train_size", "20", "--eval_size",
                              "20", "--validation_size", "10")
    for word in words:
        assert word in said, (word, said)


def test_target_modules_that_the_model_lacks_are_named_with_its_layers(tiny_imdb, tiny_model, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
    bert = tmp_path / "tiny-bert"
    BertForSequenceClassification(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=64)).save_pretrained(str(bert))
    BertTokenizer.from_pretrained(tiny_model).save_pretrained(str(bert))
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", str(bert), "--dataset_name", tiny_imdb, "--output_dir", out,
                      "--train_size", "10", "--eval_size", "10", "--target_modules", "query", "q_lin")
    assert_refused(proc, out, "--target_modules q_lin match nothing", "query", "value")  # only the missing one named


def test_unwritable_output_dir_is_refused(train, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    out = str(tmp_path / "a_file" / "run")
    assert_refused(*train(output_dir=out), "cannot be written")


def test_finished_run_is_kept_unless_overwrite(train, trained, tmp_path):
    out = str(tmp_path / "finished")
    shutil.copytree(trained[1], out)  # a finished 3-epoch run
    before = files_digest(out)
    proc, _ = train("--learning_rate", "0.01", output_dir=out)
    assert proc.returncode == 2 and "--overwrite_output_dir" in proc.stderr
    assert files_digest(out) == before
    # a folder that holds anything but a run is not replaced: the user's files, and the run with them, stay
    os.makedirs(os.path.join(out, "precious"))
    with open(os.path.join(out, "precious", "thesis.txt"), "w") as f:
        f.write("thesis")
    before = files_digest(out)
    proc, _ = train("--learning_rate", "0.01", "--overwrite_output_dir", output_dir=out)
    assert proc.returncode == 2 and "also holds 'precious'" in proc.stderr, proc.stderr[-3000:]
    assert files_digest(out) == before
    shutil.rmtree(os.path.join(out, "precious"))
    proc, _ = train("--learning_rate", "0.01", "--overwrite_output_dir", output_dir=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.load(open(os.path.join(out, "metrics.json")))["config"]["learning_rate"] == 0.01
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-50"]


@pytest.mark.parametrize("flags, flag", [([], "--dataset_name"),
                                         (["--dataset_name", "TINY_IMDB", "--train_size", "10", "--eval_size", "10"],
                                          "--model_name")])
def test_unreachable_hub_fails_fast_with_one_line(tiny_imdb, tmp_path, flags, flag):
    """The defaults are Hub names; with no network and no cache the script says what to set, quickly."""
    flags = [tiny_imdb if f == "TINY_IMDB" else f for f in flags]
    out = str(tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))}
    env["HF_HOME"] = str(tmp_path / "empty-cache")  # nothing cached
    # a process alone spends seconds on imports; the Hub's retries would add much more: the timeout tells them apart
    proc = run_train("--output_dir", out, *flags, env=env, timeout=45)
    assert_refused(proc, out, flag, "local copy")


def test_one_local_file_gives_both_subsets_without_overlap(train, tmp_path):
    """Also: texts longer than the model's 128 positions, with MAX_LENGTH at its default 512, are cut to 128 tokens
    (beyond them a model fails with an index error, or a device-side assert on CUDA)."""
    from conftest import reviews
    rows = reviews(80, seed=5)
    rows["text"] = [text if i % 4 else " ".join([text] * 60) for i, text in enumerate(rows["text"])]  # 180+ words
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n"
                            for t, label in zip(rows["text"], rows["label"])))
    # also: the Trainer's own flags reach it (warmup over a tenth of the steps, then a cosine decay)
    proc, out = train("--dataset_name", str(path), "--train_size", "50", "--eval_size", "30", "--warmup_steps", "0.5",
                      "--lr_scheduler_type", "cosine", "--logging_steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MAX_LENGTH 512 lowered to 128, the most this model takes" in proc.stdout
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert sum(map(sum, metrics["confusion_matrix"]["rows_true_columns_predicted"])) == 30
    state = json.load(open(os.path.join(out, "checkpoint-13", "trainer_state.json")))
    rates = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    peak = rates.index(max(rates))  # 13 steps: up for 7 (half, rounded up), then down along a cosine
    assert len(rates) == 13 and 5 <= peak <= 7 and rates[0] < rates[peak] and rates[-1] < rates[peak] / 10, rates
    assert json.load(open(os.path.join(out, "run.json")))["settings"]["trainer"] == {
        "warmup_steps": 0.5, "lr_scheduler_type": "cosine", "logging_steps": 1}
    proc, out = train("--dataset_name", str(path), "--train_size", "50", "--eval_size", "31",
                      output_dir=str(tmp_path / "x"))
    assert_refused(proc, out, "81", "80 rows")


# ---- your own data: other columns, string labels, no evaluation split ------------------------------

def test_csv_with_other_columns_and_string_labels(train, tmp_path):
    from conftest import reviews
    rows = reviews(120, seed=9)
    path = tmp_path / "sentences.csv"
    path.write_text("id,sentence,sentiment\n" + "".join(
        f"{i},{text},{'positive' if label else 'negative'}\n"
        for i, (text, label) in enumerate(zip(rows["text"], rows["label"]))))
    proc, out = train("--dataset_name", str(path), "--text_column", "sentence", "--label_column", "sentiment",
                      "--train_size", "80", "--eval_size", "40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 classes: negative, positive" in proc.stdout  # sorted distinct strings
    assert "40 from 'train' too, without overlap (there is no 'test' or 'validation' split)" in proc.stdout
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert (metrics["confusion_matrix"]["labels"] == ["negative", "positive"]
            and metrics["data"]["eval_split"] == "train")
    assert sum(map(sum, metrics["confusion_matrix"]["rows_true_columns_predicted"])) == 40
    assert set(metrics["per_class"]) == {"negative", "positive"} and "eval_f1" in metrics
    adapter = os.path.join(out, "adapter")
    assert json.load(open(os.path.join(adapter, "labels.json"))) == {"0": "negative", "1": "positive"}
    assert "0 = negative, 1 = positive" in open(os.path.join(adapter, "README.md")).read()


def test_missing_eval_split_falls_back_to_validation(train, tmp_path):
    """(With no validation split either, the evaluation rows come from the training split: the csv test.)"""
    from conftest import reviews
    folder = tmp_path / "with_validation"
    write_split(folder, "train", reviews(100, seed=10))
    write_split(folder, "validation", reviews(30, seed=11))
    proc, out = train("--dataset_name", str(folder), "--train_size", "50", "--eval_size", "30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "30 from 'validation' (there is no 'test' split)" in proc.stdout
    assert json.load(open(os.path.join(out, "metrics.json")))["data"]["eval_split"] == "validation"


def help_entries(script):
    """python SCRIPT.py --help (SCRIPT: a name or a module), as {flag: its help joined into one line}."""
    proc = in_process(script, "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = {}
    for line in proc.stdout.splitlines():
        if line.startswith("  --"):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line
        elif entries and line.startswith(" " * 8):
            entries[flag] += " " + line.strip()
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


def test_help_gives_every_setting_its_comment_and_default():
    import re
    from conftest import ROOT
    entries = help_entries("train")
    for flag, default in (("--model_name", "distilbert-base-uncased"), ("--text_column", "['text']"),
                          ("--label_column", "['label']"), ("--eval_split", "test"), ("--train_size", "1000"),
                          ("--group_by_length", "True"), ("--mixed_precision", "auto"),
                          ("--label_names", "['neg=Negative")):
        assert f"(default: {default}" in entries[flag], (flag, entries[flag])
    assert all("(default: " in help for help in entries.values()), entries
    assert "{auto,bf16,fp16,no}" in entries["--mixed_precision"]
    # every constant of the settings block is a flag, and its trailing comment is the flag's help
    settings = re.findall(r"^([A-Z_]+)(?::[^=]+)? = .*?#\s*(.+)$", open(os.path.join(ROOT, "train.py")).read(), re.M)
    assert len(settings) >= 25, settings
    for name, comment in settings:
        assert comment.strip() in entries[f"--{name.lower()}"], (name, comment)


def test_a_new_setting_is_one_line(tmp_path):
    """A user adds one constant to the settings block: it is a flag with its default and comment."""
    from conftest import ROOT
    source = open(os.path.join(ROOT, "train.py")).read()
    source = source.replace("SEED = 42", "WARMUP_RATIO = 0.1                      # share of steps to warm up over\n"
                                         "SEED = 42", 1)
    (tmp_path / "train.py").write_text(source)
    import importlib.util
    spec = importlib.util.spec_from_file_location("edited_train", tmp_path / "train.py")
    edited = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edited)
    entries = help_entries(edited)
    assert "share of steps to warm up over (default: 0.1)" in entries["--warmup_ratio"], entries


@pytest.mark.parametrize("flags, eval_size, rows", [
    ([], 400, 200),  # one epoch: half as many calibration rows as evaluation rows
    ([], 60, 100),  # but never fewer than 100
    (["--validation_size", "30"], 400, 30),  # a number given is used as given
    (["--num_epochs", "2"], 60, 500),  # several epochs: 500 rows choose the epoch kept
])
def test_calibration_rows_are_in_proportion_to_the_evaluation_rows(tiny_model, tmp_path, flags, eval_size, rows):
    from conftest import reviews
    data = tmp_path / "data"
    write_split(data, "train", reviews(800, seed=1))
    write_split(data, "test", reviews(400, seed=2))
    out = tmp_path / "run"
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "100",
                      "--eval_size", str(eval_size), "--no_baseline", "--min_epoch_rows", "0",  # counted, not learnt
                      "--output_dir", str(out), *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["calibration"]["fitted_on_rows"] == rows
    assert metrics["rows"]["calibrated_on"].startswith(f"{rows} rows of 'train'")
    assert f", {rows} from 'train' (no overlap) to " in proc.stdout


def test_several_epochs_with_too_few_rows_to_hold_back_keep_the_last_and_say_so(tiny_model, tmp_path):
    from conftest import reviews
    data = tmp_path / "data"
    write_split(data, "train", reviews(120, seed=1))  # 100 to train on leave 20: too few to choose an epoch by
    write_split(data, "test", reviews(40, seed=2))
    out = tmp_path / "run"
    flags = ["--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "100", "--eval_size", "40",
             "--num_epochs", "3", "--no_baseline", "--output_dir", str(out)]
    proc = in_process("train", *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kept_epoch"]["epoch"] == metrics["kept_epoch"]["last_epoch"] == 3
    assert metrics["rows"]["epoch_kept_chosen_on"].startswith("the last epoch: too few rows to hold some back")
    assert metrics["calibration"] is None and metrics["data"]["validation_split"] is None
    assert "the last of 3 epochs kept: too few rows to hold some back to choose one by" in proc.stdout
    # the evaluation rows were never used to choose: the last epoch's adapter is the one reported
    assert metrics["eval_accuracy"] == metrics["epochs"][-1]["accuracy"]
    # early stopping needs rows to stop on: refused in one line, before training
    refused = in_process("train", *flags, "--early_stopping_patience", "1", "--overwrite_output_dir")
    assert refused.returncode == 2 and "--early_stopping_patience needs validation rows" in refused.stderr
