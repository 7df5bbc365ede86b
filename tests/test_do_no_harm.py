"""The third hostile read (issue 38): a user's own run.json, files, labels, models and Ctrl-C, each tried as a user
would, and what the scripts then do to the run, the files and the scores."""
import csv
import json
import os
import shutil
import subprocess
import sys
import typing

import numpy as np
import pytest
from conftest import ROOT, in_process, reviews
from test_train import files_digest

import train
from textlora import Refused, settings


def refused_line(proc, script):
    """A refusal: exit status 2, one line on stderr (the last), no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{script}: error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[-1]


# ---- 1. a run's run.json, reused as a settings file ---------------------------------------------------------------

def test_a_run_json_reused_never_replaces_its_run_nor_resumes_in_another_folder(trained, tmp_path):
    run = str(tmp_path / "A")
    shutil.copytree(trained[1], run)
    record = json.load(open(os.path.join(run, "run.json")))
    # as a run started with --overwrite_output_dir records it
    record["settings"] |= {"output_dir": run, "overwrite_output_dir": True}
    json.dump(record, open(os.path.join(run, "run.json"), "w"))
    before = files_digest(run)
    proc = in_process("train", os.path.join(run, "run.json"), "--seed", "7")
    assert "already holds a finished run" in refused_line(proc, "train.py")
    assert files_digest(run) == before
    # a resumed run's record, reused for a new run elsewhere: a new run, not a resume of a folder with no checkpoint
    record["settings"] |= {"overwrite_output_dir": False, "resume": True}
    json.dump(record, open(tmp_path / "resumed.json", "w"))
    cfg = train.read_settings([str(tmp_path / "resumed.json"), "--output_dir", str(tmp_path / "B")])
    assert (cfg.resume, cfg.overwrite_output_dir) == (False, False)
    assert settings.check_settings(cfg) == (None, None)
    # given as flags, they still act
    assert train.read_settings([str(tmp_path / "resumed.json"), "--resume"]).resume is True


# ---- 6. a settings file's values get the flags' types and checks, or one line naming the key -----------------------

WRONG = [None, 64.5, 4.5, 3, -2, "text", "", True, [], ["a", "b"], [1, 2], [["nested"]], {"a": 1}, "q_lin"]
TRAINER = {"weight_decay": float, "gradient_accumulation_steps": int, "gradient_checkpointing": bool,
           "lr_scheduler_type": str, "warmup_steps": float}


def flag_types(name):
    """The Python types a flag of this setting gives, from the settings block's own defaults and annotations."""
    default = getattr(train, name.upper())
    hint = train.__annotations__.get(name.upper())
    if hint is not None:
        args = typing.get_args(hint)
        if typing.get_origin(hint) is list:
            return (list,), None
        if typing.get_origin(hint) is typing.Literal:
            return (str,), args
        return tuple(a for a in args) or (hint,), None
    if isinstance(default, list):
        return (list,), None
    return (type(default),), None


@pytest.mark.parametrize("value", WRONG, ids=[json.dumps(v) for v in WRONG])
def test_every_setting_in_a_settings_file_gets_its_flags_type_or_one_line_naming_it(value, tmp_path):
    names = [n.lower() for n in vars(train) if n.isupper() and n.lower() in vars(train.read_settings([]))]
    assert len(names) > 30
    for name in [*names, *TRAINER]:
        path = tmp_path / "settings.json"
        path.write_text(json.dumps({name: value}))
        try:
            cfg = train.read_settings([str(path), "--output_dir", str(tmp_path / "run")])
            settings.check_settings(cfg)
        except Refused as refusal:
            message = str(refusal)
            assert "\n" not in message and name in message, (name, value, message)
            continue
        got = cfg.trainer.get(name) if name in TRAINER else getattr(cfg, name)
        if name in TRAINER:
            assert type(got) is TRAINER[name] or (got is None and value is None), (name, value, got)
            continue
        kinds, choices = flag_types(name)
        assert type(got) in kinds or (got is None and type(None) in kinds), (name, value, got)
        if list in kinds:  # a list of words, as the flag gives: never the letters of a string
            assert all(type(item) is str for item in got), (name, value, got)
            words = [str(v) for v in value] if isinstance(value, list) else [json.dumps(value).strip('"')]
            assert got == words, (name, value, got)
        if choices:
            assert got in choices, (name, value, got)
    assert not (tmp_path / "run").exists()


def test_trainer_settings_train_py_sets_itself_name_what_governs_them(tmp_path):
    for flags, words in ((["--eval_strategy", "no"], "--num_epochs governs it"),
                         (["--load_best_model_at_end"], "--best_metric governs it"),
                         (["--per_device_train_batch_size", "8"], "--batch_size governs it"),
                         (["--bf16", "true"], "--mixed_precision governs it")):
        with pytest.raises(Refused) as refusal:
            train.read_settings(flags)
        assert "train.py sets itself" in str(refusal.value) and words in str(refusal.value), (flags, refusal.value)
    (tmp_path / "s.json").write_text(json.dumps({"save_strategy": "steps"}))
    with pytest.raises(Refused, match="settings file .*--save_strategy .* sets itself: --num_epochs governs it"):
        train.read_settings([str(tmp_path / "s.json")])


# ---- 2. several labels: the baseline at thresholds chosen as the adapter's -------------------------------------------

def test_the_baseline_with_several_labels_is_scored_at_thresholds_chosen_on_the_validation_rows():
    from datasets import Dataset
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from textlora import baseline
    from textlora.labels import MULTI
    rng = np.random.default_rng(0)

    def rows(n):  # label x on most rows, y rarely, each with words that hint at it now and then
        texts, labels = [], []
        for _ in range(n):
            x, y = rng.random() < 0.8, rng.random() < 0.2
            words = list(rng.choice(["plot", "scene", "actor", "story", "film"], 4))
            words += ["xword"] * (x and rng.random() < 0.5) + ["yword"] * (y and rng.random() < 0.5)
            texts.append(" ".join(words))
            labels.append([float(x), float(y)])
        return Dataset.from_dict({"text": texts, "label": labels})
    train_rows, validation_rows, eval_rows = rows(200), rows(150), rows(150)
    said = baseline.score(train_rows, eval_rows, MULTI, ["x", "y"], 0.5, validation_rows)
    chosen = [said["thresholds"]["x"], said["thresholds"]["y"]]
    assert said["thresholds_by"] == "best F1 on the validation rows"
    # scikit-learn run directly: each chosen threshold is a best F1 on the validation rows over every cut
    vectorizer = TfidfVectorizer(ngram_range=(1, 2)).fit(train_rows["text"])
    y_train = np.array(train_rows["label"]) > 0.5
    models = [LogisticRegression(max_iter=1000).fit(vectorizer.transform(train_rows["text"]), y_train[:, j])
              for j in range(2)]
    for j, model in enumerate(models):
        p = model.predict_proba(vectorizer.transform(validation_rows["text"]))[:, 1]
        truth = np.array(validation_rows["label"])[:, j] > 0.5
        best = max(f1_score(truth, p > cut, zero_division=0) for cut in np.concatenate([[0.5], p, p - 1e-9]))
        assert f1_score(truth, p > chosen[j], zero_division=0) == pytest.approx(best)
    # this data's rare label is given below 0.5: the comparison at 0.5 was not like for like
    assert chosen != [0.5, 0.5]
    p_eval = np.stack([m.predict_proba(vectorizer.transform(eval_rows["text"]))[:, 1] for m in models], 1)
    assert said["micro_f1"] == pytest.approx(f1_score(np.array(eval_rows["label"]) > 0.5, p_eval > chosen,
                                                      average="micro"), abs=1e-6)


# ---- 3, 4. a label cell reads as the adapter's class in every file ---------------------------------------------------

def test_classes_spelled_none_and_na_are_those_classes_in_a_csv_too(tiny_model, tmp_path):
    classes = ["None", "NA", "yes"]
    rows = [{"text": r, "tag": classes[i % 3]} for i, r in enumerate(reviews(60, seed=21)["text"])]
    with open(tmp_path / "rows.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(tmp_path / "rows.jsonl"),
                      "--label_column", "tag", "--min_epoch_rows", "0", "--train_size", "40", "--eval_size", "20",
                      "--mixed_precision", "no", "--label_names", "none", "--output_dir", out, "--no_baseline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "rows.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "tag"])
        w.writerows([r["text"], r["tag"]] for r in rows[:29])
        w.writerow([rows[29]["text"], ""])  # only an empty cell is no label
    adapter = os.path.join(out, "adapter")
    by_csv = in_process("predict", adapter, "--file", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "a.csv"),
                        "--mixed_precision", "no")
    assert by_csv.returncode == 0, by_csv.stderr[-3000:]
    assert "scored 29 of 30 rows" in by_csv.stdout, by_csv.stdout
    with open(tmp_path / "some.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows[:29])
    by_jsonl = in_process("predict", adapter, "--file", str(tmp_path / "some.jsonl"), "--mixed_precision", "no")
    scores = [json.load(open(tmp_path / name)) for name in ("a.csv.metrics.json",)]
    assert f"accuracy {scores[0]['accuracy']:.4f}" in by_jsonl.stdout, (by_jsonl.stdout, scores)
    written = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert [r["tag"] for r in written] == [r["tag"] for r in rows[:29]] + [""]  # written back as they were


def test_a_partly_labelled_csv_of_ids_is_scored_by_the_default_kind_of_adapter(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    data = reviews(12, seed=22)
    with open(tmp_path / "ids.csv", "w", newline="") as f:  # 0/1 ids and a blank: pandas reads 0.0, 1.0, NaN
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([t, "" if i == 5 else y] for i, (t, y) in enumerate(zip(data["text"], data["label"])))
    proc = in_process("predict", adapter, "--file", str(tmp_path / "ids.csv"), "--output", str(tmp_path / "o.csv"),
                      "--mixed_precision", "no")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scored 11 of 12 rows" in proc.stdout
    # truth: the same 11 rows with their ids as whole numbers, which were always read as ids
    with open(tmp_path / "ints.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([t, y] for i, (t, y) in enumerate(zip(data["text"], data["label"])) if i != 5)
    ints = in_process("predict", adapter, "--file", str(tmp_path / "ints.csv"), "--output", str(tmp_path / "i.csv"),
                      "--mixed_precision", "no")
    a, b = (json.load(open(tmp_path / f"{n}.csv.metrics.json")) for n in ("o", "i"))
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["accuracy"] == b["accuracy"], ints.stdout


# ---- 5. an adapter without training.json ------------------------------------------------------------------------

def test_an_adapter_without_training_json_is_refused_not_guessed(trained, tmp_path):
    adapter = str(tmp_path / "old-adapter")
    shutil.copytree(os.path.join(trained[1], "adapter"), adapter, ignore=shutil.ignore_patterns("training.json"))
    proc = in_process("predict", adapter, "a fine film", "--output", str(tmp_path / "o.csv"))
    assert "has no training.json" in refused_line(proc, "predict.py")
    assert not (tmp_path / "o.csv").exists()


# ---- 6, 7. one line where a traceback or a wrong way was ------------------------------------------------------------

def test_latin1_text_a_base_model_of_another_architecture_or_none_are_one_line(trained, tiny_model, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    (tmp_path / "latin1.txt").write_bytes("un film très réussi\nune purée\n".encode("latin-1"))
    proc = in_process("predict", adapter, "--file", str(tmp_path / "latin1.txt"), "--output", str(tmp_path / "o.csv"))
    assert "latin1.txt' is not UTF-8 text" in refused_line(proc, "predict.py"), proc.stderr
    # standard input as a shell's pipe gives it: bytes
    piped = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), adapter,
                            "--output", str(tmp_path / "o.csv")],
                           input="bien\ntrès\n".encode("latin-1"), capture_output=True, cwd=ROOT, timeout=120,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    piped = subprocess.CompletedProcess(piped.args, piped.returncode, piped.stdout.decode(), piped.stderr.decode())
    assert "standard input is not UTF-8 text" in refused_line(piped, "predict.py"), piped.stderr
    assert not (tmp_path / "o.csv").exists()
    # an adapter of a RoBERTa-style encoder (its head: classifier.dense, classifier.out_proj) onto a BERT (classifier)
    from peft import LoraConfig, get_peft_model
    from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, RobertaConfig,
                              RobertaForSequenceClassification)
    shape = {"vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 130}
    bert, roberta, other = tmp_path / "tiny-bert", tmp_path / "tiny-roberta", tmp_path / "roberta-adapter"
    BertForSequenceClassification(BertConfig(**shape)).save_pretrained(str(bert))
    RobertaForSequenceClassification(RobertaConfig(**shape)).save_pretrained(str(roberta))
    for folder in (bert, roberta):
        BertTokenizer.from_pretrained(tiny_model).save_pretrained(str(folder))
    get_peft_model(RobertaForSequenceClassification.from_pretrained(str(roberta)), LoraConfig(
        task_type="SEQ_CLS", target_modules=["query"], modules_to_save=["classifier"])).save_pretrained(str(other))
    for name in ("training.json", "labels.json", "vocab.txt", "tokenizer_config.json", "tokenizer.json"):
        if os.path.exists(os.path.join(adapter, name)):
            shutil.copy(os.path.join(adapter, name), other)
    proc = in_process("predict", str(other), "a fine film", "--base_model", str(bert))
    assert "--base_model the model the adapter was trained from" in refused_line(proc, "predict.py")
    proc = in_process("predict", adapter, "a fine film", "--base_model", "/nonexistent/model")
    assert "--base_model '/nonexistent/model' does not exist" in refused_line(proc, "predict.py")


@pytest.mark.parametrize("script, patched", [("train", "textlora.data.load"), ("predict", "textlora.tables.read"),
                                             ("predict", "textlora.inference.load_model")])
def test_ctrl_c_while_the_data_or_the_model_loads_is_one_line(script, patched, trained, tiny_model, tiny_imdb,
                                                              tmp_path):
    module, name = patched.rsplit(".", 1)
    args = (["--model_name", tiny_model, "--dataset_name", tiny_imdb, "--output_dir", str(tmp_path / "run")]
            if script == "train" else [os.path.join(trained[1], "adapter"), "--file", str(tmp_path / "in.csv")])
    (tmp_path / "in.csv").write_text("text\na fine film\n")
    code = (f"import sys, importlib; m = importlib.import_module({module!r})\n"
            f"def interrupted(*a, **k): raise KeyboardInterrupt\n"
            f"setattr(m, {name!r}, interrupted); sys.argv = [{script + '.py'!r}, *{args!r}]\n"
            f"import runpy; runpy.run_path({os.path.join(ROOT, script + '.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"{script}.py: interrupted"), proc.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_ctrl_c_before_the_first_checkpoint_does_not_send_the_user_to_resume(tmp_path, capsys):
    from textlora import machine
    out = tmp_path / "run"
    out.mkdir()
    for checkpoint, words in ((False, "--overwrite_output_dir to start over"), (True, "--resume")):
        if checkpoint:
            (out / "checkpoint-50").mkdir()
            (out / "checkpoint-50" / "trainer_state.json").write_text('{"global_step": 50}')
        with pytest.raises(SystemExit) as stop, machine.stop_cleanly_on_signals(str(out)):
            raise KeyboardInterrupt
        said = capsys.readouterr().err
        assert stop.value.code == 130 and words in said and ("--resume" in said) == checkpoint, said


def test_a_tsv_file_is_read_as_tab_separated_by_both_scripts(tiny_model, tmp_path):
    data = reviews(40, seed=23)
    with open(tmp_path / "reviews.tsv", "w") as f:  # as a spreadsheet or a shell writes tab-separated values
        # a comma inside, and a stray quote (12" vinyl): one column, one row each
        f.writelines(["text\tlabel\n"] + [f'{t}, truly 12" good\t{y}\n' for t, y in zip(data["text"], data["label"])])
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(tmp_path / "reviews.tsv"),
                      "--min_epoch_rows", "0", "--train_size", "30", "--eval_size", "10", "--mixed_precision", "no",
                      "--output_dir", out, "--label_names", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = in_process("predict", os.path.join(out, "adapter"), "--file", str(tmp_path / "reviews.tsv"), "--output",
                      str(tmp_path / "out.csv"), "--mixed_precision", "no")
    assert proc.returncode == 0 and "scored 40 of 40 rows" in proc.stdout, proc.stderr[-3000:]
    written = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [r["text"] for r in written] == [t + ', truly 12" good' for t in data["text"]]
    assert {r["predicted"] for r in written} <= {"0", "1"}


def test_max_steps_records_what_was_trained(train):
    proc, out = train("--max_steps", "3", "--batch_size", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    # 3 steps of 4 rows: 12 of the 200 rows, 0.06 of an epoch of 50 steps
    assert metrics["epochs"][-1]["epoch"] == pytest.approx(0.06)
    assert "12 rows seen" in metrics["rows"]["trained_on"], metrics["rows"]
    assert "--max_steps 3" in proc.stdout


# ---- 8. an extra that fails never loses the trained run -------------------------------------------------------------

def test_an_extra_that_fails_leaves_the_adapter_and_its_scores(tiny_model, tmp_path):
    rows = [{"text": " ".join(np.random.default_rng(i).choice(list("abc"), 2)),
             "tags": [["x"], ["y"], ["x", "y"]][i % 3]}
            for i in range(60)]
    with open(tmp_path / "letters.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(tmp_path / "letters.jsonl"),
                      "--label_column", "tags", "--min_epoch_rows", "0", "--train_size", "30", "--eval_size", "15",
                      "--validation_size", "15", "--mixed_precision", "no", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if "could not be made" in line]
    assert len(said) == 1 and "the baseline" in said[0] and "empty vocabulary" in said[0], proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["baseline"] is None and "eval_micro_f1" in metrics
    # the training rows' label issues need the baseline: not looked at, said; the adapter's rows are
    assert "empty vocabulary" in metrics["label_issues"]["not_listed"]["train"]
    assert set(metrics["label_issues"]["listed"]) == {"eval", "validation"}
    assert "training rows not looked at (ValueError: empty vocabulary" in proc.stdout
    assert os.path.exists(os.path.join(out, "adapter", "adapter_model.safetensors"))
    assert "done in" in proc.stdout  # the summary, without the baseline
    predicted = in_process("predict", os.path.join(out, "adapter"), "a b", "--mixed_precision", "no")
    assert predicted.returncode == 0, predicted.stderr[-3000:]



# ---- what the helper's hostile read found (issue 38's last part), each as a user meets it --------------------------

def write_lines(path, text):
    path.write_text(text)
    return str(path)


TRAIN_CASES = {  # name: (file name, its content, flags, words of the one-line refusal; None: the run succeeds)
    "a number beyond float32": ("huge.csv", "text,score\n" + "".join(f"great film {i},{1.5e39 if i == 3 else i}\n"
                                                                      for i in range(40)),
                                ["--label_column", "score"], "beyond the range of float32"),
    "lists of lists": ("lol.jsonl", "".join(json.dumps({"text": f"film {i}", "tags": [[i % 2], [1]]}) + "\n"
                                            for i in range(40)), ["--label_column", "tags"], "holds lists of"),
    "a header alone": ("header.csv", "text,label\n", [], "holds no rows"),
    "a text column called label": ("named.csv", "label,sentiment\n" + "".join(
        f"{'great superb' if i % 2 else 'awful dull'} film {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)),
        ["--text_column", "label", "--label_column", "sentiment"], None),
    "the head as a LoRA target": (None, None, ["--target_modules", "classifier"], "match nothing"),
    "a seed past 2**32": (None, None, ["--seed", str(2**32)], "below 2**32"),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_py_on_what_the_hostile_read_tried(case, tiny_model, tiny_imdb, tmp_path):
    name, content, flags, words = TRAIN_CASES[case]
    data = write_lines(tmp_path / name, content) if name else tiny_imdb
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", data, "--train_size", "30",
                      "--min_epoch_rows", "0", "--eval_size", "10", "--mixed_precision", "no", "--output_dir", out,
                      "--no_baseline", *flags)
    if words is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.load(open(os.path.join(out, "metrics.json")))["eval_accuracy"] is not None
        return
    assert words in refused_line(proc, "train.py"), proc.stderr[-2000:]
    assert not os.path.exists(out)
    (tmp_path / "s.json").write_text(json.dumps({"target_modules": []}))
    with pytest.raises(Refused, match="--target_modules takes one"):
        settings.check_settings(train.read_settings([str(tmp_path / "s.json"), "--output_dir", out]))


def test_predict_py_on_what_the_hostile_read_tried(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    # pandas' own index column, blank-named: its values are written back as they were (007 stays 007)
    given = write_lines(tmp_path / "index.csv", ",text,label\n007,great moving story,pos\n1,dull poor,neg\n")
    proc = in_process("predict", adapter, "--file", given, "--output", str(tmp_path / "o.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r[0] for r in csv.reader(open(tmp_path / "o.csv"))][1:] == ["007", "1"]
    mixed = write_lines(tmp_path / "mixed.jsonl", '{"text": "great story", "label": "pos"}\n'
                                                  '{"text": "dull poor", "label": 0}\n')
    assert "holds labels of several types" in refused_line(in_process("predict", adapter, "--file", mixed),
                                                           "predict.py")
    # a text far past the model's length (and past Python csv's 128 KiB field limit) is labelled, cut at MAX_LENGTH
    long = write_lines(tmp_path / "long.csv", "text,label\n" + " ".join(["great"] * 50_000) + ",pos\ndull,neg\n")
    proc = in_process("predict", adapter, "--file", long, "--output", str(tmp_path / "long-out.csv"))
    assert proc.returncode == 0 and "scored 2 of 2 rows" in proc.stdout, proc.stderr[-3000:]
    header = write_lines(tmp_path / "header.csv", "text,label\n")
    assert "holds no rows" in refused_line(in_process("predict", adapter, "--file", header), "predict.py")
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "empty").mkdir()
    os.symlink(tmp_path / "empty", tmp_path / "link")
    for target, words in ((tmp_path / "a_file" / "merged", "cannot be written"), (tmp_path / "link", "is a link")):
        assert words in refused_line(in_process("predict", adapter, "--merge", str(target)), "predict.py")
    assert (tmp_path / "a_file").read_text() == "mine" and os.listdir(tmp_path / "empty") == []
