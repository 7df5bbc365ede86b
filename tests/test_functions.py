"""train.py's rules, called directly, in milliseconds: the scores, the class names, the settings checks, the
precision, the Hub probe, the order of the processes, the summary. Each is checked against truth worked out by hand,
not against the rule itself. (What only a process shows, exit codes, files, launchers, is in the other files.)"""
import contextlib
import json
import os
import socket
import threading
import time
from fractions import Fraction as F

import numpy as np
import pytest
import train
from textlora import Refused
import textlora.data
import textlora.scores
import textlora.settings
import textlora.labels
from textlora import hub, machine, models, reports


def settings(*flags):
    return train.read_settings(list(flags))


def refusal(capsys, check, *args):
    """What check(*args) says as it refuses: one line (train.py prints it as "train.py: error: ...", exit status 2)."""
    with pytest.raises(Refused) as refused:
        check(*args)
    message = str(refused.value)
    assert message and "\n" not in message, message
    return "train.py: error: " + message


# ---- scores: a fixed set of predictions, counted by hand -------------------------------------------------------

def test_scores_of_three_classes_counted_by_hand():
    true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 0, 1, 2, 2, 2, 0, 1]
    # rows true, columns predicted: true 0 was predicted 0 twice and 1 once; true 2: 0 once, 1 once, 2 twice
    assert textlora.scores.confusion(true, predicted, 3).tolist() == [[2, 1, 0], [0, 1, 1], [1, 1, 2]]
    # precision: of those predicted as the class, the share right (3 each predicted); recall: of the class, found
    precision, recall = [F(2, 3), F(1, 3), F(2, 3)], [F(2, 3), F(1, 2), F(2, 4)]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]  # 2/3, 2/5, 4/7
    got = textlora.scores.class_scores(true, predicted, 3)
    assert got["accuracy"] == pytest.approx(5 / 9)
    assert got["macro_precision"] == pytest.approx(float(sum(precision) / 3))
    assert got["macro_recall"] == pytest.approx(float(sum(recall) / 3))
    assert got["macro_f1"] == pytest.approx(float(sum(f1) / 3))
    assert "f1" not in got  # label 1's scores are for two classes
    classes = textlora.scores.per_class(true, predicted, ["a", "b", "c"])
    assert [classes[c]["precision"] for c in "abc"] == pytest.approx([float(p) for p in precision])
    assert [classes[c]["recall"] for c in "abc"] == pytest.approx([float(r) for r in recall])
    assert [classes[c]["support"] for c in "abc"] == [3, 2, 4]


def test_a_transposed_matrix_is_caught():
    """Swapping true and predicted swaps precision and recall: the two-class scores tell them apart."""
    true, predicted = [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 1, 0]  # tp 1, fn 3, fp 1, tn 1
    got = textlora.scores.class_scores(true, predicted, 2)
    assert (got["tp"], got["fn"], got["fp"], got["tn"]) == (1, 3, 1, 1)
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((1 / 2, 1 / 4, 1 / 3))
    swapped = textlora.scores.class_scores(predicted, true, 2)
    assert (swapped["precision"], swapped["recall"]) == pytest.approx((1 / 4, 1 / 2))


def test_several_labels_per_text_counted_by_hand():
    """Three texts, three labels; logits above 0 (probability above 0.5) are the labels given."""
    from transformers import EvalPrediction
    true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    logits = np.array([[2.0, -1.0, 3.0], [1.0, 2.0, -2.0], [3.0, -3.0, -1.0]])  # given: {0, 2}, {0, 1}, {0}
    scorer = textlora.scores.Scores(textlora.labels.MULTI, ["a", "b", "c"], 0.5)
    got = scorer(EvalPrediction(predictions=logits, label_ids=true))
    # text-label pairs: right a, c (text 1), b (2), a (3); a given to text 2 wrongly; b of text 3 missed
    assert (got["micro_precision"], got["micro_recall"], got["micro_f1"]) == pytest.approx((4 / 5, 4 / 5, 4 / 5))
    # per label: a P 2/3 R 1, b P 1 R 1/2, c P 1 R 1
    f1 = [2 * (2 / 3) / (2 / 3 + 1), 2 * (1 / 2) / (1 + 1 / 2), 1.0]
    assert got["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert got["exact_match"] == pytest.approx(1 / 3)  # only the first text has all its labels right
    report = scorer.report()["per_label"]
    assert [report[n]["support"] for n in "abc"] == [2, 2, 1]
    # a higher threshold gives fewer labels: at 0.9 (logit 2.2) only the 3.0s remain
    strict = textlora.scores.Scores(textlora.labels.MULTI, ["a", "b", "c"], 0.9)(
        EvalPrediction(predictions=logits, label_ids=true))
    assert strict["micro_precision"] == 1.0 and strict["micro_recall"] == pytest.approx(2 / 5)


def test_number_scores_worked_out_by_hand():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    got = textlora.scores.number_scores(true, np.array([1.5, 2.0, 2.5, 5.0]))  # errors 0.5, 0, -0.5, 1
    assert got["rmse"] == pytest.approx((1.5 / 4) ** 0.5) and got["mae"] == pytest.approx(0.5)
    assert got["r2"] == pytest.approx(1 - 1.5 / 5)  # squared errors 1.5 against 5 around the mean 2.5
    assert got["spearman"] == pytest.approx(1.0)  # the same order
    assert textlora.scores.number_scores(true, np.array([4.0, 3.0, 2.0, 1.0]))["spearman"] == pytest.approx(-1.0)
    # ties share their mean rank: ranks 2.5, 4, 2.5, 1 against 1, 2, 3, 4 (deviations 0, 1.5, 0, -1.5 and -1.5,
    # -0.5, 0.5, 1.5): covariance -3 over the root of 4.5 * 5
    tied = textlora.scores.number_scores(np.array([10.0, 20.0, 10.0, 5.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert tied["spearman"] == pytest.approx(-3 / (4.5 * 5) ** 0.5)


def test_the_trainer_gets_scalars_only():
    """Trackers take numbers: a dict or a matrix among the scores is dropped, with a warning at every evaluation."""
    from transformers import EvalPrediction
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    scores = textlora.scores.Scores(textlora.labels.SINGLE, ["Negative", "Positive"], 0.5)(
        EvalPrediction(predictions=logits, label_ids=np.array([0, 0, 1])))
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert all(isinstance(v, (int, float)) for v in scores.values()), scores


# ---- class names from the data ---------------------------------------------------------------------------------

def label_rows(values):
    from datasets import Dataset, DatasetDict
    table = Dataset.from_dict({"text": [f"text {i}" for i in range(len(values))], "label": values})
    return DatasetDict({"train": table})


@pytest.mark.parametrize("values, names, ids", [
    ([3, 1, 5, 2, 4, 5], ["1", "2", "3", "4", "5"], [2, 0, 4, 1, 3, 4]),  # star ratings: five classes, no empty 0
    ([20, 10, 30, 10], ["10", "20", "30"], [1, 0, 2, 0]),
    ([-1, 0, 1, 1], ["-1", "0", "1"], [0, 1, 2, 2]),  # a plain integer -1 is a class, not a missing label
    (["pos", "neg", "neutral"], ["neg", "neutral", "pos"], [2, 0, 1]),
])
def test_labels_are_the_values_the_data_holds(values, names, ids):
    data = label_rows(values)
    cfg = settings("--label_names", "x=y", "--train_size", str(len(values)))
    subsets = {"train": ("train", len(values)), "eval": ("train", 0), "validation": (None, 0)}
    rows, codec, _ = textlora.data.as_text_and_target({"train": data["train"], "eval": data["train"].select([]),
                                               "validation": None}, data, cfg, subsets)
    assert (codec.names, codec.problem) == (names, textlora.labels.SINGLE)
    assert rows["train"]["label"] == ids


def test_label_1s_scores_need_two_classes(capsys):
    err = refusal(capsys, textlora.data.best_metric, settings("--best_metric", "f1"), textlora.labels.SINGLE,
                  ["a", "b", "c", "d"])
    assert "label 1's score, for two classes; with 4 use macro_f1" in err
    assert textlora.data.best_metric(settings("--best_metric", "f1"), textlora.labels.SINGLE, ["a", "b"]) == "f1"


@pytest.mark.parametrize("problem, auto, other", [("single_label_classification", "accuracy", "rmse"),
                                                  ("multi_label_classification", "micro_f1", "accuracy"),
                                                  ("regression", "rmse", "macro_f1")])
def test_best_metric_auto_is_the_problems_headline(capsys, problem, auto, other):
    assert textlora.data.best_metric(settings(), problem, ["a", "b"]) == auto
    err = refusal(capsys, textlora.data.best_metric, settings("--best_metric", other), problem, ["a", "b"])
    assert f"--best_metric {other!r} is not a score of" in err


def test_subsets_from_one_split_never_overlap():
    data = label_rows(list(range(100)))
    subsets = {"train": ("train", 50), "eval": ("train", 30), "validation": ("train", 20)}
    drawn, positions = textlora.data.draw(data, subsets, seed=7)
    seen = [set(drawn[name]["label"]) for name in subsets]
    assert [len(s) for s in seen] == [50, 30, 20] and set().union(*seen) == set(range(100))
    assert textlora.data.draw(data, subsets, seed=7)[0]["eval"]["label"] == drawn["eval"]["label"]  # seeded
    # the label of row i is i: each row's position in its split is where it came from
    assert all(list(positions[name]) == list(drawn[name]["label"]) for name in subsets)
    # the rows datasets' own shuffle draws, so that runs before and after draw the same rows
    assert list(data["train"].shuffle(seed=7)["label"]) == [r for name in subsets for r in drawn[name]["label"]]


# ---- settings and the output folder ---------------------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--train_size", "0"], ["--train_size must be at least 1, got 0"]),
    (["--validation_size", "-5"], ["--validation_size"]),
    (["--label_names", "neg:Negative"], ["--label_names", "neg=Negative"]),
    (["--best_metric", "speed"], ["--best_metric 'speed'", "accuracy, macro_f1"]),
    (["--class_weights", "heavy"], ["--class_weights takes balanced, or one positive number per class"]),
    (["--model_name", "/nowhere/model"], ["/nowhere/model", "does not exist"]),
    (["--dataset_name", "/nowhere/data"], ["/nowhere/data", "does not exist"]),
    (["--text_column", "a", "b", "c"], ["--text_column takes one column, or two"]),
])
def test_bad_settings_are_refused_in_one_line(capsys, tmp_path, flags, words):
    err = refusal(capsys, textlora.settings.check_settings, settings("--output_dir", str(tmp_path / "run"), *flags))
    for word in words:
        assert word in err, (word, err)


def test_the_current_home_and_higher_folders_are_never_an_output_folder(capsys, tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work" / "lora"
    work.mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for out, what in ((".", "the current folder"), ("..", "a folder above it"), (str(tmp_path), "above it"),
                      (str(home), "the home folder"), ("./", "the current folder")):
        err = refusal(capsys, textlora.settings.check_settings, settings("--output_dir", out, "--overwrite_output_dir"))
        assert what in err, (out, err)
    assert work.is_dir() and home.is_dir()
    textlora.settings.check_settings(settings("--output_dir", "outputs/run"))  # a folder of its own, below: fine


def test_overwrite_refuses_a_folder_holding_anything_else(capsys, tmp_path):
    out = tmp_path / "run"
    for name in ("checkpoint-50", "adapter", ".adapter.partial", "runs"):
        (out / name).mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    # only a run's files: fine
    textlora.settings.check_settings(settings("--output_dir", str(out), "--overwrite_output_dir"))
    for other in ("checkpoint-notes", ".git", "thesis.txt"):
        (out / other).write_text("mine")
        err = refusal(capsys, textlora.settings.check_settings,
                      settings("--output_dir", str(out), "--overwrite_output_dir"))
        assert repr(other) in err, err
        (out / other).unlink()
    # a folder or file a user named as train.py names its own: judged by what it holds
    (out / "runs" / "experiment.txt").write_text("mine")  # TensorBoard writes event files only
    err = refusal(capsys, textlora.settings.check_settings,
                  settings("--output_dir", str(out), "--overwrite_output_dir"))
    assert "'runs'" in err, err
    (out / "runs" / "experiment.txt").unlink()
    (out / "run.json").write_text('{"my": "own record"}')
    err = refusal(capsys, textlora.settings.check_settings,
                  settings("--output_dir", str(out), "--overwrite_output_dir"))
    assert "'run.json'" in err, err
    (out / "run.json").unlink()
    (out / "notes.txt").write_text("mine")
    textlora.settings.remove_earlier_run(str(out))  # what the run removes, when it may: its own files, never the others
    assert os.listdir(out) == ["notes.txt"]


def test_a_new_run_never_writes_over_a_file_named_as_a_runs(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    textlora.settings.check_settings(settings("--output_dir", str(out)))  # a folder with other files: a run beside
    for name in ("run.json", "training_curves.png"):
        (out / name).write_text("mine")
        err = refusal(capsys, textlora.settings.check_settings, settings("--output_dir", str(out)))
        assert repr(name) in err and "--overwrite_output_dir" in err, err
        (out / name).unlink()


# ---- precision ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("capability, precision", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                   ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_auto_takes_bf16_only_on_gpus_that_compute_it(monkeypatch, capability, precision):
    """A T4 (7.5) or V100 (7.0) emulates bf16, and torch.cuda.is_bf16_supported() still says yes there."""
    import torch
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert machine.choose_precision("auto", "cuda", True) == (precision, None)


@pytest.mark.parametrize("speed, precision", [((100, 300), "bf16"), ((100, 110), "no"), ((100, 1), "no")])
def test_auto_on_a_cpu_takes_bf16_where_it_is_clearly_faster(monkeypatch, speed, precision):
    import torch
    fake = {torch.float32: speed[0], torch.bfloat16: speed[1]}
    monkeypatch.setattr(machine, "matmul_gflops", lambda dtype: fake[dtype])
    assert machine.choose_precision("auto", "cpu", True)[0] == precision


# ---- MAX_LENGTH within the model's reach ------------------------------------------------------------------------

def test_max_length_is_lowered_to_what_the_model_takes():
    from types import SimpleNamespace as NS
    no_limit = NS(model_max_length=int(1e30))
    assert models.within_reach(512, NS(max_position_embeddings=128), no_limit) == 128
    assert models.within_reach(512, NS(max_position_embeddings=514), NS(model_max_length=512)) == 512  # RoBERTa
    assert models.within_reach(512, NS(n_positions=1024), no_limit) == 512  # GPT-2: room to spare
    assert models.within_reach(64, NS(), no_limit) == 64  # relative positions: no limit


# ---- the Hub probe, through the user's proxy ---------------------------------------------------------------------

@contextlib.contextmanager
def server(reply):
    """A loopback server that records the first line each client sends and answers it with `reply`."""
    listener = socket.create_server(("127.0.0.1", 0))
    heard = []

    def serve():
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                with client:
                    # a TLS hello is bytes
                    heard.append(client.recv(4096).split(b"\r\n")[0].decode(errors="backslashreplace"))
                    client.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], heard
    finally:
        listener.close()


def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@pytest.fixture
def hub_env(monkeypatch):
    """No proxy and no endpoint of the user's; HF_HUB_OFFLINE empty, so the probe runs (and is put back after)."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    return monkeypatch


def probe(timeout=3.0):
    start = time.time()
    hub.go_offline_without_hub(timeout)
    return os.environ["HF_HUB_OFFLINE"] != "1", time.time() - start


def test_the_probe_reaches_an_endpoint_on_its_own_port(hub_env):
    with server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (port, _):
        hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert probe()[0], "a reachable endpoint on another port than 443 must leave the script online"


def test_the_probe_goes_through_the_users_proxy(hub_env):
    with server(b"HTTP/1.1 200 Connection established\r\n\r\n") as (port, heard):
        hub_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        assert probe()[0]
        assert heard == ["CONNECT huggingface.co:443 HTTP/1.1"], heard  # the tunnel a Hub request would ask for


def test_no_proxy_sends_the_probe_straight_to_the_endpoint(hub_env):
    with server(b"HTTP/1.1 200 OK\r\n\r\n") as (port, _):
        hub_env.setenv("HF_ENDPOINT", f"https://127.0.0.1:{port}")
        hub_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")  # dead, but not for this host
        hub_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert probe()[0]


@pytest.mark.parametrize("dead", ["proxy", "proxy refusing the tunnel", "endpoint"])
def test_an_unreachable_hub_goes_offline_within_seconds(hub_env, dead):
    with server(b"HTTP/1.1 403 Forbidden\r\n\r\n") as (port, _):
        if dead == "proxy":
            hub_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
        elif dead == "proxy refusing the tunnel":
            hub_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        else:
            hub_env.setenv("HF_ENDPOINT", f"https://127.0.0.1:{closed_port()}")
        online, seconds = probe(timeout=2.0)
    assert not online and seconds < 2.5


# ---- processes: each machine's first process fills its cache first ----------------------------------------------

@pytest.mark.parametrize("rank, local_rank, first", [("0", "0", True), ("1", "1", False), ("2", "0", True),
                                                      ("3", "1", False)])
def test_each_machines_first_process_goes_first(monkeypatch, rank, local_rank, first):
    """Two machines of two processes: ranks 0 and 2 are their machine's first (LOCAL_RANK 0)."""
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    order = []
    monkeypatch.setattr(machine, "join_processes", lambda: order.append("wait for the others"))
    with machine.this_machine_first():
        order.append("check and load")
    assert order == (["check and load", "wait for the others"] if first else ["wait for the others", "check and load"])
    assert machine.rank_zero() == (rank == "0")  # the results: global rank 0 alone


# ---- the summary ------------------------------------------------------------------------------------------------

def test_three_dots_only_where_a_text_was_cut():
    assert reports.shortened("a fine   film\n") == "a fine film"
    assert reports.shortened("x" * 60) == "x" * 60
    assert reports.shortened("x" * 61) == "x" * 60 + "..."


def test_the_summary_and_predict_py_label_texts_in_eval_mode(tiny_model):
    """With heavy dropout, a model left in training mode gives other labels from one call to the next: the one
    inference path (textlora/inference.py) runs it in eval mode, in the rows' order, whatever their lengths."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from conftest import reviews
    from textlora import inference
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model, dropout=0.9, attention_dropout=0.9,
                                                              seq_classif_dropout=0.9)
    model = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["q_lin"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = reviews(40, seed=4)["text"]
    model.train()  # as the Trainer may leave it
    rows = inference.tokenized(Dataset.from_dict({"text": texts}), train.tokenize, tokenizer, 128, "truncate", 0,
                               "texts")
    said = inference.logits_of(inference.predictor(model, tokenizer, "cpu", "no", 4, 128, None), rows)
    model.eval()
    with torch.no_grad():  # one text at a time: no padding at all
        logits = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])
    np.testing.assert_allclose(said, logits.numpy(), atol=1e-5)


def test_overwrite_removes_a_link_not_what_it_points_to(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("thesis")
    out = tmp_path / "run"
    out.mkdir()
    (out / "adapter").symlink_to(mine)
    (out / "metrics.json").write_text("{}")
    textlora.settings.remove_earlier_run(str(out))
    assert os.listdir(out) == [] and (mine / "thesis.txt").read_text() == "thesis"


@pytest.mark.parametrize("record, words", [("{}", "is not the record"), ("[]", "is not the record"),
                                           ('{"settings": {}, "precision": "fp64"}', "is not the record"),
                                           (None, "earlier train.py")])
def test_resume_refuses_a_run_it_cannot_go_on_with(capsys, tmp_path, record, words):
    out = tmp_path / "run"
    (out / "checkpoint-50").mkdir(parents=True)
    (out / "checkpoint-50" / "trainer_state.json").write_text('{"global_step": 50}')
    if record is not None:
        (out / "run.json").write_text(record)
    err = refusal(capsys, textlora.settings.check_settings,
                  settings("--output_dir", str(out), "--resume", "--num_epochs", "3"))
    assert words in err, err


def test_gpt2s_conv1d_layers_and_all_linear_are_targets(capsys):
    from transformers import GPT2Config, GPT2ForSequenceClassification
    gpt2 = GPT2ForSequenceClassification(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    given = models.target_modules(gpt2, settings("--target_modules", "c_attn", "c_proj"))  # Conv1D, not nn.Linear
    assert given == (["c_attn", "c_proj"], None)
    assert models.target_modules(gpt2, settings("--target_modules", "all-linear")) == ("all-linear", None)
    err = refusal(capsys, models.target_modules, gpt2, settings("--target_modules", "query"))
    assert "c_attn" in err and "all-linear" in err


def read_labels(table, *flags):
    """check_data then as_text_and_target on an in-memory table, all of it drawn for training."""
    from datasets import Dataset, DatasetDict
    data = DatasetDict({"train": Dataset.from_dict(table)})
    cfg = settings("--train_size", str(len(table["text"])), *flags)
    subsets = {"train": ("train", len(table["text"])), "eval": ("train", 0), "validation": (None, 0)}
    textlora.data.check_data(data, cfg, subsets)
    rows, codec, _ = textlora.data.as_text_and_target({"train": data["train"], "eval": data["train"].select([]),
                                               "validation": None}, data, cfg, subsets)
    return rows, codec.names, codec.problem


def test_the_kind_of_problem_is_read_from_the_labels():
    text = ["one", "two", "three", "four"]
    rows, labels, problem = read_labels({"text": text, "tags": [["b", "a"], [], ["c"], ["a"]]},
                                        "--label_column", "tags")
    assert (problem, labels) == (textlora.labels.MULTI, ["a", "b", "c"])
    assert rows["train"]["label"] == [[1, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]]
    rows, labels, problem = read_labels({"text": text, "x": [1.0, 0.0, 1.0, 0.0], "y": [0, 1, 1, 0]},
                                        "--label_column", "x", "y")  # 0/1 columns, floats or integers
    assert (problem, labels) == (textlora.labels.MULTI, ["x", "y"]) and rows["train"]["label"][2] == [1, 1]
    rows, labels, problem = read_labels({"text": text, "share": [0.5, 0.0, 1.0, 0.25]}, "--label_column", "share")
    assert ((problem, labels) == (textlora.labels.REGRESSION, ["share"])
            and rows["train"]["label"] == [0.5, 0.0, 1.0, 0.25])
    rows, _, problem = read_labels({"text": text, "stars": [1, 5, 3, 5]}, "--label_column", "stars",
                                   "--problem_type", "regression")
    assert problem == textlora.labels.REGRESSION and rows["train"]["label"] == [1.0, 5.0, 3.0, 5.0]


def test_booleans_and_floats_of_0_and_1_are_two_classes_other_floats_a_number():
    text = ["one", "two", "three", "four"]
    for values, names in (([True, False, True, False], ["false", "true"]), ([1.0, 0.0, 0.0, 1.0], ["0", "1"])):
        rows, labels, problem = read_labels({"text": text, "y": values}, "--label_column", "y")
        assert (problem, labels) == (textlora.labels.SINGLE, names)
        assert rows["train"]["label"] == [int(v) for v in values]
    rows, labels, problem = read_labels({"text": text, "y": [1.0, 0.0, 0.5, 1.0]}, "--label_column", "y")
    assert (problem, labels) == (textlora.labels.REGRESSION, ["y"])


@pytest.mark.parametrize("table, flags, words", [
    ({"tags": [["a"], [None], ["b"], ["a"]]}, ["--label_column", "tags"],
     "empty or missing text or label; the first is row 1"),
    ({"tags": [["a"], [" "], ["b"], ["a"]]}, ["--label_column", "tags"], "the first is row 1"),
    ({"share": [0.5, float("inf"), 1.0, 0.0]}, ["--label_column", "share"], "the first is row 1"),
    ({"tags": [["a"], ["b"], ["b"], ["a"]]}, ["--label_column", "tags", "--problem_type", "single_label"],
     "holds lists"),
    ({"label": ["a", "b", "b", "a"]}, ["--problem_type", "multi_label"], "holds one value per text"),
    ({"x": [0, 1, 1, 0], "y": ["a", "b", "a", "b"]}, ["--label_column", "x", "y"], "'y' holds"),
    ({"x": [0, 1, 2, 0], "y": [1, 0, 1, 0]}, ["--label_column", "x", "y"], "--label_column 'x' holds [0, 1, 2]"),
    ({"label": [0, 1, 1, 0]}, ["--threshold", "1"], "--threshold must be between 0 and 1"),
])
def test_labels_that_fit_no_kind_are_refused_in_one_line(capsys, table, flags, words):
    table = {"text": ["one", "two", "three", "four"], **table}
    if "--threshold" in flags:
        err = refusal(capsys, textlora.settings.check_settings, settings("--output_dir", "outputs/x", *flags))
    else:
        err = refusal(capsys, read_labels, table, *flags)
    assert words in err, err


def test_r2_stays_finite_when_every_true_value_is_the_same():
    same = np.array([2.0, 2.0, 2.0])
    assert textlora.scores.number_scores(same, np.array([1.0, 2.0, 3.0]))["r2"] == 0.0
    assert textlora.scores.number_scores(same, same.copy())["r2"] == 1.0


def test_a_padding_token_other_than_the_base_configs_is_reported(tiny_decoder, tiny_model):
    """A decoder whose config names a padding token its tokenizer lacks: the model pads with the end-of-text token,
    and whoever loads the adapter must be told, or batches of several lengths are misread."""
    from types import SimpleNamespace as NS
    from transformers import AutoTokenizer
    tokenizer, config = AutoTokenizer.from_pretrained(tiny_decoder), NS(pad_token_id=5)
    assert models.give_a_padding_token(tokenizer, config, settings()) is True
    assert config.pad_token_id == tokenizer.pad_token_id == tokenizer.eos_token_id != 5
    config = NS(pad_token_id=0)
    assert models.give_a_padding_token(AutoTokenizer.from_pretrained(tiny_model), config, settings()) is False


# ---- the edges: numbers, labels, resumes, positions, precision (issue 31) ----------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--seed", "-1"], ["--seed must be 0 or more, got -1"]),
    (["--learning_rate=-1e-3"], ["--learning_rate must be more than 0, got -0.001"]),
    (["--lora_alpha", "0"], ["--lora_alpha must be more than 0"]),
])
def test_numbers_the_trainer_or_the_model_would_reject_are_refused_first(capsys, tmp_path, flags, words):
    err = refusal(capsys, textlora.settings.check_settings, settings("--output_dir", str(tmp_path / "run"), *flags))
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "run").exists()


def test_label_names_none_shows_the_datas_own_names():
    table = {"text": ["one", "two", "three", "four"], "label": ["neg", "pos", "pos", "neg"]}
    assert read_labels(table)[1] == ["Negative", "Positive"]  # the default LABEL_NAMES
    assert read_labels(table, "--label_names", "none")[1] == ["neg", "pos"]


def test_a_label_is_read_by_its_value_or_its_shown_name_never_as_an_id():
    """Stars 1 and 2 shown as bad and good: 1 is class 0 whether a file holds 1, 1.0, "1" or "bad"."""
    _, labels, _ = read_labels({"text": ["a", "b", "c"], "stars": [2, 1, 2]}, "--label_column", "stars",
                               "--label_names", "1=bad", "2=good")
    from datasets import Dataset, DatasetDict
    data = DatasetDict({"train": Dataset.from_dict({"text": ["a", "b", "c"], "stars": [2, 1, 2]})})
    cfg = settings("--train_size", "3", "--label_column", "stars", "--label_names", "1=bad", "2=good")
    subsets = {"train": ("train", 3), "eval": ("train", 0), "validation": (None, 0)}
    _, codec, _ = textlora.data.as_text_and_target({"train": data["train"], "eval": data["train"].select([]),
                                            "validation": None}, data, cfg, subsets)
    assert labels == codec.names == ["bad", "good"]
    assert [codec.encode([v]) for v in (1, 1.0, "1", " bad", 2, "2.0", "good", None, "", float("nan"))] == \
        [0, 0, 0, 0, 1, 1, 1, None, None, None]
    with pytest.raises(ValueError, match="no class of this adapter"):
        codec.encode([3])


def test_a_shown_name_that_is_another_classs_value_is_refused(capsys):
    err = refusal(capsys, read_labels, {"text": ["a", "b"], "stars": [1, 2]}, "--label_column", "stars",
                  "--label_names", "1=2")
    assert "shows 1 as '2', which is the data's value of another class" in err


def test_resume_refuses_another_number_of_processes(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    (out / "checkpoint-50").mkdir(parents=True)
    (out / "checkpoint-50" / "trainer_state.json").write_text('{"global_step": 50}')
    cfg = settings("--output_dir", str(out), "--resume")
    (out / "run.json").write_text(json.dumps({"settings": vars(cfg), "precision": "no", "processes": 2}))
    err = refusal(capsys, textlora.settings.check_settings, cfg)
    assert "started with 2 process(es) and this one has 1" in err, err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert textlora.settings.check_settings(cfg)[0].endswith("checkpoint-50")


def test_the_runs_loss_covers_every_step_logged_before_a_resume():
    """Losses logged at steps 3, 6 and 7 (each the mean since the one before): the run's mean is their weighted mean,
    whichever process logged them."""
    log = [{"loss": 1.0, "step": 3}, {"eval_loss": 9.0, "step": 3}, {"loss": 0.5, "step": 6}, {"loss": 0.2, "step": 7}]
    assert reports.run_loss(log, 7) == pytest.approx((3 * 1.0 + 3 * 0.5 + 1 * 0.2) / 7)


def test_batches_are_never_padded_past_the_models_positions(tiny_model):
    from transformers import AutoTokenizer
    from textlora.inference import PadWithin
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pad = PadWithin(tokenizer, limit=100, multiple=32)
    assert pad([{"input_ids": [2] * 100}, {"input_ids": [2] * 7}])["input_ids"].shape == (2, 100)  # not 128
    assert pad([{"input_ids": [2] * 33}])["input_ids"].shape == (1, 64)


def test_roberta_style_encoders_keep_their_reserved_positions():
    from transformers import RobertaConfig
    from types import SimpleNamespace as NS
    config = RobertaConfig(max_position_embeddings=130, pad_token_id=1)
    assert models.within_reach(512, config, NS(model_max_length=int(1e30))) == 128  # 130 less padding_idx + 1


def test_a_decoder_saved_in_bf16_trains_in_fp32_and_its_head_computes_in_fp32(tiny_decoder, tmp_path):
    """Saved in bf16, as Qwen2.5, Llama 3 and SmolLM2 ship: the base loads in fp32, the new head and LoRA matrices
    are fp32, and under bf16 autocast the head still computes in fp32 (a number per text is not rounded to bf16)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification
    from textlora import inference
    saved = AutoModelForSequenceClassification.from_pretrained(tiny_decoder, dtype=torch.bfloat16, num_labels=1,
                                                               ignore_mismatched_sizes=True)
    saved.save_pretrained(str(tmp_path / "bf16"))
    assert AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "bf16")).dtype == torch.bfloat16
    model = inference.load_model(str(tmp_path / "bf16"), num_labels=1, problem_type="regression", pad_token_id=0)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["q_proj"],
                                             modules_to_save=["score"]))
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    inference.fit_to_the_chip(model, "cpu", "bf16")
    model.eval()
    ids = torch.randint(0, 200, (40, 9))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float32 and len(set(logits.reshape(-1).tolist())) == 40


# ---- every Trainer knob, and a settings file ---------------------------------------------------------------------

def test_every_other_trainer_field_is_a_flag_recorded_and_checked_on_resume(capsys, tmp_path):
    cfg = settings("--weight_decay", "0.01", "--gradient_accumulation_steps", "4", "--gradient_checkpointing",
                   "--save_total_limit", "1", "--lr_scheduler_type", "cosine", "--output_dir", str(tmp_path / "run"))
    assert cfg.trainer == {"weight_decay": 0.01, "gradient_accumulation_steps": 4, "gradient_checkpointing": True,
                           "save_total_limit": 1, "lr_scheduler_type": "cosine"}
    assert settings().trainer == {}  # none given: the Trainer's defaults, recorded as nothing
    for flag, value in (("--warmup_steps", "-1"), ("--gradient_accumulation_steps", "0"), ("--weight_decay", "-1")):
        err = refusal(capsys, textlora.settings.check_settings, settings(flag, value, "--output_dir",
                                                                         str(tmp_path / "x")))
        assert flag in err and not (tmp_path / "x").exists(), err
    # a run started with some of them: resuming with another value, or without one, is refused by name
    out = tmp_path / "run"
    (out / "checkpoint-50").mkdir(parents=True)
    (out / "checkpoint-50" / "trainer_state.json").write_text('{"global_step": 50}')
    (out / "run.json").write_text(json.dumps({"settings": vars(cfg), "precision": "no"}))
    resumed = settings(*[f for f in ("--weight_decay", "0.1", "--gradient_accumulation_steps", "4",
                                     "--gradient_checkpointing", "--lr_scheduler_type", "cosine")],
                       "--output_dir", str(out), "--resume")
    err = refusal(capsys, textlora.settings.check_settings, resumed)
    assert "--weight_decay 0.1 (the run's: 0.01)" in err and "save_total_limit" not in err, err  # a free one


def test_a_settings_file_or_a_run_json_with_flags_over_it(capsys, tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps({"train_size": 123, "weight_decay": 0.05, "label_names": ["a=b"]}))
    cfg = settings(str(tmp_path / "mine.json"), "--seed", "7")
    assert (cfg.train_size, cfg.seed, cfg.label_names, cfg.trainer) == (123, 7, ["a=b"], {"weight_decay": 0.05})
    assert settings(str(tmp_path / "mine.json"), "--train_size", "5").train_size == 5  # the flag wins
    (tmp_path / "run.json").write_text(json.dumps({"settings": vars(cfg), "precision": "no"}))
    again = settings(str(tmp_path / "run.json"))
    assert vars(again) == vars(cfg)
    (tmp_path / "bad.json").write_text(json.dumps({"train_sise": 5}))
    err = refusal(capsys, settings, str(tmp_path / "bad.json"))
    assert "train_sise is no setting of train.py" in err


# ---- calibration and the baseline (issue 30), against truth worked out by hand or by a library run directly ---------

def test_the_temperature_fitted_is_the_one_worked_out_by_hand():
    """Every row has logits (2, 0) and three rows in four are class 0: the likelihood is best where
    softmax(2 / T) gives class 0 the probability 3/4, that is 2 / T = ln 3."""
    from textlora import calibration
    logits = np.array([[2.0, 0.0]] * 8)
    labels = np.array([0, 0, 0, 1] * 2)
    assert calibration.fit_temperature(logits, labels, textlora.labels.SINGLE) == pytest.approx(2 / np.log(3), rel=1e-4)
    # several labels: one logit 3 per text, positive in 9 of 10 texts: sigmoid(3 / T) = 0.9, T = 3 / ln 9
    assert calibration.fit_temperature(np.full((10, 1), 3.0), np.array([[1.0]] * 9 + [[0.0]]),
                                       textlora.labels.MULTI) == pytest.approx(3 / np.log(9), rel=1e-4)


def test_expected_calibration_error_and_brier_counted_by_hand():
    from textlora import calibration
    # top-class confidences 0.95, 0.95 (bin 14), 0.62, 0.62 (bin 9), 0.55 (bin 8); right: yes, no, yes, yes, no
    p = np.array([[0.95, 0.05], [0.05, 0.95], [0.62, 0.38], [0.38, 0.62], [0.55, 0.45]])
    y = np.array([0, 0, 0, 1, 1])
    # bin 14: |0.95 - 1/2| * 2; bin 9: |0.62 - 1| * 2; bin 8: |0.55 - 0| * 1; over 5 predictions
    assert calibration.ece(p, y, textlora.labels.SINGLE) == pytest.approx((0.45 * 2 + 0.38 * 2 + 0.55) / 5)
    # Brier: the squared gaps to one-hot, summed per row, averaged
    rows = [0.05 ** 2 * 2, 0.95 ** 2 * 2, 0.38 ** 2 * 2, 0.38 ** 2 * 2, 0.55 ** 2 * 2]
    assert calibration.brier(p, y, textlora.labels.SINGLE) == pytest.approx(sum(rows) / 5)


def test_each_labels_threshold_is_its_best_f1_on_a_fixed_set():
    from textlora import calibration
    # label a: positives at 0.3 and 0.4, negatives at 0.1 and 0.2: any cut between 0.2 and 0.3 is perfect (0.25);
    # label b: positives at 0.9, negatives at 0.6 and 0.2: above 0.6 is perfect; 0.75 is the midpoint
    p = np.array([[0.3, 0.9], [0.4, 0.6], [0.1, 0.2], [0.2, 0.2]])
    y = np.array([[1, 1], [1, 0], [0, 0], [0, 0]])
    assert calibration.best_thresholds(p, y) == pytest.approx([0.25, 0.75])
    # all negative: nothing to find, 0.5 stays (it ties with every cut above the largest probability)
    assert calibration.best_thresholds(np.array([[0.2], [0.7]]), np.array([[0], [0]])) == [0.5]


def test_the_baseline_scores_what_scikit_learn_run_directly_scores():
    from datasets import Dataset
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from conftest import reviews
    from textlora import baseline
    train_rows, eval_rows = Dataset.from_dict(reviews(120, seed=1)), Dataset.from_dict(reviews(60, seed=2))
    said = baseline.score(train_rows, eval_rows, textlora.labels.SINGLE, ["Negative", "Positive"], 0.5)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2)).fit(train_rows["text"])
    model = LogisticRegression(max_iter=1000).fit(vectorizer.transform(train_rows["text"]), train_rows["label"])
    predicted = model.predict(vectorizer.transform(eval_rows["text"]))
    assert said["accuracy"] == accuracy_score(eval_rows["label"], predicted)
    assert said["f1"] == pytest.approx(f1_score(eval_rows["label"], predicted))
    assert said["model"] == "TF-IDF + logistic regression" and said["seconds"] > 0
