"""Use an adapter that train.py wrote: label texts or files of any size, score a labelled file, export a merged model.

    python predict.py outputs/distilbert-imdb-lora/adapter "What a wonderful film." "Dull and far too long."
    python predict.py outputs/distilbert-imdb-lora/adapter --file reviews.txt     # one text per line
    cat reviews.txt | python predict.py outputs/distilbert-imdb-lora/adapter      # or standard input
    python predict.py outputs/distilbert-imdb-lora/adapter --file tickets.csv --output labelled.csv
    printf 'first\tsecond\n' | python predict.py outputs/pairs/adapter            # a pair: two tab-separated fields
    python predict.py outputs/distilbert-imdb-lora/adapter --merge outputs/merged # base + adapter in one model

Input: texts as arguments, a file (.txt: one text a line; .csv, .tsv, .jsonl, .parquet: the text in the column(s) the
adapter was trained on, read as train.py reads a data file) or standard input (one text a line). --output FILE
(.csv, .tsv, .jsonl, .parquet) gets every input row, in order, with its columns, the predicted label, its probability and
one probability per class; without it, one line a text. Where the input has the label column, every row is
labelled, and the rows that have a label are also scored as train.py scores its evaluation rows (FILE.metrics.json;
--no_score: not scored). An adapter for several labels per text gives every label whose probability passes its
THRESHOLD (a list, one probability column per label); one for a number per text gives the number.
The model runs as train.py evaluated it: same tokenizing, MAX_LENGTH, batches, precision rule and head (one path,
textlora/inference.py). The base model named in adapter_config.json is loaded first (--base_model: a local copy).
"""
import argparse
import io
import itertools
import json
import os
import signal
import sys
import time
import warnings

from textlora import Refused, tables
from textlora.hub import go_offline_without_hub
from textlora.labels import MULTI, REGRESSION, SINGLE, Codec

CHUNK = 2048  # rows read, labelled and written at a time: memory does not grow with the number of rows


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir", help="the adapter/ folder of a train.py run")
    parser.add_argument("texts", nargs="*", help="texts to label (a pair adapter: two tab-separated fields each); "
                                                 "none: read --file or standard input")
    parser.add_argument("--file", help="input: .txt (one text a line), .csv, .tsv, .jsonl or .parquet")
    parser.add_argument("--output", help="write every input row with its predictions to this .csv, .tsv, .jsonl or "
                                         ".parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output (and its "
                                                                  ".metrics.json)")
    parser.add_argument("--text_column", nargs="+", help="column(s) holding the text, two for a pair; default: "
                                                         "those the adapter was trained on")
    parser.add_argument("--label_column", nargs="+", help="column(s) holding the true labels, to score the rows "
                                                          "that have one; default: the adapter's, where the input "
                                                          "has it")
    parser.add_argument("--no_score", action="store_true", help="label every row, score none")
    parser.add_argument("--base_model", help="base model to load instead of the one in adapter_config.json")
    parser.add_argument("--merge", metavar="OUT_DIR", help="write base + adapter as one standalone model to OUT_DIR")
    parser.add_argument("--batch_size", type=int, help="default: train.py's evaluation batch size on this machine")
    parser.add_argument("--max_length", type=int, help="tokens per text; default: the adapter's MAX_LENGTH")
    parser.add_argument("--mixed_precision", choices=["auto", "bf16", "fp16", "no"],
                        help="default: the adapter's MIXED_PRECISION, chosen for this machine as train.py does")
    parser.add_argument("--trust_remote_code", action="store_true")
    return parser.parse_intermixed_args(argv)  # texts before or after the options


def read_adapter(adapter_dir):
    """What the adapter was trained on: training.json (columns, length, precision) and its label codec."""
    if not os.path.isfile(os.path.join(adapter_dir, "adapter_config.json")):
        raise Refused(f"{adapter_dir!r} is not an adapter folder (no adapter_config.json); train.py writes one to "
                      f"OUTPUT_DIR/adapter")
    facts_path = os.path.join(adapter_dir, "training.json")
    if not os.path.exists(facts_path):  # what it records (the kind of labels, the length, the padding) is not guessed
        raise Refused(f"{adapter_dir!r} has no training.json, which records how the adapter reads its texts and "
                      f"labels (columns, kind of labels, length, temperature, padding); train it again with this "
                      f"train.py")
    try:
        with open(facts_path, encoding="utf-8") as f:
            facts = json.load(f)
        assert isinstance(facts, dict) and {"text_column", "label_column", "max_length"} <= set(facts)
    except (OSError, ValueError, AssertionError):
        raise Refused(f"{facts_path!r} is not the training.json that train.py writes") from None
    problem = facts.get("problem_type", SINGLE)
    columns = facts["label_column"] if isinstance(facts["label_column"], list) else [facts["label_column"]]
    codec = Codec.from_json(facts["label_codec"]) if "label_codec" in facts else Codec(
        problem, columns, "string" if problem != REGRESSION else "number", facts["labels"], facts["labels"])
    return facts, codec


class Input:
    """Where the texts come from: arguments, standard input, a .txt file (one text a line) or a table, read with
    train.py's reader (textlora/tables.py). chunks() gives CHUNK rows at a time as a pyarrow table."""

    def __init__(self, cfg, text_columns, label_columns, na_classes=()):
        self.cfg, self.text_columns = cfg, text_columns
        self.kind = "arguments" if cfg.texts else os.path.splitext(cfg.file)[1].lower() if cfg.file else "stdin"
        self.table = self.kind in tables.FILES
        self.rows = None  # how many, where known before labelling
        if self.table:
            import datasets
            datasets.disable_progress_bars()
            try:
                self.data = tables.read(cfg.file, [*text_columns, *label_columns], values=na_classes)["train"]
            except Exception as e:  # pyarrow, pandas and datasets each raise their own type for a bad file
                raise Refused(f"cannot read {cfg.file!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            self.columns, self.rows = self.data.column_names, len(self.data)
            # a CSV's label cells are parsed to be scored (as train.py parses them) and written back as they were:
            # the same reader, with only the text columns parsed, gives the rows to write
            self.written = tables.read(cfg.file, text_columns)["train"] \
                if self.kind in tables.SEPARATED and set(label_columns) & set(self.columns) else self.data
            # a JSONL field of several types (a number here, text there): datasets keeps it as JSON text
            self.json_columns = [c for c, f in self.written.features.items() if type(f).__name__ == "Json"]
            self.schema = self.written.features.arrow_schema.remove_metadata()
        else:
            import pyarrow as pa
            self.columns, self.json_columns = list(text_columns), []
            self.schema = pa.schema([(c, pa.string()) for c in text_columns])

    def lines(self):
        """Each line a text (a pair: two tab-separated fields), split on "\\n" alone (a form feed or a Unicode line
        separator stays in its text)."""
        lines = self.cfg.texts if self.kind == "arguments" else open(self.cfg.file, encoding="utf-8-sig",
                                                                     newline="\n") \
            if self.cfg.file else io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="\n")
        n = 0  # the lines read whole before the bytes that are not UTF-8 (decoded a block at a time: perhaps more)
        try:
            for n, line in enumerate(lines, 1):
                line = line.removesuffix("\n").removesuffix("\r") if self.kind != "arguments" else line
                fields = line.split("\t", 1) if len(self.text_columns) == 2 else [line]
                if len(fields) < len(self.text_columns):
                    raise Refused(f"{self.where(n)} is not a pair: this adapter was trained on pairs of texts "
                                  f"({' and '.join(self.text_columns)}); give two tab-separated fields")
                yield fields
        except UnicodeDecodeError as e:
            raise Refused(f"{repr(self.cfg.file) if self.cfg.file else 'standard input'} is not UTF-8 text "
                          f"({e.reason}, after line {n}); save it as UTF-8") from None

    def where(self, n):
        """Row n (from 1) as messages name it."""
        return f"row {n}" if self.table else f"{'text' if self.kind == 'arguments' else 'line'} {n}"

    def chunks(self):
        """(rows as read for the model and the scores, the same rows as they are written back)."""
        import pyarrow as pa
        if self.table:
            yield from zip(self.data.with_format("arrow").iter(batch_size=CHUNK),
                           self.written.with_format("arrow").iter(batch_size=CHUNK))
            return
        lines = self.lines()
        while chunk := list(itertools.islice(lines, CHUNK)):
            table = pa.table({c: [fields[i] for fields in chunk] for i, c in enumerate(self.text_columns)})
            yield table, table


def check_texts(table, text_columns, where, first):
    """Each row's text(s): a string that is not blank, else one line naming the row."""
    import pyarrow.compute as pc
    for column in text_columns:
        cells = table[column]
        if not str(cells.type).endswith("string") and not pc.all(pc.is_null(cells)).as_py():
            raise Refused(f"column {column!r} holds {cells.type}, not text")
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(cells.cast("string")), ""), True)
        if pc.any(blank).as_py():
            n = first + pc.index(blank, True).as_py()
            raise Refused(f"{where(n)} has an empty text{f' in column {column!r}' if where(n).startswith('row') else ''}"
                          f": every row needs one (remove the row or fill it in)")


def targets(table, label_columns, codec, where, first):
    """Each row's label as train.py's loss took it (None: no label, a row only to label); one line for a label that
    is no class of the adapter."""
    cells = [table[c].to_pylist() for c in label_columns]
    result = []
    for n, row in enumerate(zip(*cells), first):
        try:
            result.append(codec.encode(list(row)))
        except ValueError as e:
            raise Refused(f"{where(n)}: {e} (column {' '.join(label_columns)})") from None
    return result


def main(argv=None):
    cfg = arguments(argv)
    facts, codec = read_adapter(cfg.adapter_dir)
    names, problem = codec.names, codec.problem
    text_columns = cfg.text_column or facts["text_column"]
    if len(text_columns) > 2:
        raise Refused(f"--text_column takes one column, or two for a pair of texts; got {' '.join(text_columns)}")
    if cfg.text_column and len(cfg.text_column) != len(facts["text_column"]):
        raise Refused(f"this adapter was trained on {'pairs of texts' if len(facts['text_column']) == 2 else 'single texts'} "
                      f"({' and '.join(facts['text_column'])}); give --text_column {len(facts['text_column'])} column(s)")
    for flag in ("batch_size", "max_length"):
        if getattr(cfg, flag) is not None and getattr(cfg, flag) <= 0:
            raise Refused(f"--{flag} must be at least 1, got {getattr(cfg, flag)}")
    if cfg.merge:
        if cfg.output or cfg.texts or cfg.file:
            raise Refused("--merge writes a model and labels nothing; run it without texts, --file or --output")
        if os.path.exists(cfg.merge) and not os.path.isdir(cfg.merge):
            raise Refused(f"--merge: {cfg.merge!r} is a file; give a folder for the model")
        if os.path.isdir(cfg.merge) and os.listdir(cfg.merge):
            raise Refused(f"--merge: {cfg.merge!r} already exists and is not empty")
        return merge(cfg, facts, codec)
    if cfg.texts and cfg.file:
        raise Refused("give texts as arguments or --file, not both")
    if cfg.file:
        extension = os.path.splitext(cfg.file)[1].lower()
        if extension not in (".txt", *tables.FILES):
            raise Refused(f"--file {cfg.file!r}: unknown extension {extension or '(none)'}; give .txt (one text a "
                          f"line), .csv, .tsv, .jsonl or .parquet")
        if not os.path.isfile(cfg.file):
            raise Refused(f"cannot read --file {cfg.file!r}: "
                          f"{'it is a folder' if os.path.isdir(cfg.file) else 'no such file'}")
    output, metrics_path = cfg.output, cfg.output and cfg.output + ".metrics.json"
    if output:
        if os.path.splitext(output)[1].lower() not in tables.WRITES:
            raise Refused(f"--output {output!r}: unknown extension; give .csv, .tsv, .jsonl or .parquet")
        if os.path.isdir(output):
            raise Refused(f"--output {output!r} is a folder; give a file name")
        if cfg.file and os.path.exists(output) and os.path.samefile(cfg.file, output):
            raise Refused(f"--output {output!r} is the input file; write to another file")
        for path in (output, metrics_path):  # without --overwrite nothing there is ever removed
            if os.path.exists(path) and not cfg.overwrite:
                raise Refused(f"--output: {path!r} already exists; pass --overwrite to replace it, or choose another "
                              f"--output")
        parent = os.path.dirname(os.path.abspath(output))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise Refused(f"--output {output!r} cannot be written ({parent!r} is not a writable folder)")

    # -- the input, checked whole before the model loads: a bad row is said now, not after an hour of labelling ----
    # an adapter's class spelled as pandas spells a missing value (None, NA) is that class in a CSV too (the
    # adapter learned it from a JSONL or Parquet file, where it is text); only an empty cell is no label there
    na_classes = [str(v) for v in codec.values + codec.names if str(v) in tables.NA_SPELLINGS and str(v)] \
        if codec.problem != REGRESSION and codec.kind != "columns" else []
    source = Input(cfg, text_columns, cfg.label_column or codec.columns, na_classes)
    if cfg.label_column and not source.table:
        raise Refused("--label_column needs a table (.csv, .tsv, .jsonl or .parquet); lines of text have no label column")
    for column in (*text_columns, *(cfg.label_column or [])):
        if source.table and column not in source.columns:
            raise Refused(f"{cfg.file!r} has no column {column!r} (it has {', '.join(map(str, source.columns))}); "
                          f"set {'--label_column' if column in (cfg.label_column or []) else '--text_column'}")
    label_columns = cfg.label_column or codec.columns
    if len(label_columns) != len(codec.columns):
        raise Refused(f"--label_column: this adapter's labels are in {len(codec.columns)} column(s) "
                      f"({' '.join(codec.columns)}); give as many")
    scored = source.table and not cfg.no_score and all(c in source.columns for c in label_columns)
    added = ["predicted"] + (["probability"] if problem == SINGLE else []) + \
        ([] if problem == REGRESSION else [f"probability_{name}" for name in names])
    if clash := [c for c in added if c in source.columns]:
        raise Refused(f"the input already has a column {clash[0]!r}, which the output adds; rename it")
    labelled = 0
    if source.table:
        first = 1
        for chunk, _ in source.chunks():
            check_texts(chunk, text_columns, source.where, first)
            if scored:
                labelled += sum(t is not None for t in targets(chunk, label_columns, codec, source.where, first))
            first += len(chunk)
        if source.rows == 0:
            raise Refused(f"{cfg.file!r} holds no rows")
    elif source.kind in ("arguments", ".txt"):
        import pyarrow as pa
        n = 0
        for fields in source.lines():
            n += 1
            check_texts(pa.table({c: [f] for c, f in zip(text_columns, fields)}), text_columns,
                        lambda _: source.where(n), 1)
        source.rows = n
        if n == 0:
            raise Refused(f"{cfg.file!r} holds no rows" if cfg.file else "no texts given")

    # -- the model as train.py evaluated it: device, precision, batch size, head in fp32 ------------------------
    model, tokenizer, base_name = load(cfg, facts, codec)
    import numpy as np
    import pyarrow as pa
    from tqdm import tqdm
    from transformers import TrainerCallback

    import train  # its tokenize(): texts become tokens as in training
    from textlora import inference, machine, models
    max_length = models.within_reach(cfg.max_length or facts["max_length"], model.config, tokenizer)
    device = machine.device_type()
    precision, _ = machine.choose_precision(cfg.mixed_precision or facts["mixed_precision"], device, main_process=True)
    model.to(device)
    pad_to = inference.fit_to_the_chip(model, device, precision)
    model.requires_grad_(False)
    batch_size = cfg.batch_size or machine.eval_batch_size(device, precision)
    predictor = inference.predictor(model, tokenizer, device, precision, batch_size, max_length, pad_to)
    show_progress = source.kind != "arguments" and (source.kind != "stdin" or bool(output))
    bar = tqdm(total=source.rows, unit=" rows", file=sys.stderr, dynamic_ncols=True, mininterval=1,
               disable=not show_progress)

    class Progress(TrainerCallback):  # the bar moves by batch, not by chunk
        def on_prediction_step(self, args, state, control, **kwargs):
            bar.update(min(batch_size, bar.total - bar.n) if bar.total else batch_size)
    predictor.add_callback(Progress())

    threshold = facts.get("thresholds") or facts.get("threshold") or 0.5  # per label where train.py chose them
    # fitted on held-out rows, so that the probabilities mean what they say (a number per text has none)
    temperature = facts.get("temperature", 1.0) if problem != REGRESSION else 1.0
    if problem == REGRESSION:
        new_fields = [pa.field("predicted", pa.float64())]
    else:
        new_fields = [pa.field("predicted", pa.list_(pa.string()) if problem == MULTI else pa.string())] + \
            ([pa.field("probability", pa.float64())] if problem == SINGLE else []) + \
            [pa.field(f"probability_{name}", pa.float64()) for name in names]
    writer = tables.Writer(output, pa.schema(list(source.schema) + new_fields), source.json_columns) \
        if output else None
    import datasets
    from datasets import Dataset
    datasets.disable_progress_bars()
    true, said = [], []
    rows_done, start, first = 0, time.time(), 1
    width = max(8, *map(len, names))
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)  # a scheduler's stop cleans up as Ctrl-C does
    try:
        for chunk, as_written in source.chunks():
            if source.kind == "stdin":
                check_texts(chunk, text_columns, source.where, first)
            texts = Dataset(chunk.select(text_columns)).rename_columns(
                dict(zip(text_columns, ["text", "text_pair"])))
            tokens = texts.map(train.tokenize, batched=True, remove_columns=texts.column_names,
                               fn_kwargs={"tokenizer": tokenizer, "max_length": max_length})
            logits = inference.logits_of(predictor, tokens) / temperature  # no class changes: the same argmax
            p = inference.probabilities(logits, problem)
            decided = inference.decided(logits, problem, threshold)
            if scored:
                for t, q in zip(targets(chunk, label_columns, codec, source.where, first), logits):
                    if t is not None:
                        true.append(t)
                        said.append(q)
            rows_done += len(chunk)
            first += len(chunk)
            if writer:
                columns = {"predicted": decided.tolist() if problem == REGRESSION else
                           [[names[i] for i in np.flatnonzero(d)] for d in decided] if problem == MULTI else
                           [names[i] for i in decided]}
                if problem == SINGLE:
                    columns["probability"] = p.max(-1).round(6).tolist()
                if problem != REGRESSION:
                    columns |= {f"probability_{name}": p[:, i].round(6).tolist() for i, name in enumerate(names)}
                for field in new_fields:
                    as_written = as_written.append_column(field, pa.array(columns[field.name], field.type))
                writer.write(as_written)
            else:
                shown = [" ".join(" | ".join(t).split()) for t in zip(*(chunk[c].to_pylist() for c in text_columns))]
                lines = [f"{q[0]:<{width}.4g}" if problem == REGRESSION else
                         ", ".join(f"{names[i]} {q[i]:.3f}" for i in np.flatnonzero(d)) or "(none)"
                         if problem == MULTI else f"{names[d]:<{width}}  {q[d]:.3f}" for d, q in zip(decided, p)]
                tqdm.write("\n".join(f"{w}  {s[:70] + ('...' if len(s) > 70 else '')}" for w, s in zip(lines, shown)),
                           file=sys.stdout)
        if rows_done == 0:
            raise Refused("no texts given: pass them as arguments, with --file, or on standard input")
        if writer:
            writer.close()
            writer = None
    except OSError as e:
        raise Refused(f"cannot write --output {output!r}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        bar.close()
        print(f"\npredict.py: interrupted{'; nothing written' if output else ''}", file=sys.stderr)
        sys.exit(130)
    finally:
        bar.close()
        if writer:
            writer.discard()
        # main() called from a program leaves its handler as it was (None: one not set from Python, the default)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
    seconds = time.time() - start
    if show_progress:
        evaluated = facts.get("evaluated_in", precision)
        print(f"labelled {rows_done} rows in {seconds:.1f} s ({rows_done / seconds:.1f} rows/s) on {device} in "
              f"{'fp32' if precision == 'no' else precision}, {max_length} tokens, batches of {batch_size}"
              + (f"; written to {output}" if output else "")
              + (f" (train.py evaluated in {'fp32' if evaluated == 'no' else evaluated}: a near-tie may differ)"
                 if evaluated != precision else ""), file=sys.stderr)
    if source.table and not scored and not cfg.no_score:
        print(f"predict.py: not scored: {cfg.file!r} has no label column {' '.join(label_columns)!r} "
              f"(--label_column names it)", file=sys.stderr)
    if scored:
        report_scores(cfg, facts, codec, codec.as_array(true), np.asarray(said).reshape(len(said), -1), rows_done,
                      label_columns, max_length, precision, device, width, metrics_path)
    elif output and os.path.exists(metrics_path):  # --overwrite: the scores of the output replaced are stale
        os.remove(metrics_path)


def report_scores(cfg, facts, codec, true, logits, rows, label_columns, max_length, precision, device, width, path):
    """The scored rows' scores, computed by train.py's own scorer (as on its evaluation rows)."""
    from transformers import EvalPrediction

    from textlora import files, reports, scores
    names, problem = codec.names, codec.problem
    if len(true) == 0:
        print(f"not scored: none of the {rows} rows has a label in column {' '.join(label_columns)!r}")
        return
    scorer = scores.Scores(problem, names, facts.get("thresholds") or facts.get("threshold") or 0.5)
    said = scorer(EvalPrediction(predictions=logits, label_ids=true))
    report = {"rows": rows, "scored_rows": len(true), "input": cfg.file, "label_column": label_columns,
              "problem_type": problem, **said, **scorer.report(), "adapter": cfg.adapter_dir,
              "max_length": max_length, "mixed_precision": precision, "device": device}
    headline = reports.headline_text({**{f"eval_{k}": v for k, v in said.items()}, "problem_type": problem,
                                    "labels": names})
    print(f"scored {len(true)} of {rows} rows (those with a label in column {' '.join(label_columns)!r}): {headline}")
    if problem == SINGLE:
        print(f"  {'class':<{width}}  precision  recall  f1      support")
        for name, s in report["per_class"].items():
            print(f"  {name:<{width}}  {s['precision']:<9.4f}  {s['recall']:<6.4f}  {s['f1']:<6.4f}  {s['support']}")
        print(f"  confusion matrix, rows true, columns predicted:\n  {'':<{width}}  "
              + "  ".join(f"{name:>{width}}" for name in names))
        for name, row in zip(names, report["confusion_matrix"]["rows_true_columns_predicted"]):
            print(f"  {name:<{width}}  " + "  ".join(f"{n:>{width}}" for n in row))
    if path:
        files.write_atomically(path, lambda to: files.write_text(to, json.dumps(report, indent=2)))
        print(f"scores written to {path}")


def load(cfg, facts, codec):
    """The base model in fp32 with the adapter's head and LoRA matrices, and the adapter's tokenizer."""
    with open(os.path.join(cfg.adapter_dir, "adapter_config.json"), encoding="utf-8") as f:
        base_name = cfg.base_model or json.load(f)["base_model_name_or_path"]
    from textlora.settings import is_local
    if cfg.base_model and is_local(cfg.base_model) and not os.path.exists(cfg.base_model):
        raise Refused(f"--base_model {cfg.base_model!r} does not exist; give the folder of the base model the adapter "
                      f"was trained from, or its Hub name")
    if not os.path.isdir(base_name):
        go_offline_without_hub()  # train.py's probe: offline within seconds, not after a minute of retries
    from peft import PeftModel
    from transformers import AutoTokenizer
    from transformers import logging as transformers_logging

    from textlora import inference
    transformers_logging.set_verbosity_error()  # the fresh head's "newly initialized" warning: the adapter replaces it
    transformers_logging.disable_progress_bar()  # stderr keeps one bar, the rows'
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing")  # peft asks transformers 5 a deprecated name
    names = codec.names
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.adapter_dir)
        # the adapter's head has one output per class; the base model's saved head may have another number
        base = inference.load_model(
            base_name, trust_remote_code=cfg.trust_remote_code, num_labels=len(names),
            id2label=dict(enumerate(names)), label2id={v: k for k, v in enumerate(names)},
            ignore_mismatched_sizes=True, problem_type=codec.problem,
            # a decoder's classifier reads the last token before the padding: train.py gave it the padding token
            **({"pad_token_id": facts["pad_token_id"]} if facts.get("pad_token_id") is not None else {}))
        # trainable, as in training: fit_to_the_chip then casts the frozen weights alone, as train.py's did
        model = PeftModel.from_pretrained(base, cfg.adapter_dir, is_trainable=not cfg.merge).eval()
    except KeyError as e:  # peft finds no layer of the adapter's name in the base model
        raise Refused(f"cannot load this adapter onto base model {base_name!r}: it has no layer {e.args[0]!r} of the "
                      f"adapter's; give --base_model the model the adapter was trained from") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise Refused(f"cannot load base model {base_name!r} with this adapter ({str(e).splitlines()[0]}); "
                      f"set --base_model to a local copy") from None
    return model, tokenizer, base_name


def merge(cfg, facts, codec):
    """Fold the LoRA matrices into the base weights and save like any transformers model, written beside OUT_DIR and
    renamed, so that a kill leaves no half model."""
    import shutil

    from textlora import models
    model, tokenizer, _ = load(cfg, facts, codec)
    max_length = models.within_reach(cfg.max_length or facts["max_length"], model.config, tokenizer)
    import tempfile
    parent = os.path.dirname(os.path.abspath(cfg.merge.rstrip("/")))
    os.makedirs(parent, exist_ok=True)
    # a folder of its own beside OUT_DIR, renamed at the end (never a folder of the user's, such as OUT_DIR.partial)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(cfg.merge.rstrip('/'))}.", suffix=".partial")
    merged = model.merge_and_unload()
    if (t := facts.get("temperature", 1.0)) != 1.0 and codec.problem != REGRESSION:
        import torch  # the output layer divided by the temperature: the merged model's probabilities are predict.py's
        last = [m for m in merged.modules() if isinstance(m, torch.nn.Linear) and m.out_features == len(codec.names)]
        with torch.no_grad():
            last[-1].weight /= t
            if last[-1].bias is not None:
                last[-1].bias /= t
    merged.save_pretrained(tmp)  # safetensors, config.json with the label names
    tokenizer.model_max_length = max_length  # pipeline(..., truncation=True) then cuts where training did
    tokenizer.save_pretrained(tmp)
    try:
        if os.path.isdir(cfg.merge):
            os.rmdir(cfg.merge)  # empty, checked above
        os.replace(tmp, cfg.merge)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only where the rename did not happen: ours
    print(f"merged model written to {cfg.merge}/; load it with\n"
          f"  AutoModelForSequenceClassification.from_pretrained(\"{cfg.merge}\")")


def fail(message):
    """Bad input: one line on stderr and exit status 2, with nothing written."""
    print(f"predict.py: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    try:
        main()
    except Refused as e:
        fail(str(e))
    except KeyboardInterrupt:  # while the input is checked or the model loads (labelling's own Ctrl-C says more)
        print("\npredict.py: interrupted; nothing written", file=sys.stderr)
        sys.exit(130)
