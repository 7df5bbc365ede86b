"""Using a trained adapter: predict.py on arguments, standard input and files (text, CSV, JSONL, parquet), every row
kept and in order; a labelled file scored as train.py scored it; the merged export, in transformers' pipeline too."""
import csv
import functools
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, in_process, reviews


def predict(*args, stdin=None):
    """`python predict.py ARGS`, run in this process: the finished run, as a CompletedProcess."""
    return in_process("predict", *args, stdin=stdin)


def predict_in_a_process(*args, stdin=None):
    """`python predict.py ARGS` in a process of its own, offline, as a user's shell runs it."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@functools.cache
def loaded(adapter, base):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base), adapter).eval()
    return model, AutoTokenizer.from_pretrained(adapter)


def temperature(adapter):
    """The temperature train.py fitted on held-out rows: predict.py's probabilities are softmax(logits / it)."""
    path = os.path.join(adapter, "training.json")
    return json.load(open(path)).get("temperature", 1.0) if os.path.exists(path) else 1.0  # an older adapter: none


def truth(adapter, base, texts):
    """Class probabilities computed here, one text at a time (no padding at all), as a check on predict.py's."""
    model, tokenizer = loaded(adapter, base)
    with torch.no_grad():
        return [(model(**tokenizer(*text if isinstance(text, tuple) else (text,), truncation=True,
                                   return_tensors="pt")).logits / temperature(adapter)).softmax(-1)[0].tolist()
                for text in texts]


def check_predictions(rows, expected, names=("Negative", "Positive")):
    """Each output row: probabilities that sum to 1, the predicted label their argmax, and both the model's."""
    for row, p in zip(rows, expected, strict=True):
        given = [float(row[f"probability_{name}"]) for name in names]
        assert sum(given) == pytest.approx(1, abs=1e-5)
        assert row["predicted"] == names[given.index(max(given))] == names[p.index(max(p))]
        assert float(row["probability"]) == max(given)
        assert given == pytest.approx(p, abs=1e-4)


def test_predict_labels_reviews_from_arguments_file_and_stdin(trained, tiny_model, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    texts = reviews(6, seed=7)["text"]
    by_args = predict(adapter, *texts)
    assert by_args.returncode == 0, by_args.stderr[-3000:]
    lines = by_args.stdout.strip().splitlines()
    assert len(lines) == 6
    for line, text, p in zip(lines, texts, truth(adapter, tiny_model, texts)):
        label, probability, shown = line.split(None, 2)
        assert label == ["Negative", "Positive"][p.index(max(p))] and float(probability) == pytest.approx(max(p),
                                                                                                           abs=1e-3)
        assert text.startswith(shown.rstrip("."))
    (tmp_path / "reviews.txt").write_text("\n".join(texts) + "\n")
    by_file = predict(adapter, "--file", str(tmp_path / "reviews.txt"), "--batch_size", "4")
    by_stdin = predict_in_a_process(adapter, stdin="\n".join(texts))  # a real pipe, and the script's own exit
    assert by_stdin.returncode == 0, by_stdin.stderr[-3000:]
    assert by_file.stdout == by_args.stdout == by_stdin.stdout
    assert "6 rows" in by_file.stderr  # the progress bar and the summary go to stderr


def test_csv_in_csv_out_keeps_every_row_its_columns_and_order(trained, tiny_model, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    texts = reviews(40, seed=11)["text"]
    texts[3] += "\nand a second line"  # a quoted field across lines is one row
    texts[5] += ', "quoted", and; more'
    rows = [{"id": f"{i:03d}", "text": text, "note": "NA" if i % 7 == 0 else "" if i % 3 else "x,y"}
            for i, text in enumerate(texts)]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "labelled.csv.partial").write_text("mine")  # a name the writer must not take
    with open(tmp_path / "tickets.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "text", "note"])
        writer.writeheader()
        writer.writerows(rows)
    proc = predict(adapter, "--file", str(tmp_path / "tickets.csv"), "--output", str(tmp_path / "out" / "labelled.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "out" / "labelled.csv", newline="", encoding="utf-8") as f:
        out = list(csv.DictReader(f))
    assert list(out[0]) == ["id", "text", "note", "predicted", "probability", "probability_Negative",
                            "probability_Positive"]
    # every row, in order, as written: "007" still text, "NA" and empty cells as they were (only the text is parsed)
    assert [{k: r[k] for k in ("id", "text", "note")} for r in out] == rows
    check_predictions(out, truth(adapter, tiny_model, texts))
    assert sorted(os.listdir(tmp_path / "out")) == ["labelled.csv", "labelled.csv.partial"]  # no scores, no .partial
    assert (tmp_path / "out" / "labelled.csv.partial").read_text() == "mine"


def test_jsonl_and_parquet_in_and_out(trained, tiny_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    adapter = os.path.join(trained[1], "adapter")
    texts = reviews(30, seed=12)["text"]
    with open(tmp_path / "reviews.jsonl", "w") as f:
        f.writelines(json.dumps({"stars": i % 5, "text": t, "tags": ["a", "b"]}) + "\n" for i, t in enumerate(texts))
    proc = predict(adapter, "--file", str(tmp_path / "reviews.jsonl"), "--output", str(tmp_path / "labelled.parquet"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pq.read_table(tmp_path / "labelled.parquet")
    assert table.schema.field("stars").type == pa.int64() and table.column("text").to_pylist() == texts
    assert table.column("tags").to_pylist() == [["a", "b"]] * 30
    check_predictions(table.to_pylist(), truth(adapter, tiny_model, texts))

    pq.write_table(pa.table({"text": texts[:10], "when": pa.array(range(10), pa.int32())}), tmp_path / "in.parquet")
    proc = predict(adapter, "--file", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "labelled.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(line) for line in open(tmp_path / "labelled.jsonl")]
    assert [(r["text"], r["when"]) for r in out] == list(zip(texts[:10], range(10)))
    check_predictions(out, truth(adapter, tiny_model, texts[:10]))


def test_a_single_text_adapter_keeps_form_feeds_line_separators_and_tabs_in_one_row(trained, tiny_model, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    texts = ["great film\fsuperb cast", "awful plot\u2028boring acting", "loved it\tbrilliant", "dull\x1cpoor\rpoor",
             "wonderful\u0085moving", "worst\vwaste"]  # each splits in two under str.splitlines(); a \r alone too
    body = "\n".join(texts) + "\r\n"  # a Windows line end at the last: no part of the text
    (tmp_path / "odd.txt").write_text(body, newline="")
    proc = predict(adapter, "--file", str(tmp_path / "odd.txt"), "--output", str(tmp_path / "odd.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(line) for line in open(tmp_path / "odd.jsonl", encoding="utf-8", newline="\n")]
    assert [r["text"] for r in out] == texts
    check_predictions(out, truth(adapter, tiny_model, [r["text"] for r in out]))
    by_stdin = predict(adapter, stdin=body)
    assert by_stdin.returncode == 0 and len(by_stdin.stdout.splitlines()) == 6, by_stdin.stderr[-3000:]


def test_a_blank_text_is_refused_with_its_row_number_and_nothing_is_written(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    (tmp_path / "gap.txt").write_text("great film\nawful film\n \nsuperb\n")
    proc = predict(adapter, "--file", str(tmp_path / "gap.txt"), "--output", str(tmp_path / "out.csv"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "predict.py: error: line 3 has an empty text: every row needs one (remove the row or fill it in)"]
    (tmp_path / "gap.csv").write_text('text,id\ngreat film,1\n"",2\n')
    proc = predict(adapter, "--file", str(tmp_path / "gap.csv"), "--output", str(tmp_path / "out.csv"))
    assert proc.returncode == 2 and "row 2 has an empty text in column 'text'" in proc.stderr
    # from standard input the rows are not read twice: a blank line after a first chunk already written still leaves
    # no file, and no .partial
    lines = reviews(2100, seed=13)["text"]
    lines[2090] = ""
    proc = predict(adapter, "--output", str(tmp_path / "out.csv"), stdin="\n".join(lines))
    assert proc.returncode == 2 and "line 2091 has an empty text" in proc.stderr, proc.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["gap.csv", "gap.txt"]


def test_a_labelled_file_is_scored_as_train_py_scored_its_evaluation_rows(trained, tiny_imdb, tmp_path):
    from datasets import load_dataset
    adapter, metrics = os.path.join(trained[1], "adapter"), json.load(open(os.path.join(trained[1], "metrics.json")))
    rows = load_dataset(tiny_imdb)["test"].shuffle(seed=42).select(range(100))  # train.py's evaluation rows
    rows.to_parquet(str(tmp_path / "test.parquet"))  # the label: ClassLabel ids 0, 1
    proc = predict(adapter, "--file", str(tmp_path / "test.parquet"), "--output", str(tmp_path / "scored.parquet"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"accuracy {metrics['eval_accuracy']:.4f}" in proc.stdout
    scored = json.load(open(tmp_path / "scored.parquet.metrics.json"))
    assert scored["confusion_matrix"] == metrics["confusion_matrix"]
    for key in ("accuracy", "macro_f1", "f1", "precision", "recall"):
        assert scored[key] == pytest.approx(metrics[f"eval_{key}"], abs=1e-12), key
    for name, expected in metrics["per_class"].items():
        assert scored["per_class"][name] == pytest.approx(expected, abs=1e-12), name

    # the same rows with the class names as text, in a CSV, under another column name
    with open(tmp_path / "test.csv", "w", newline="") as f:
        csv.writer(f).writerows([["review", "truth"]] + [[r["text"], ["Negative", "Positive"][r["label"]]]
                                                         for r in rows])
    proc = predict(adapter, "--file", str(tmp_path / "test.csv"), "--text_column", "review", "--label_column",
                   "truth")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"accuracy {metrics['eval_accuracy']:.4f}" in proc.stdout
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert f"Negative  {tn:>8}  {fp:>8}" in proc.stdout and f"Positive  {fn:>8}  {tp:>8}" in proc.stdout


def test_a_decoder_without_a_padding_token_trains_predicts_and_merges(tiny_decoder, tiny_imdb, tmp_path):
    """A small Llama whose tokenizer has no padding token: train.py pads with its end-of-text token, puts LoRA on all
    its linear layers and trains its head (score) in full. Its classifier reads the last token before the padding,
    so predict.py, the load line and the merged model must all know that padding token, or batches of several
    lengths are misread."""
    from datasets import load_dataset
    from peft import AutoPeftModelForSequenceClassification
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, pipeline
    out = str(tmp_path / "run")
    proc = in_process("train", "--model_name", tiny_decoder, "--dataset_name", tiny_imdb, "--train_size", "200",
                      "--min_epoch_rows", "0", "--eval_size", "40", "--target_modules", "all-linear",
                      "--mixed_precision", "no", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("LoRA on 14 layers (down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj) + head score"
            in proc.stdout)
    assert "MAX_LENGTH 512 lowered to 256" in proc.stdout
    adapter = os.path.join(out, "adapter")
    weights = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    assert any(".score." in k for k in weights) and any("lora_A" in k for k in weights)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    rows = load_dataset(tiny_imdb)["test"].shuffle(seed=42).select(range(40))
    rows.to_parquet(str(tmp_path / "test.parquet"))
    proc = predict(adapter, "--file", str(tmp_path / "test.parquet"), "--batch_size", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert f"Negative  {tn:>8}  {fp:>8}" in proc.stdout and f"Positive  {fn:>8}  {tp:>8}" in proc.stdout

    # the load line the summary prints, on one padded batch, scores what train.py reported
    load_line = next(line.strip() for line in open(os.path.join(adapter, "README.md")) if "from_pretrained(" in line
                     and "Peft" in line)
    assert "pad_token_id=" in load_line
    namespace = {"AutoPeftModelForSequenceClassification": AutoPeftModelForSequenceClassification}
    exec(load_line, namespace)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    with torch.no_grad():
        logits = namespace["model"].eval()(**tokenizer(list(rows["text"]), padding=True, return_tensors="pt")).logits
    assert (logits.argmax(-1) == torch.tensor(rows["label"])).sum().item() == tn + tp

    # merged, in a plain pipeline: the same labels as predict.py
    merged = str(tmp_path / "merged")
    assert predict(adapter, "--merge", merged).returncode == 0
    texts = list(rows["text"][:12])
    by_pipeline = [p["label"] for p in pipeline("text-classification", model=merged, device="cpu", batch_size=6)(texts)]
    by_predict = [line.split()[0] for line in predict(adapter, *texts).stdout.splitlines()]
    assert by_pipeline == by_predict


def test_a_pair_adapter_takes_two_columns_or_two_tab_separated_fields(trained, tmp_path):
    adapter = str(tmp_path / "pair-adapter")  # the same weights, recorded as trained on pairs
    shutil.copytree(os.path.join(trained[1], "adapter"), adapter)
    facts = json.load(open(os.path.join(adapter, "training.json")))
    json.dump(facts | {"text_column": ["first", "second"]}, open(os.path.join(adapter, "training.json"), "w"))
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([["first", "second"], ["great film", "superb cast"], ["awful\tplot", "dull"]])
    proc = predict(adapter, "--file", str(tmp_path / "pairs.csv"), "--output", str(tmp_path / "pairs.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(line) for line in open(tmp_path / "pairs.jsonl")]
    assert [(r["first"], r["second"]) for r in out] == [("great film", "superb cast"), ("awful\tplot", "dull")]
    by_stdin = predict(adapter, stdin="great film\tsuperb cast\nawful plot\tdull\n")
    assert by_stdin.returncode == 0 and " | " in by_stdin.stdout, by_stdin.stderr[-3000:]
    for args, stdin, words in ((["great film\tsuperb cast", "one text alone"], None, "text 2 is not a pair"),
                               (["--file", str(tmp_path / "mixed.txt")], None, "line 2 is not a pair"),
                               (["--file", str(tmp_path / "one.csv")], None, "no column 'second'"),
                               (["great film", "--text_column", "first"], None, "trained on pairs of texts")):
        (tmp_path / "one.csv").write_text("first,other\ngreat film,x\n")
        (tmp_path / "mixed.txt").write_text("great film\tsuperb cast\none text alone\n")
        proc = predict(adapter, *args, "--output", str(tmp_path / "no.csv"), stdin=stdin)
        assert proc.returncode == 2 and words in proc.stderr.strip().splitlines()[-1], (args, proc.stderr)
    assert not os.path.exists(tmp_path / "no.csv")


def test_predict_refuses_bad_input_with_one_line_and_writes_nothing(trained, tmp_path):
    adapter = os.path.join(trained[1], "adapter")
    (tmp_path / "reviews.csv").write_text("review,label\ngreat film,Positive\nawful film,Bad\n")
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file at all")
    (tmp_path / "reviews.xlsx").write_bytes(b"PK")
    (tmp_path / "done.csv").write_text("keep me")
    csv_in = ["--file", str(tmp_path / "reviews.csv")]
    for args, stdin, words in (
            (["--file", str(tmp_path / "missing.txt")], None, "cannot read"),
            ([], "", "no texts given"),
            (["--base_model", str(tmp_path / "nowhere"), "fine film"], None, "--base_model"),
            (csv_in, None, "has no column 'text' (it has review, label); set --text_column"),
            (csv_in + ["--text_column", "review"], None, "row 2: label 'Bad' is no class of this adapter"),
            (csv_in + ["--text_column", "review", "--label_column", "stars"], None, "has no column 'stars'"),
            (["--file", str(tmp_path / "broken.parquet")], None, "cannot read"),
            (["--file", str(tmp_path / "reviews.xlsx")], None, "unknown extension .xlsx"),
            (["fine film", "--output", str(tmp_path / "done.csv")], None, "already exists; pass --overwrite"),
            (["fine film", "--output", str(tmp_path / "out.xlsx")], None, "--output"),
            (csv_in + ["--output", str(tmp_path / "reviews.csv"), "--overwrite"], None, "is the input file"),
            (["fine film", "--output", str(tmp_path / "done.csv" / "x.csv")], None, "not a writable folder"),
            (["--merge", str(tmp_path / "done.csv")], None, "is a file"),
            (["fine film", "--output", str(tmp_path / "new.csv")], None, "new.csv.metrics.json' already exists")):
        if words.startswith("new.csv"):
            (tmp_path / "new.csv.metrics.json").write_text("my scores")  # never removed without --overwrite
        # the rules in this process, the process itself once (its exit status, the line on its stderr)
        proc = (predict_in_a_process if "missing.txt" in " ".join(args) else predict)(adapter, *args, stdin=stdin)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and lines[-1].startswith("predict.py: error:"), (args, proc.stderr)
        assert words in lines[-1] and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["broken.parquet", "done.csv", "new.csv.metrics.json", "reviews.csv",
                                            "reviews.xlsx"]
    assert (tmp_path / "done.csv").read_text() == "keep me"
    assert (tmp_path / "new.csv.metrics.json").read_text() == "my scores"
    proc = predict(trained[1], "fine film")  # the run folder, not its adapter/
    assert proc.returncode == 2 and "not an adapter folder" in proc.stderr


def test_merged_model_loads_alone_gives_the_adapters_logits_and_predict_py_labels_in_a_pipeline(trained, tiny_model,
                                                                                                 tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    adapter, merged = os.path.join(trained[1], "adapter"), str(tmp_path / "merged")
    proc = predict(adapter, "--merge", merged)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model.safetensors" in os.listdir(merged) and not [f for f in os.listdir(merged) if f.endswith(".bin")]

    standalone = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    assert standalone.config.id2label == {0: "Negative", 1: "Positive"}
    with_adapter = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_model),
                                             adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    batch = tokenizer(reviews(20, seed=8)["text"], padding=True, return_tensors="pt")
    with torch.no_grad():  # the merged head carries the temperature: its probabilities are predict.py's
        torch.testing.assert_close(standalone(**batch).logits, with_adapter(**batch).logits / temperature(adapter),
                                   rtol=1e-4, atol=1e-5)
    assert predict(adapter, "--merge", merged).returncode == 2  # never over an existing model

    texts = reviews(30, seed=9)["text"]
    by_pipeline = pipeline("text-classification", model=merged, device="cpu")(texts)
    by_predict = predict(adapter, *texts)
    assert by_predict.returncode == 0, by_predict.stderr[-3000:]
    assert [p["label"] for p in by_pipeline] == [line.split()[0] for line in by_predict.stdout.splitlines()]
    assert [p["score"] for p in by_pipeline] == pytest.approx(
        [float(line.split()[1]) for line in by_predict.stdout.splitlines()], abs=1e-3)


def test_run_reports_curves_confusion_matrix_and_examples(trained):
    stdout, out = trained
    with open(os.path.join(out, "training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert tn + fp + fn + tp == 100  # the scores' rules: test_functions.py, on predictions counted by hand
    examples = [line for line in stdout.splitlines() if " predicted " in line and " true " in line]
    assert len(examples) == 3
