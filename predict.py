"""Use an adapter that train.py wrote: label texts or files of any size, score a labelled file, export a merged model.

    python predict.py outputs/distilbert-imdb-lora/adapter "What a wonderful film." "Dull and far too long."
    python predict.py outputs/distilbert-imdb-lora/adapter --file reviews.txt     # one text per line
    cat reviews.txt | python predict.py outputs/distilbert-imdb-lora/adapter      # or standard input
    python predict.py outputs/distilbert-imdb-lora/adapter --file tickets.csv --output labelled.csv
    printf 'first\tsecond\n' | python predict.py outputs/pairs/adapter            # a pair: two tab-separated fields
    python predict.py outputs/distilbert-imdb-lora/adapter --merge outputs/merged # base + adapter in one model

Input: texts as arguments, a file (.txt: one text a line; .csv, .jsonl, .parquet: the text in the column(s) the
adapter was trained on) or standard input (one text a line). --output FILE (.csv, .jsonl, .parquet) gets every input
row, in order, with its columns, the predicted label, its probability and one probability per class; without it,
one line a text. An input holding the label column is also scored: accuracy, F1, confusion matrix (FILE.metrics.json).
An adapter for several labels per text gives every label whose probability passes its THRESHOLD (and one probability
column per label); one for a number per text gives the number.
The model runs as train.py evaluated it: same MAX_LENGTH, same precision rule, same evaluation batch size.
The base model named in adapter_config.json is loaded first (--base_model points to a local copy instead).
"""
import argparse
import csv
import io
import itertools
import json
import os
import shutil
import sys
import time
import warnings

TABLES = (".csv", ".jsonl", ".parquet")  # what --output writes, and what --file reads besides .txt
CHUNK = 2048  # rows read, labelled and written at a time: memory does not grow with the number of rows
csv.field_size_limit(2**31 - 1)  # the csv module refuses a field over 128 KiB by default: a long ticket is one

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("adapter_dir", help="the adapter/ folder of a train.py run")
parser.add_argument("texts", nargs="*", help="texts to label (a pair adapter: two tab-separated fields each); none: "
                                             "read --file or standard input")
parser.add_argument("--file", help="input: .txt (one text a line), .csv, .jsonl or .parquet")
parser.add_argument("--output", help="write every input row with its predictions to this .csv, .jsonl or .parquet")
parser.add_argument("--overwrite", action="store_true", help="replace an existing --output (and its .metrics.json)")
parser.add_argument("--text_column", nargs="+", help="column(s) holding the text, two for a pair; "
                                                     "default: those the adapter was trained on")
parser.add_argument("--label_column", help="column holding the true class, to score the predictions; default: the "
                                           "one the adapter was trained on, where the input has it")
parser.add_argument("--base_model", help="base model to load instead of the one in adapter_config.json")
parser.add_argument("--merge", metavar="OUT_DIR", help="write base + adapter as one standalone model to OUT_DIR")
parser.add_argument("--batch_size", type=int, help="default: train.py's evaluation batch size on this machine")
parser.add_argument("--max_length", type=int, help="tokens per text; default: the adapter's MAX_LENGTH")
parser.add_argument("--mixed_precision", choices=["auto", "bf16", "fp16", "no"],
                    help="default: the adapter's MIXED_PRECISION, chosen for this machine as train.py does")
parser.add_argument("--trust_remote_code", action="store_true")
cfg = parser.parse_intermixed_args()  # texts before or after the options
bar = None  # the progress bar, once rows are labelled


def fail(message):
    if bar is not None:
        bar.close()  # first, so that the error is the last line on stderr
    print(f"predict.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# -- what the adapter was trained on: columns, classes, length, precision -----------------------------------
config_path = os.path.join(cfg.adapter_dir, "adapter_config.json")
if not os.path.isfile(config_path):
    fail(f"{cfg.adapter_dir!r} is not an adapter folder (no adapter_config.json); train.py writes one to "
         f"OUTPUT_DIR/adapter")
facts_path, labels_path = (os.path.join(cfg.adapter_dir, name) for name in ("training.json", "labels.json"))
if os.path.exists(facts_path):
    facts = json.load(open(facts_path))
else:  # written before training.json: train.py's defaults then, and the class names of labels.json if it has one
    by_id = json.load(open(labels_path)) if os.path.exists(labels_path) else None
    facts = {"text_column": ["text"], "label_column": "label", "max_length": 512, "mixed_precision": "auto",
             "labels": [by_id[str(i)] for i in range(len(by_id))] if by_id else None}
names = facts["labels"]  # None only for an adapter without labels.json: the base model's config names them
problem = facts.get("problem_type", "single_label_classification")
several, number = problem == "multi_label_classification", problem == "regression"
text_columns = cfg.text_column or facts["text_column"]
if len(text_columns) > 2:
    fail(f"--text_column takes one column, or two for a pair of texts; got {' '.join(text_columns)}")
if cfg.text_column and os.path.exists(facts_path) and len(cfg.text_column) != len(facts["text_column"]):
    trained = " and ".join(facts["text_column"])
    fail(f"this adapter was trained on {'pairs of texts' if len(facts['text_column']) == 2 else 'single texts'} "
         f"({trained}); give --text_column {len(facts['text_column'])} column(s)")
pairs = len(text_columns) == 2
max_length = cfg.max_length or facts["max_length"]


def columns_added(names):
    """What the output adds to each row: the label and its probability, and one probability per class; the labels
    given and one probability per label; or the number."""
    if number:
        return ["predicted"]
    return ["predicted"] + ([] if several else ["probability"]) + [f"probability_{name}" for name in names or []]


new_columns = columns_added(names)

# -- check the input and the output before loading anything -----------------------------------------------
for flag in ("batch_size", "max_length"):
    if getattr(cfg, flag) is not None and getattr(cfg, flag) <= 0:
        fail(f"--{flag} must be at least 1, got {getattr(cfg, flag)}")
if cfg.merge:
    if cfg.output or cfg.texts or cfg.file:
        fail("--merge writes a model and labels nothing; run it without texts, --file or --output")
    if os.path.exists(cfg.merge) and os.listdir(cfg.merge):
        fail(f"--merge: {cfg.merge!r} already exists and is not empty")
if cfg.texts and cfg.file:
    fail("give texts as arguments or --file, not both")
kind = "arguments" if cfg.texts else os.path.splitext(cfg.file)[1].lower() if cfg.file else "stdin"
if cfg.file and kind not in (".txt", *TABLES):
    fail(f"--file {cfg.file!r}: unknown extension {kind or '(none)'}; give .txt (one text a line), .csv, .jsonl or "
         f".parquet")
if cfg.file and not os.path.isfile(cfg.file):
    fail(f"cannot read --file {cfg.file!r}: {'it is a folder' if os.path.isdir(cfg.file) else 'no such file'}")
if cfg.label_column and kind not in TABLES:
    fail("--label_column needs a table (.csv, .jsonl or .parquet); lines of text have no label column")
output = cfg.output
metrics_path = output and output + ".metrics.json"
if output:
    if os.path.splitext(output)[1].lower() not in TABLES:
        fail(f"--output {output!r}: unknown extension; give .csv, .jsonl or .parquet")
    if os.path.isdir(output):
        fail(f"--output {output!r} is a folder; give a file name")
    if cfg.file and os.path.exists(output) and os.path.samefile(cfg.file, output):
        fail(f"--output {output!r} is the input file; write to another file")
    if os.path.exists(output) and not cfg.overwrite:
        fail(f"--output {output!r} already exists; pass --overwrite to replace it, or choose another --output")
    parent = os.path.dirname(os.path.abspath(output))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        fail(f"--output {output!r} cannot be written ({parent!r} is not a writable folder)")


def read_rows(columns=None):
    """Each input row in order, as (where, row): where names it in messages; row maps a column to its value.
    Lines split on "\\n" alone (a form feed or a Unicode line separator stays in its text)."""
    if kind == ".csv":
        with open(cfg.file, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            n = 0
            for fields in reader:
                if not fields:  # a blank line between records is no row (the csv module's DictReader skips it too)
                    continue
                n += 1
                if len(fields) != len(header):
                    fail(f"row {n} (line {reader.line_num}) of {cfg.file!r} has {len(fields)} fields and the header "
                         f"{len(header)}")
                yield f"row {n} (line {reader.line_num})", dict(zip(header, fields))
    elif kind == ".jsonl":
        with open(cfg.file, encoding="utf-8-sig") as f:
            n = 0
            for line_number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        n, row = n + 1, json.loads(line)
                    except ValueError:
                        row = None
                    if not isinstance(row, dict):
                        fail(f"line {line_number} of {cfg.file!r} is not a JSON object: JSON Lines has one a line")
                    yield f"row {n} (line {line_number})", row
    elif kind == ".parquet":
        import pyarrow.parquet as pq
        batches = pq.ParquetFile(cfg.file).iter_batches(batch_size=CHUNK, columns=columns)
        yield from ((f"row {n}", row) for n, row in enumerate(itertools.chain.from_iterable(
            batch.to_pylist() for batch in batches), 1))
    else:
        lines = cfg.texts if kind == "arguments" else open(cfg.file, encoding="utf-8-sig", newline="\n") \
            if cfg.file else io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="\n")
        for n, line in enumerate(lines, 1):
            line = line.removesuffix("\n").removesuffix("\r") if kind != "arguments" else line
            fields = line.split("\t", 1) if pairs else [line]
            yield f"{'text' if kind == 'arguments' else 'line'} {n}", dict(zip(text_columns, fields))


UNREADABLE = (OSError, UnicodeDecodeError, ValueError, csv.Error)  # pyarrow's ArrowInvalid is a ValueError


def unreadable(e):
    return (f"cannot read {cfg.file or 'standard input'!r}: "
            f"{e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]}")


def input_columns():
    """The input's columns, before any row is labelled: a CSV's header, a parquet schema, a JSONL's first object."""
    if kind == ".csv":
        with open(cfg.file, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
        if twice := next((c for c in header if header.count(c) > 1), None):
            fail(f"the header of {cfg.file!r} names column {twice!r} twice; rename one")
        return header
    if kind == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_schema(cfg.file).names
    if kind == ".jsonl":
        return list(next(read_rows(), (None, {}))[1])
    return list(text_columns)


def class_id(value, where):
    """A true label as a class id: a class name, or an id where the names are not numbers themselves."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    name = value.strip() if isinstance(value, str) else str(value)
    if value is None or name == "":
        fail(f"{where} has no label in column {label_column!r}; every row of a scored file needs one")
    if names is None:  # no class names before the model is loaded: checked again then
        return 0
    if name in label_ids:
        return label_ids[name]
    as_id = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and name.isdigit()
    if as_id and not numbered and 0 <= int(name) < len(names):  # names that are numbers are matched as names only
        return int(name)
    fail(f"{where}: label {value!r} in column {label_column!r} is not a class of this adapter "
         f"({', '.join(names)}){'' if numbered else f' nor a class id 0-{len(names) - 1}'}")


def check(where, row):
    """The row's text(s), and its class id when the input is scored; one line and exit 2 for a row that has none."""
    texts = []
    for column in text_columns:
        text = row.get(column)
        if text is None and pairs and kind in ("arguments", "stdin", ".txt"):
            fail(f"{where} is not a pair: this adapter was trained on pairs of texts ({' and '.join(text_columns)}); "
                 f"give two tab-separated fields")
        if text is not None and not isinstance(text, str):
            fail(f"{where}: column {column!r} holds {text!r}, not text")
        if text is None or not text.strip():  # None: a null cell, or a JSON object without the key
            fail(f"{where} has an empty text{f' in column {column!r}' if kind in TABLES else ''}: every row needs "
                 f"one (remove the row or fill it in)")
        texts.append(text)
    return texts, class_id(row.get(label_column), where) if scored else None


def set_names(classes):
    global names, label_ids, numbered, new_columns
    names = classes
    label_ids = {name: i for i, name in enumerate(names)}
    numbered = all(name.lstrip("-").isdigit() for name in names)
    new_columns = columns_added(names)


if names is not None:
    set_names(names)
rows_in = None  # known for files, from the check below: the progress bar's total
if not cfg.merge:
    try:
        columns = input_columns()
        for column in (*text_columns, *([cfg.label_column] if cfg.label_column else [])):
            if kind in TABLES and column not in columns:
                fail(f"{cfg.file!r} has no column {column!r} (it has {', '.join(map(str, columns)) or 'none'}); set "
                     f"{'--label_column' if column == cfg.label_column else '--text_column'}")
        label_column = cfg.label_column or facts["label_column"]
        # scores are computed for one class per text; the other kinds are labelled, not scored (said below)
        scored = kind in TABLES and label_column in columns and not (several or number)
        if kind in TABLES and label_column in columns and not scored:
            print(f"predict.py: column {label_column!r} is not scored: scoring is for one class per text, and this "
                  f"adapter gives {'several labels' if several else 'a number'} per text", file=sys.stderr)
        if clash := [c for c in new_columns if c in columns]:
            fail(f"the input already has a column {clash[0]!r}, which the output adds; rename it")
        if output and scored and os.path.exists(metrics_path) and not cfg.overwrite:
            fail(f"--output: {metrics_path!r} already exists; pass --overwrite to replace it")
        if cfg.file:  # a first pass over the needed columns: a bad row is said now, not after an hour of labelling
            rows_in = 0
            for where, row in read_rows([*text_columns, *([label_column] if scored else [])]):
                check(where, row)
                rows_in += 1
                if kind == ".jsonl":
                    columns += [c for c in row if c not in columns]  # a CSV output's header: every key seen
        elif kind == "arguments":
            for where, row in read_rows():
                check(where, row)
    except UNREADABLE as e:
        fail(unreadable(e))
    if rows_in == 0:
        fail(f"{cfg.file!r} holds no rows")

import numpy as np
import torch
from peft import PeftModel
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import logging as transformers_logging

import train  # the device, precision and evaluation batch rules, and the scores, as train.py has them

transformers_logging.set_verbosity_error()  # the fresh head's "newly initialized" warning: the adapter replaces it
transformers_logging.disable_progress_bar()  # stderr keeps one bar, the rows'
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing")  # peft asks transformers 5 a deprecated name
base_name = cfg.base_model or json.load(open(config_path))["base_model_name_or_path"]
try:
    tokenizer = AutoTokenizer.from_pretrained(cfg.adapter_dir)
    # the adapter's head has one output per class; the base model's saved head may have another number
    base = AutoModelForSequenceClassification.from_pretrained(
        base_name, trust_remote_code=cfg.trust_remote_code,
        **({"num_labels": len(names), "id2label": dict(enumerate(names)),
            "label2id": {v: k for k, v in enumerate(names)}, "ignore_mismatched_sizes": True,
            "problem_type": problem} if names else {}),
        # a decoder's classifier reads the last token before the padding: train.py gave it the padding token it lacked
        **({"pad_token_id": facts["pad_token_id"]} if facts.get("pad_token_id") is not None else {}))
    # trainable, as in training: fit_to_the_chip below then casts the frozen weights alone, as train.py's did
    model = PeftModel.from_pretrained(base, cfg.adapter_dir, is_trainable=not cfg.merge).eval()
except (OSError, ValueError, RuntimeError) as e:
    fail(f"cannot load base model {base_name!r} with this adapter ({str(e).splitlines()[0]}); "
         f"set --base_model to a local copy")
if names is None:
    set_names([model.config.id2label[i] for i in range(len(model.config.id2label))])
max_length = train.within_reach(max_length, model.config, tokenizer)  # past its positions a model fails

# -- merge: fold the LoRA matrices into the base weights, save like any transformers model -----------
if cfg.merge:
    tmp = cfg.merge.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a merge killed while writing: no stale files in the new model
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp)  # safetensors, config.json with the label names
    tokenizer.model_max_length = max_length  # pipeline(..., truncation=True) then cuts where training did
    tokenizer.save_pretrained(tmp)
    if os.path.isdir(cfg.merge):
        os.rmdir(cfg.merge)  # empty, checked above
    os.replace(tmp, cfg.merge)
    print(f"merged model written to {cfg.merge}/; load it with\n"
          f"  AutoModelForSequenceClassification.from_pretrained(\"{cfg.merge}\")")
    sys.exit(0)

# -- the model as train.py evaluated it: device, precision, batch size ---------------------------------------
device = train.device_type()
precision, _ = train.choose_precision(cfg.mixed_precision or facts["mixed_precision"], device, main_process=True)
model.to(device)
pad_to = train.fit_to_the_chip(model, device, precision)
model.requires_grad_(False)
batch_size = cfg.batch_size or train.eval_batch_size(device, precision)
autocast = torch.autocast(device, dtype=torch.float16 if precision == "fp16" else torch.bfloat16,
                          enabled=precision in ("bf16", "fp16"))


def probabilities(texts):
    """Class probabilities of each text (a list of one or two strings), in batches of similar length: a sorted
    chunk pads little, and padding does not change a text's logits. The chunk is tokenized in one call, as train.py
    tokenizes its rows before evaluating, and each batch only padded."""
    encoded = tokenizer(*([t[k] for t in texts] for k in range(len(text_columns))), truncation=True,
                        max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
    result = np.empty((len(texts), len(names)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        ids = order[start:start + batch_size]
        batch = tokenizer.pad({key: [values[i] for i in ids] for key, values in encoded.items()},
                              pad_to_multiple_of=pad_to, return_tensors="pt")
        with torch.inference_mode(), autocast:
            logits = model(**batch.to(device)).logits.float()
            result[ids] = (logits if number else logits.sigmoid() if several else logits.softmax(-1)).cpu().numpy()
        bar.update(len(ids))
    return result


def chunks():
    """The input CHUNK rows at a time, each row as (where, row)."""
    rows = read_rows()
    while True:
        try:
            chunk = list(itertools.islice(rows, CHUNK))
        except UNREADABLE as e:
            fail(unreadable(e))
        if not chunk:
            return
        yield chunk


# -- the output: written beside its place and renamed at the end, so it is there whole or not at all ----------
suffix = output and os.path.splitext(output)[1].lower()
all_columns = columns + new_columns
partial, out, writer = output and output + ".partial", None, None
if output:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        schema = None  # a parquet input's own types; else those of the first chunk
        if kind == ".parquet":
            schema = pq.read_schema(cfg.file).remove_metadata()  # datasets' metadata would not list the new columns
            for column, kind_of in zip(new_columns, [pa.float64() if number else pa.string()]
                                       + [pa.float64()] * (len(new_columns) - 1)):
                schema = schema.append(pa.field(column, kind_of))
    else:
        out = open(partial, "w", encoding="utf-8", newline="")
        writer = csv.writer(out) if suffix == ".csv" else None
        if writer:
            writer.writerow(all_columns)


def write(rows, where):
    global writer
    if suffix == ".csv":
        writer.writerows([json.dumps(v) if isinstance(v, (list, dict)) else v for v in map(row.get, all_columns)]
                         for row in rows)
    elif suffix == ".jsonl":
        out.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    else:
        try:
            table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in all_columns},
                                         schema=writer.schema if writer else schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            fail(f"a column changes type by {where}, and a parquet column holds one type ({str(e).splitlines()[0]}); "
                 f"write --output as .csv or .jsonl")
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)


# -- label the input chunk by chunk: read, predict, write or print ---------------------------------------------
width = max(8, *map(len, names))
confusion = np.zeros((len(names), len(names)), dtype=np.int64)
show_progress = kind != "arguments" and (kind != "stdin" or bool(output))  # for files; texts given in a line need none
bar = tqdm(total=rows_in, unit=" rows", file=sys.stderr, dynamic_ncols=True, mininterval=1, disable=not show_progress)
rows_done, start, finished = 0, time.time(), False
try:
    for chunk in chunks():
        checked = [check(where, row) for where, row in chunk]
        p = probabilities([texts for texts, _ in checked])
        best = p.argmax(-1)
        rows_done += len(chunk)
        if scored:
            np.add.at(confusion, ([label for _, label in checked], best), 1)
        given = [[i for i, x in enumerate(q) if x > facts.get("threshold", 0.5)] for q in p] if several else None
        if output:
            write([row | ({"predicted": round(float(q[0]), 6)} if number else
                          {"predicted": ", ".join(names[i] for i in g)} if several else
                          {"predicted": names[b], "probability": round(float(q[b]), 6)})
                   | ({} if number else {f"probability_{name}": round(float(x), 6) for name, x in zip(names, q)})
                   for (_, row), b, q, g in zip(chunk, best, p, given or p)], chunk[0][0])
        else:
            shown = [" ".join(" | ".join(texts).split()) for texts, _ in checked]
            said = [f"{q[0]:<{width}.4g}" if number else
                    ", ".join(f"{names[i]} {q[i]:.3f}" for i in g) or "(none)" if several else
                    f"{names[b]:<{width}}  {q[b]:.3f}" for b, q, g in zip(best, p, given or p)]
            tqdm.write("\n".join(f"{w}  {s[:70] + ('...' if len(s) > 70 else '')}" for w, s in zip(said, shown)),
                       file=sys.stdout)
    if rows_done == 0:
        fail("no texts given: pass them as arguments, with --file, or on standard input")
    for f in (writer if suffix == ".parquet" else None, out):
        if f:
            f.close()
    if output:
        os.replace(partial, output)
    finished = True
except OSError as e:  # reading errors were said by chunks(): this is the output (a full disk, a folder gone)
    fail(f"cannot write --output {output!r}: {e.strerror or e}")
except KeyboardInterrupt:
    print(f"\npredict.py: interrupted{'; nothing written' if output else ''}", file=sys.stderr)
    sys.exit(130)
finally:
    bar.close()
    if not finished and output:
        for f in (writer if suffix == ".parquet" else None, out):
            if f:
                f.close()
        if os.path.exists(partial):
            os.remove(partial)
seconds = time.time() - start
if show_progress:
    print(f"labelled {rows_done} rows in {seconds:.1f} s ({rows_done / seconds:.1f} rows/s) on {device} in "
          f"{'fp32' if precision == 'no' else precision}, {max_length} tokens, batches of {batch_size}"
          + (f"; written to {output}" if output else "")
          + (f" (train.py evaluated in {'fp32' if evaluated == 'no' else evaluated}: a near-tie may differ)"
             if (evaluated := facts.get("evaluated_in", precision)) != precision else ""), file=sys.stderr)

# -- a labelled input: the scores, as train.py computes them on its evaluation rows --------------------------
if scored:
    result = train.scores(confusion)
    report = {"rows": rows_done, "input": cfg.file, "label_column": label_column,
              **result, "per_class": train.per_class(confusion, names),
              "confusion_matrix": {"labels": names, "rows_true_columns_predicted": confusion.tolist()},
              "adapter": cfg.adapter_dir, "max_length": max_length,
              "mixed_precision": precision, "device": device}
    print(f"scored against column {label_column!r}, {rows_done} rows: accuracy {report['accuracy']:.4f}, "
          f"macro F1 {report['macro_f1']:.4f}")
    print(f"  {'class':<{width}}  precision  recall  f1      support")
    for name, s in report["per_class"].items():
        print(f"  {name:<{width}}  {s['precision']:<9.4f}  {s['recall']:<6.4f}  {s['f1']:<6.4f}  {s['support']}")
    print(f"  confusion matrix, rows true, columns predicted:\n  {'':<{width}}  "
          + "  ".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, confusion.tolist()):
        print(f"  {name:<{width}}  " + "  ".join(f"{n:>{width}}" for n in row))
    if output:
        with open(metrics_path + ".partial", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(metrics_path + ".partial", metrics_path)
        print(f"scores written to {metrics_path}")
elif output and os.path.exists(metrics_path):  # --overwrite, and the file replaced was scored: its scores are stale
    os.remove(metrics_path)
