"""What predict.py says of the evaluation rows is what train.py's metrics.json says, for every kind of label, every
file format, the data's own label names and renamed ones, and awkward cells beside them (empty, NA, 007, -1, 1.0, a
name with a comma). Each case is generated from its name (random.Random(case)), so a failure names its inputs; both
scripts run in this process (their main()), in fp32, a second or two a case.

The predicting file is the evaluation split itself, in its own order, with rows whose label is empty added: those
are labelled and not scored. The truth is train.py's metrics.json, computed by the Trainer's evaluation."""
import csv
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BAD, FILLER, GOOD

import predict
import train
from textlora import labels, scores
from textlora.labels import Codec, key
import numpy as np

KINDS = ("classlabel", "strings", "integers", "booleans", "floats01", "lists", "columns", "numbers")
FORMATS = ("csv", "jsonl", "parquet")
NAMING = ("own", "renamed")
AWKWARD = ["", "NA", "007", "-1", "1.0", "a, b", "x"]
CLASSES = {"classlabel": ["neg", "pos"], "strings": ["bad, really", "fine", "good"], "integers": [-1, 2, 5],
           "booleans": [False, True], "floats01": [0.0, 1.0], "lists": ["plot", "acting, mostly", "music"]}


def text_for(rng, score):
    """Words whose share of good ones is `score`: something a tiny model can pick up."""
    words = [rng.choice(GOOD if rng.random() < score else BAD) for _ in range(rng.randint(3, 6))]
    return " ".join(words + [rng.choice(FILLER) for _ in range(rng.randint(0, 3))])


def rows_for(kind, rng, n):
    rows = []
    for _ in range(n):
        row = {"note": rng.choice(AWKWARD)}
        if kind in CLASSES and kind != "lists":
            i = rng.randrange(len(CLASSES[kind]))
            row["text"], row["label"] = text_for(rng, i / (len(CLASSES[kind]) - 1)), CLASSES[kind][i]
        elif kind == "lists":
            chosen = [name for name in CLASSES["lists"] if rng.random() < 0.5]
            row["text"], row["label"] = text_for(rng, len(chosen) / 3), chosen
        elif kind == "columns":
            a, b = rng.random() < 0.5, rng.random() < 0.5
            row["text"], row["first"], row["second"] = text_for(rng, (a + b) / 2), int(a), int(b)
        else:
            share = rng.random()
            row["text"], row["label"] = text_for(rng, share), round(share, 3)
        rows.append(row)
    return rows


def write(rows, path, fmt, kind):
    if fmt == "parquet":
        import datasets
        features = None
        if kind == "classlabel":  # ClassLabel survives in a parquet file written by datasets
            rows = [r | {"label": -1 if r["label"] is None else CLASSES["classlabel"].index(r["label"])} for r in rows]
            features = datasets.Features({"note": datasets.Value("string"), "text": datasets.Value("string"),
                                          "label": datasets.ClassLabel(names=CLASSES["classlabel"])})
        datasets.Dataset.from_list(rows, features=features).to_parquet(path)
    elif fmt == "jsonl":
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        columns = list(rows[0])
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([json.dumps(r[c]) if isinstance(r[c], list) else r[c] for c in columns] for r in rows)


def renaming(kind):
    """LABEL_NAMES for the renamed cases: every class given a shown name of its own."""
    if kind in ("columns", "numbers"):
        return None
    return [f"{key(v)}=shown {i}" for i, v in enumerate(CLASSES[kind])]


def shown_value(kind, value, names):
    """The label of a row as a person would write it after renaming: the shown name(s)."""
    if kind == "lists":
        return [names[CLASSES["lists"].index(v)] for v in value]
    return names[CLASSES[kind].index(value)]


CASES = [f"{k}-{f}-{n}" for k in KINDS for f in FORMATS for n in NAMING
         if not (n == "renamed" and k in ("columns", "numbers"))]
# texts longer than MAX_LENGTH (6 tokens: most of these), read by their head and tail or in windows
CASES += [f"{k}-jsonl-own-{long}" for k in KINDS for long in ("head_tail", "windows")]


@pytest.mark.parametrize("case", CASES)
def test_predict_py_on_the_evaluation_rows_says_what_metrics_json_says(case, tiny_model, tmp_path, capsys):
    kind, fmt, naming, *long = case.split("-")
    long_flags = ["--long_texts", long[0], "--max_length", "6"] if long else []
    rng = random.Random(case)
    data = tmp_path / "data"
    data.mkdir()
    train_rows, test_rows = rows_for(kind, rng, 60), rows_for(kind, rng, 16)  # 48 trained on, 12 held out
    write(train_rows, str(data / f"train.{fmt}"), fmt, kind)
    write(test_rows, str(data / f"test.{fmt}"), fmt, kind)
    label_flags = ["--label_column", "first", "second"] if kind == "columns" else []
    names = renaming(kind) if naming == "renamed" else None
    out = str(tmp_path / "run")
    # the few-row recipe of 48 rows (passes; one class of several: the contrastive stage and the mean of the tokens)
    # for each kind in parquet and with windows, one pass over the rows for the rest
    few = [] if (fmt, naming) == ("parquet", "own") or long == ["windows"] else ["--min_epoch_rows", "0"]
    train.main(["--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "48", "--eval_size", "16",
                "--num_epochs", "1", *few, "--mixed_precision", "no", "--batch_size", "8", "--output_dir", out,
                *label_flags, *(["--label_names", *names] if names else []), *long_flags])
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert (metrics["pooling"] == "mean") == (not few and metrics["problem_type"] == labels.SINGLE), metrics["pooling"]
    if long:  # most texts are longer than 6 tokens, and the run says so
        assert metrics["long_texts"]["setting"] == long[0] and metrics["long_texts"]["eval_longer"] >= 8, metrics
    if metrics["problem_type"] == labels.MULTI:  # the baseline beside it was scored at thresholds chosen alike
        assert metrics["baseline"]["thresholds_by"] == metrics["calibration"]["thresholds_by"], metrics["baseline"]

    # the evaluation rows, labelled as the data holds them or by their shown names, and rows still to label
    shown = [n.split("=", 1)[1] for n in names] if names else None
    # renamed: names half the rows by shown name and half by the data's own value (a column of one type: numbers and
    # booleans by their own values, as the stars 1/2 renamed bad/good); both must be the class train.py read
    by_name = shown and kind in ("classlabel", "strings", "lists")
    labelled = [r | ({"label": shown_value(kind, r["label"], shown)} if by_name and i % 2 else {})
                for i, r in enumerate(test_rows)]
    given, output = str(tmp_path / f"given.{fmt}"), str(tmp_path / f"labelled.{fmt}")
    write(labelled, given, fmt, kind if not by_name else None)
    predict.main([os.path.join(out, "adapter"), "--file", given, "--output", output])
    said = capsys.readouterr().out
    assert "scored 16 of 16 rows" in said, said
    scored = json.load(open(output + ".metrics.json"))
    for name in scores.SCORES[metrics["problem_type"]][:-1]:  # all but the loss, which predict.py does not compute
        if f"eval_{name}" in metrics:
            # the same batches, so the same logits: equal but for the order of a sum (train.py's rows are sorted)
            assert scored[name] == pytest.approx(metrics[f"eval_{name}"], rel=1e-12, abs=1e-12), (case, name)
    if "confusion_matrix" in metrics:
        assert scored["confusion_matrix"] == metrics["confusion_matrix"], case
    for report in ("per_class", "per_label"):
        for name, expected in metrics.get(report, {}).items():
            assert scored[report][name] == pytest.approx(expected, rel=1e-12, abs=1e-12), (case, report, name)

    # the probabilities written are the calibrated ones train.py measured: the same calibration error
    if metrics["calibration"] and metrics["problem_type"] != "regression":
        from textlora import calibration
        written = read_back(output, fmt)
        p = np.array([[float(r[f"probability_{n}"]) for n in metrics["labels"]] for r in written])
        truth = codec_targets(metrics, labelled)
        assert calibration.ece(p, truth, metrics["problem_type"]) == pytest.approx(
            metrics["calibration"]["ece_after"], abs=1e-5), case

    # rows still to label among them: all labelled, the others scored (batches change, so figures only nearly)
    unlabelled = [r | ({"first": None, "second": None} if kind == "columns" else {"label": None})
                  for r in rows_for(kind, rng, 4)]
    write(labelled + unlabelled, given, fmt, kind if not by_name else None)
    predict.main([os.path.join(out, "adapter"), "--file", given, "--output", output, "--overwrite"])
    said = capsys.readouterr().out
    assert "scored 16 of 20 rows" in said, said
    headline = scores.SCORES[metrics["problem_type"]][0]
    assert json.load(open(output + ".metrics.json"))[headline] == pytest.approx(metrics[f"eval_{headline}"], abs=1e-5)
    if fmt == "csv":  # the label cells are parsed to be scored, and written back as they were (1 stays 1, not 1.0)
        columns = ["first", "second"] if kind == "columns" else ["label"]
        with open(given, newline="") as f, open(output, newline="") as g:
            assert [[r[c] for c in columns] for r in csv.DictReader(g)] == [[r[c] for c in columns]
                                                                             for r in csv.DictReader(f)], case

    # every row, in order, with its own cells as the reader read them, and the prediction added
    written = read_back(output, fmt)
    assert len(written) == 20 and [r["text"] for r in written] == [r["text"] for r in labelled + unlabelled]
    if metrics["problem_type"] == labels.MULTI:
        assert all(isinstance(r["predicted"], list) for r in written)  # a name with a comma stays one name
        assert {n for r in written for n in r["predicted"]} <= set(metrics["labels"])


def codec_targets(metrics, rows):
    """The rows' labels as the adapter's codec reads them (its round trip is checked above, against metrics.json)."""
    with open(os.path.join(metrics["config"]["output_dir"], "adapter", "training.json")) as f:
        codec = Codec.from_json(json.load(f)["label_codec"])
    cells = [[r[c] for c in codec.columns] for r in rows]
    return codec.as_array([codec.encode(c) for c in cells])


def read_back(path, fmt):
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in open(path)]
    with open(path, newline="") as f:
        return [r | {"predicted": json.loads(r["predicted"]) if r["predicted"].startswith("[") else r["predicted"]}
                for r in csv.DictReader(f)]


def test_a_field_set_only_after_the_first_chunk_is_written_to_parquet(trained, tmp_path, capsys):
    """A JSONL whose optional field is null for the first 2,048 rows (one chunk) and then set: the output's types are
    the whole file's, decided before the first row is labelled."""
    rng = random.Random(0)
    path = tmp_path / "late.jsonl"
    with open(path, "w") as f:
        for i in range(2100):
            f.write(json.dumps({"text": text_for(rng, rng.random()), "when": None if i < 2048 else "later"})
                    + "\n")
    predict.main([os.path.join(trained[1], "adapter"), "--file", str(path), "--output", str(tmp_path / "out.parquet")])
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 2100 and table.schema.field("when").type == pa.string()
    assert table["when"].to_pylist()[2047:2049] == [None, "later"]


def test_a_field_of_several_types_comes_back_as_it_was(trained, tmp_path):
    """A JSONL field that is a number in some rows and text in others (datasets keeps it as JSON text) is written
    back with each row's own value and type."""
    rng = random.Random(1)
    rows = [{"text": text_for(rng, rng.random()), "extra": i if i < 5 else f"x{i}"} for i in range(8)]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for fmt in ("jsonl", "csv"):
        predict.main([os.path.join(trained[1], "adapter"), "--file", str(tmp_path / "mixed.jsonl"), "--output",
                      str(tmp_path / f"out.{fmt}")])
    assert [r["extra"] for r in read_back(str(tmp_path / "out.jsonl"), "jsonl")] == [r["extra"] for r in rows]
    with open(tmp_path / "out.csv", newline="") as f:
        assert [r["extra"] for r in csv.DictReader(f)] == [str(r["extra"]) for r in rows]
