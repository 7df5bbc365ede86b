"""Use an adapter that train.py wrote: label texts or files of any size, score a labelled file, export a merged model.

    python predict.py outputs/distilbert-imdb-lora/adapter "What a wonderful film." "Dull and far too long."
    python predict.py outputs/distilbert-imdb-lora/adapter --file reviews.txt     # one text per line
    cat reviews.txt | python predict.py outputs/distilbert-imdb-lora/adapter      # or standard input
    python predict.py outputs/distilbert-imdb-lora/adapter --file tickets.csv --output labelled.csv
    printf 'first\tsecond\n' | python predict.py outputs/pairs/adapter            # a pair: two tab-separated fields
    python predict.py outputs/distilbert-imdb-lora/adapter --merge outputs/merged # base + adapter in one model

Input: texts as arguments, a file (.txt: one text a line; .csv, .tsv, .jsonl, .parquet: the text in the column(s) the
adapter was trained on, read as train.py reads a data file) or standard input (one text a line). --output FILE
(.csv, .jsonl, .parquet) gets every input row, in order, with its columns, the predicted label, its probability
and one probability per class; without it, one line a text. Where the input has the label column, every row is
labelled, and the rows that have a label are also scored as train.py scores its evaluation rows (FILE.metrics.json;
--no_score: not scored). An adapter for several labels per text gives every label whose probability passes its
THRESHOLD (a list, one probability column per label); one for a number per text gives the number.
The model runs as train.py evaluated it: same tokenizing, MAX_LENGTH, batches, precision rule and head (one path,
textlora/inference.py). The base model named in adapter_config.json is loaded first (--base_model: a local copy).
"""
import argparse
import json
import os
import sys

from textlora import Refused, pooling, tables
from textlora.files import writable
from textlora.labels import REGRESSION, SINGLE, Codec


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir", help="the adapter/ folder of a train.py run")
    parser.add_argument("texts", nargs="*", help="texts to label (a pair adapter: two tab-separated fields each); "
                                                 "none: read --file or standard input")
    parser.add_argument("--file", help="input: .txt (one text a line), .csv, .tsv, .jsonl or .parquet")
    parser.add_argument("--output", help="write every input row with its predictions to this .csv, .jsonl or "
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


def main(argv=None):
    cfg = arguments(argv)
    facts, codec = read_adapter(cfg.adapter_dir)
    text_columns = check_arguments(cfg, facts)  # each bad flag one line, before anything is read or loaded
    if cfg.merge:
        return merge(cfg, facts, codec)
    from textlora import inputs, labelling, machine
    main_process = machine.rank_zero()  # under a launcher every process labels its share; rank 0 alone reads the
    with machine.this_machine_first():  # input for the checks (the others wait), writes, prints and scores
        # -- the input, checked whole before the model loads: a bad row is said now, not after an hour of labelling
        source = inputs.Input(cfg, text_columns, cfg.label_column or codec.columns, inputs.na_classes(codec))
        label_columns, scored = source.check_columns(cfg, codec)
        if main_process:
            source.check_rows(label_columns, codec, scored)

    # -- the model as train.py evaluated it: tokenizing, length, device, precision, batch size, head in fp32 ------
    labeller = labelling.Labeller(cfg, facts, codec, rows=source.rows, bar=main_process and source.counted(cfg.output))
    # -- label chunk by chunk, each process its share of each chunk; rank 0 writes the rows in the input's order --
    done = labelling.label_all(source, labeller, cfg.output if main_process else None, label_columns if scored else
                               None, show=main_process and not cfg.output)
    # -- what was done, and the scores of the rows that have a label, as train.py scores its evaluation rows ------
    if main_process:
        labelling.report(cfg, facts, codec, labeller, source, done, label_columns, scored)
    machine.leave_processes()


def check_arguments(cfg, facts):
    """The flags checked against each other, the adapter and the file system; the text columns to read."""
    from textlora.machine import processes
    trained_on = facts["text_column"]
    text_columns = cfg.text_column or trained_on
    if len(text_columns) > 2:
        raise Refused(f"--text_column takes one column, or two for a pair of texts; got {' '.join(text_columns)}")
    if cfg.text_column and len(cfg.text_column) != len(trained_on):
        raise Refused(f"this adapter was trained on {'pairs of texts' if len(trained_on) == 2 else 'single texts'} "
                      f"({' and '.join(trained_on)}); give --text_column {len(trained_on)} column(s)")
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
        if os.path.islink(cfg.merge.rstrip("/")):
            raise Refused(f"--merge: {cfg.merge!r} is a link; give a folder of its own for the model")
        writable(os.path.dirname(os.path.abspath(cfg.merge.rstrip("/"))), "--merge", cfg.merge)
        return text_columns
    if cfg.texts and cfg.file:
        raise Refused("give texts as arguments or --file, not both")
    if not (cfg.texts or cfg.file) and processes() > 1:
        raise Refused("under a launcher, give --file (or texts): standard input reaches one process, not all")
    if cfg.file:
        extension = os.path.splitext(cfg.file)[1].lower()
        if extension not in (".txt", *tables.FILES):
            raise Refused(f"--file {cfg.file!r}: unknown extension {extension or '(none)'}; give .txt (one text a "
                          f"line), .csv, .tsv, .jsonl or .parquet")
        if not os.path.isfile(cfg.file):
            raise Refused(f"cannot read --file {cfg.file!r}: "
                          f"{'it is a folder' if os.path.isdir(cfg.file) else 'no such file'}")
    if cfg.output:
        check_output(cfg)
    return text_columns


def check_output(cfg):
    """--output: a file of a kind predict.py writes, not the input, in a writable folder, never replaced unasked."""
    output = cfg.output
    if os.path.splitext(output)[1].lower() not in tables.WRITES:
        raise Refused(f"--output {output!r}: unknown extension; give .csv, .jsonl or .parquet")
    if os.path.isdir(output):
        raise Refused(f"--output {output!r} is a folder; give a file name")
    if cfg.file and os.path.exists(output) and os.path.samefile(cfg.file, output):
        raise Refused(f"--output {output!r} is the input file; write to another file")
    for path in (output, output + ".metrics.json", output + ".label_issues.csv"):  # never removed without --overwrite
        if os.path.exists(path) and not cfg.overwrite:
            raise Refused(f"--output: {path!r} already exists; pass --overwrite to replace it, or choose another "
                          f"--output")
    writable(os.path.dirname(os.path.abspath(output)), "--output", output)


def merge(cfg, facts, codec):
    """Fold the LoRA matrices into the base weights and save like any transformers model, written beside OUT_DIR and
    renamed, so that a kill leaves no half model."""
    import shutil

    from textlora import models
    from textlora.labelling import load
    if facts.get("long_texts") == "windows":  # a standalone model reads one window; this adapter averages them
        raise Refused("--merge: this adapter was trained with --long_texts windows, which a merged model cannot carry "
                      "(it reads one window of a text); label with predict.py, which reads every window")
    if facts.get("pooling") == pooling.MEAN:  # transformers' architectures read the first token
        raise Refused("--merge: this adapter's head reads the mean of a text's tokens (the few-row recipe), which a "
                      "merged model cannot carry (its head would read the first token); label with predict.py")
    if facts.get("long_texts") == "head_tail":
        print("predict.py: this adapter read long texts by their first and last tokens; the merged model cuts them at "
              "MAX_LENGTH, as transformers' pipeline does", file=sys.stderr)
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
    from textlora import machine
    with machine.no_teardown_under_a_launcher():
        try:
            main()
        except Refused as e:
            fail(str(e))
        except KeyboardInterrupt:  # while the input is checked or the model loads (labelling's own Ctrl-C says more)
            print("\npredict.py: interrupted; nothing written", file=sys.stderr)
            sys.exit(130)
