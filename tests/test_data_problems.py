"""Problems a user's own data brings, found and said: evaluation rows that are also training rows, repeated rows, one
text with two labels, and labels that look wrong (label_issues.csv from train.py and from predict.py)."""
import csv
import json
import random
import re

import pytest
from conftest import in_process, reviews


def plain(text):
    """The same text up to case and whitespace, computed here another way than train.py does it."""
    return re.sub(r"\s+", " ", text).strip().lower()


def user_data(folder, kind):
    """A folder with train, validation and test splits of reviews (sentiment words: the tiny model learns them),
    copies planted across and within the splits, and training labels flipped. kind: classes (a ClassLabel), labels
    (a list of names per text), number (a score per text)."""
    import datasets
    splits = {"train": reviews(400, seed=1), "validation": reviews(100, seed=3), "test": reviews(200, seed=2)}
    train, rng = splits["train"], random.Random(0)
    for i in range(20):  # test rows that are training rows, half in other case and spacing
        splits["test"]["text"][i] = train["text"][i].upper().replace(" ", " \t ") + " " if i % 2 else train["text"][i]
        splits["test"]["label"][i] = train["label"][i]
    for i in range(5):
        splits["validation"]["text"][i] = train["text"][50 + i]
        splits["validation"]["label"][i] = train["label"][50 + i]
    for i in range(3):  # training rows repeated; the last with the other label
        train["text"][390 + i], train["label"][390 + i] = train["text"][100 + i], train["label"][100 + i]
    train["label"][392] = 1 - train["label"][392]
    flipped = list(range(200, 210))
    for i in flipped:
        train["label"][i] = 1 - train["label"][i]

    def labels(rows):
        if kind == "classes":
            return rows["label"]
        if kind == "number":
            return [float(y) * 4 + rng.random() for y in rows["label"]]
        return [(["good"] if y else ["bad"]) + (["long"] if len(t.split()) > 6 else [])
                for t, y in zip(rows["text"], rows["label"])]
    for name, rows in splits.items():
        table = {"text": rows["text"], "label": labels(rows)}
        rows["label"] = table["label"]
        features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(
            names=["neg", "pos"]) if kind == "classes" else datasets.Value("float32") if kind == "number"
            else datasets.List(datasets.Value("string"))})
        datasets.Dataset.from_dict(table, features=features).to_parquet(str(folder / f"{name}-00000-of-00001.parquet"))
        with open(folder.parent / f"{kind}-{name}.jsonl", "w", encoding="utf-8") as f:  # the same rows, as a file
            f.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(table["text"], table["label"]))
    return splits, flipped


def expected_duplicates(splits):
    train = [plain(t) for t in splits["train"]["text"]]
    seen = set(train)
    given = {}
    for rows in splits.values():
        for t, y in zip(rows["text"], rows["label"]):
            given.setdefault(plain(t), set()).add(tuple(y) if isinstance(y, list) else y)
    return {"eval_rows_duplicating_a_training_row": sum(plain(t) in seen for t in splits["test"]["text"]),
            "validation_rows_duplicating_a_training_row": sum(plain(t) in seen for t in splits["validation"]["text"]),
            "training_rows_duplicating_another": len(train) - len(seen),
            "duplicated_texts_with_different_labels": sum(len(v) > 1 for v in given.values())}


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["classes", "labels", "number"])
def test_duplicates_and_wrong_labels_are_found_said_and_listed_where_they_are(tiny_model, tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    splits, flipped = user_data(data, kind)
    out = tmp_path / "run"
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "400",
                      "--min_epoch_rows", "0", "--eval_size", "200", "--num_epochs", "3", "--output_dir", str(out),
                      "--mixed_precision", "no",
                      "--problem_type", "regression" if kind == "number" else "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())

    # the duplicates, counted here by another rule over the whole splits (every row of each is drawn)
    counts = expected_duplicates(splits)
    assert counts["eval_rows_duplicating_a_training_row"] >= 20 and counts["duplicated_texts_with_different_labels"]
    assert metrics["duplicates"] == counts
    data_line = next(line for line in proc.stdout.splitlines() if line.startswith("data:"))
    assert f"DUPLICATES: {counts['eval_rows_duplicating_a_training_row']} of the evaluation rows are also training " \
           f"rows" in data_line
    n = counts["duplicated_texts_with_different_labels"]
    assert f"{n} {'text has' if n == 1 else 'texts have'} different labels in different rows" in data_line

    # the headline without them equals the score of predict.py's labels of the other rows, by scikit-learn
    labelled = tmp_path / "labelled.jsonl"
    said = in_process("predict", str(out / "adapter"), "--file", str(data.parent / f"{kind}-test.jsonl"),
                      "--output", str(labelled))
    assert said.returncode == 0, said.stderr[-3000:]
    rows = [json.loads(line) for line in labelled.read_text().splitlines()]
    seen = {plain(t) for t in splits["train"]["text"]}
    kept = [r for r in rows if plain(r["text"]) not in seen]
    without = metrics["eval_without_duplicates"]
    assert without["rows"] == len(kept) == 200 - counts["eval_rows_duplicating_a_training_row"]
    if kind == "classes":
        from sklearn.metrics import accuracy_score
        shown = {0: "Negative", 1: "Positive"}
        assert without["accuracy"] == pytest.approx(accuracy_score([shown[r["label"]] for r in kept],
                                                                   [r["predicted"] for r in kept]), abs=1e-12)
    elif kind == "number":
        from sklearn.metrics import root_mean_squared_error
        assert without["rmse"] == pytest.approx(root_mean_squared_error([r["label"] for r in kept],
                                                                        [r["predicted"] for r in kept]), rel=1e-5)
        assert metrics["label_issues"]["listed"] is None and not (out / "label_issues.csv").exists()
        assert "labels that look wrong: not looked for (a number per text" in proc.stdout
        return
    else:
        from sklearn.metrics import f1_score
        from sklearn.preprocessing import MultiLabelBinarizer
        names = MultiLabelBinarizer(classes=metrics["labels"])
        assert without["micro_f1"] == pytest.approx(f1_score(
            names.fit_transform([r["label"] for r in kept]), names.transform([r["predicted"] for r in kept]),
            average="micro"), abs=1e-12)

    # the labels that look wrong: every listed row is where the file says it is, with the label given there
    listed = read_csv(out / "label_issues.csv")
    sets = [e["rows"] for e in listed]  # each set after the other, most suspicious first within it
    assert listed and sets == sorted(sets, key=["evaluation", "validation", "training"].index)
    for rows_of in set(sets):
        quality = [float(e["label_quality"]) for e in listed if e["rows"] == rows_of]
        assert quality == sorted(quality)
    named = {"train": "training", "test": "evaluation", "validation": "validation"}
    for e in listed:
        source = splits[e["split"]]
        assert e["rows"] == named[e["split"]]
        assert e["text"] == source["text"][int(e["row"])]
    found = {int(e["row"]) for e in listed if e["rows"] == "training"}
    if kind == "classes":  # the flipped training labels, found by the cross-validated baseline
        assert len(found & set(flipped)) >= 8 and len(found & set(flipped)) >= 0.6 * len(found), (found, flipped)
        assert all(e["given"] == {0: "Negative", 1: "Positive"}[splits[e["split"]]["label"][int(e["row"])]]
                   for e in listed)
    line = next(line for line in proc.stdout.splitlines() if "labels that look wrong" in line)
    assert line.strip().startswith("labels that look wrong (cleanlab, out-of-sample probabilities): ")
    assert f"{len(found)} of 400 training rows" in line and f"listed in {out / 'label_issues.csv'}" in line

    # predict.py lists the same evaluation rows, by the same code, from the same probabilities
    by_predict = read_csv(str(labelled) + ".label_issues.csv")
    ours = [e for e in listed if e["rows"] == "evaluation"]
    assert [(e["row"], e["given"], e["suggested"]) for e in ours] == \
        [(e["row"], e["given"], e["suggested"]) for e in by_predict]
    # the same to float32's precision: predict.py divides float32 logits by the temperature, train.py float64 ones
    assert [float(e["label_quality"]) for e in ours] == pytest.approx(
        [float(e["label_quality"]) for e in by_predict], abs=1e-5)
    assert len(by_predict) == metrics["label_issues"]["listed"]["eval"]


def test_evaluation_rows_that_are_all_training_rows_are_said_and_the_run_finishes(tiny_model, tmp_path):
    import datasets
    data = tmp_path / "data"
    data.mkdir()
    train = reviews(200, seed=1)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict(train, features=features).to_parquet(str(data / "train-00000-of-00001.parquet"))
    copied = {k: v[:40] for k, v in train.items()}
    datasets.Dataset.from_dict(copied, features=features).to_parquet(str(data / "test-00000-of-00001.parquet"))
    out = tmp_path / "run"
    proc = in_process("train", "--model_name", tiny_model, "--dataset_name", str(data), "--train_size", "200",
                      "--min_epoch_rows", "0", "--eval_size", "40", "--label_names", "none", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_without_duplicates"] == {"rows": 0, "left_out": 40}
    assert "all 40 evaluation rows are also training rows: the score measures nothing new" in proc.stdout


def test_a_file_labelled_again_keeps_no_stale_list_of_label_issues(trained, tmp_path):
    adapter = f"{trained[1]}/adapter"
    rows = reviews(40, seed=5)
    rows["label"] = ["pos" if y else "neg" for y in rows["label"]]
    rows["label"][3] = "neg" if rows["label"][3] == "pos" else "pos"  # one wrong label among clear ones
    (tmp_path / "mixed.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(*rows.values())))
    (tmp_path / "one_class.csv").write_text("text,label\ngreat superb film,pos\n")
    out = str(tmp_path / "labelled.csv")
    first = in_process("predict", adapter, "--file", str(tmp_path / "mixed.csv"), "--output", out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "3" in [e["row"] for e in read_csv(out + ".label_issues.csv")]
    again = in_process("predict", adapter, "--file", str(tmp_path / "one_class.csv"), "--output", out, "--overwrite")
    assert again.returncode == 0, again.stderr[-3000:]
    import os
    assert not os.path.exists(out + ".label_issues.csv")  # the first file's list is gone with its output
    assert "the label issues could not be listed (ValueError: the rows hold one class only)" in again.stderr
