"""predict.py's labelling: the adapter loaded onto its base model as train.py evaluated it, rows labelled a chunk at
a time through the one inference path (textlora/inference.py), the output written in the input's order, and the
scores of the rows that have a label. Under a launcher every process labels its share of each chunk (the Trainer's
prediction loop splits its batches across the processes and gathers the logits in order: accelerate's own way) and
rank 0 alone writes and prints."""
import json
import os
import signal
import sys
import time
import warnings

from . import Refused, tables
from .hub import go_offline_without_hub
from .labels import MULTI, REGRESSION, SINGLE


class Labeller:
    """The model as train.py evaluated it: its tokenizing, MAX_LENGTH, device (a process's own GPU under a launcher),
    precision rule, batch size and head in fp32; the temperature and thresholds it fitted. Logits for a chunk of rows
    (a pyarrow table), computed by every process together."""

    def __init__(self, cfg, facts, codec, rows, bar):
        from tqdm import tqdm
        from transformers import TrainerCallback

        from . import inference, machine, models
        self.codec, self.text_columns = codec, None
        self.model, self.tokenizer, _ = load(cfg, facts, codec)
        self.max_length = models.within_reach(cfg.max_length or facts["max_length"], self.model.config,
                                              self.tokenizer)
        self.device = machine.device_type()
        self.precision, _ = machine.choose_precision(cfg.mixed_precision or facts["mixed_precision"], self.device,
                                                     main_process=machine.rank_zero())  # it measures for all
        self.model.to(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if self.device == "cuda" else self.device)
        pad_to = inference.fit_to_the_chip(self.model, self.device, self.precision)
        self.model.requires_grad_(False)
        self.batch_size = cfg.batch_size or machine.eval_batch_size(self.device, self.precision)
        self.predictor = inference.predictor(self.model, self.tokenizer, self.device, self.precision, self.batch_size,
                                             self.max_length, pad_to)
        self.bar = tqdm(total=rows, unit=" rows", file=sys.stderr, dynamic_ncols=True, mininterval=1, disable=not bar)
        step = self.batch_size * machine.processes()  # rows a prediction step takes, over all processes
        labeller = self

        self.texts_per_row, done = 1.0, [0.0]

        class Progress(TrainerCallback):  # the bar moves by batch, not by chunk, and counts texts
            def on_prediction_step(self, args, state, control, **kwargs):
                bar = labeller.bar
                done[0] += step * labeller.texts_per_row
                moved = int(done[0]) - bar.n
                bar.update(min(moved, bar.total - bar.n) if bar.total else moved)
        self.predictor.add_callback(Progress())
        self.threshold = facts.get("thresholds") or facts.get("threshold") or 0.5  # per label where train.py chose
        # fitted on held-out rows, so that the probabilities mean what they say (a number per text has none)
        self.temperature = facts.get("temperature", 1.0) if codec.problem != REGRESSION else 1.0
        self.evaluated_in = facts.get("evaluated_in", self.precision)
        # what training did with a text longer than max_length (adapters before LONG_TEXTS: cut)
        self.long_texts, self.stride = facts.get("long_texts", "truncate"), facts.get("stride") or 0
        if self.long_texts == "windows" and self.stride >= self.max_length - self.tokenizer.num_special_tokens_to_add():
            print(f"predict.py: --max_length {self.max_length} leaves no room for the adapter's stride of "
                  f"{self.stride} tokens: windows share {self.max_length // 4}", file=sys.stderr)
            self.stride = self.max_length // 4

    def logits(self, chunk, text_columns):
        """The chunk's logits over the temperature (no class changes: the same argmax), in the chunk's order."""
        from datasets import Dataset

        import train  # its tokenize(): texts become tokens as in training

        from . import inference
        texts = Dataset(chunk.select(text_columns)).rename_columns(dict(zip(text_columns, ["text", "text_pair"])))
        tokens = inference.tokenized(texts, train.tokenize, self.tokenizer, self.max_length, self.long_texts,
                                     self.stride, "chunk")
        self.texts_per_row = len(texts) / len(tokens)  # the bar counts texts, a long one's windows as one
        return inference.logits_of(self.predictor, tokens) / self.temperature


def new_fields(codec):
    """The output's added columns as pyarrow fields: the prediction, its probability, one probability per class."""
    import pyarrow as pa
    if codec.problem == REGRESSION:
        return [pa.field("predicted", pa.float64())]
    return [pa.field("predicted", pa.list_(pa.string()) if codec.problem == MULTI else pa.string())] + \
        ([pa.field("probability", pa.float64())] if codec.problem == SINGLE else []) + \
        [pa.field(f"probability_{name}", pa.float64()) for name in codec.names]


def with_predictions(rows, logits, codec, threshold):
    """The rows as written back, with the added columns."""
    import numpy as np
    import pyarrow as pa

    from .inference import decided, probabilities
    names, problem = codec.names, codec.problem
    p, said = probabilities(logits, problem), decided(logits, problem, threshold)
    columns = {"predicted": said.tolist() if problem == REGRESSION else
               [[names[i] for i in np.flatnonzero(d)] for d in said] if problem == MULTI else [names[i] for i in said]}
    if problem == SINGLE:
        columns["probability"] = p.max(-1).round(6).tolist()
    if problem != REGRESSION:
        columns |= {f"probability_{name}": p[:, i].round(6).tolist() for i, name in enumerate(names)}
    for field in new_fields(codec):
        rows = rows.append_column(field, pa.array(columns[field.name], field.type))
    return rows


def as_lines(chunk, logits, codec, threshold, text_columns):
    """One line a text, without --output: the label(s) and probability, then the text, shortened."""
    import numpy as np

    from .inference import decided, probabilities
    names, problem = codec.names, codec.problem
    width = max(8, *map(len, names))
    p, said = probabilities(logits, problem), decided(logits, problem, threshold)
    shown = [" ".join(" | ".join(t).split()) for t in zip(*(chunk[c].to_pylist() for c in text_columns))]
    lines = [f"{q[0]:<{width}.4g}" if problem == REGRESSION else
             ", ".join(f"{names[i]} {q[i]:.3f}" for i in np.flatnonzero(d)) or "(none)"
             if problem == MULTI else f"{names[d]:<{width}}  {q[d]:.3f}" for d, q in zip(said, p)]
    return "\n".join(f"{w}  {s[:70] + ('...' if len(s) > 70 else '')}" for w, s in zip(lines, shown))


def label_all(source, labeller, output, label_columns, show):
    """Every chunk labelled by every process; written to `output` (rank 0: the others give None) or, with `show`,
    printed a line a text. label_columns: where the rows are scored, their labels are kept beside the logits.
    Returns the rows done, the seconds, and the scored rows' labels, logits and positions (data rows from 0).
    Ctrl-C or SIGTERM leaves no output."""
    import pyarrow as pa
    from tqdm import tqdm

    from .inputs import check_texts, targets
    writer = tables.Writer(output, pa.schema(list(source.schema) + new_fields(labeller.codec)),
                           source.json_columns) if output else None
    true, said, at, rows_done, start, first = [], [], [], 0, time.time(), 1
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)  # a scheduler's stop cleans up as Ctrl-C does
    try:
        for chunk, as_written in source.chunks():
            if source.kind == "stdin":
                check_texts(chunk, source.text_columns, source.where, first)
            logits = labeller.logits(chunk, source.text_columns)
            if label_columns:
                for n, (t, q) in enumerate(zip(targets(chunk, label_columns, labeller.codec, source.where, first),
                                               logits), first - 1):
                    if t is not None:
                        true.append(t)
                        said.append(q)
                        at.append(n)
            rows_done += len(chunk)
            first += len(chunk)
            if writer:
                writer.write(with_predictions(as_written, logits, labeller.codec, labeller.threshold))
            elif show:
                tqdm.write(as_lines(chunk, logits, labeller.codec, labeller.threshold, source.text_columns),
                           file=sys.stdout)
        if rows_done == 0:
            raise Refused("no texts given: pass them as arguments, with --file, or on standard input")
        if writer:
            writer.close()
            writer = None
    except OSError as e:
        raise Refused(f"cannot write --output {output!r}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        labeller.bar.close()
        print(f"\npredict.py: interrupted{'; nothing written' if output else ''}", file=sys.stderr)
        sys.exit(130)
    finally:
        labeller.bar.close()
        if writer:
            writer.discard()
        # main() called from a program leaves its handler as it was (None: one not set from Python, the default)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
    return rows_done, time.time() - start, true, said, at


def report(cfg, facts, codec, labeller, source, done, label_columns, scored):
    """Rank 0, after labelling: the rows done and how, then the scores (or why there are none)."""
    import numpy as np

    from .machine import processes
    rows_done, seconds, true, said, at = done
    precision, evaluated = labeller.precision, labeller.evaluated_in
    if source.counted(cfg.output):
        print(f"labelled {rows_done} rows in {seconds:.1f} s ({rows_done / seconds:.1f} rows/s) on {labeller.device} "
              f"in {'fp32' if precision == 'no' else precision}, {labeller.max_length} tokens, batches of "
              f"{labeller.batch_size}" + (f" in each of {processes()} processes" if processes() > 1 else "")
              + (f"; written to {cfg.output}" if cfg.output else "")
              + (f" (train.py evaluated in {'fp32' if evaluated == 'no' else evaluated}: a near-tie may differ)"
                 if evaluated != precision else ""), file=sys.stderr)
    if source.table and not scored and not cfg.no_score:
        print(f"predict.py: not scored: {cfg.file!r} has no label column {' '.join(label_columns)!r} "
              f"(--label_column names it)", file=sys.stderr)
    metrics_path, issues_path = (cfg.output + ".metrics.json", cfg.output + ".label_issues.csv") if cfg.output \
        else (None, None)
    if scored:
        width = max(8, *map(len, codec.names))
        true, logits = codec.as_array(true), np.asarray(said).reshape(len(said), -1)
        report_scores(cfg, facts, codec, true, logits, rows_done, label_columns, labeller.max_length, precision,
                      labeller.device, width, metrics_path)
    for path in (metrics_path, issues_path):  # --overwrite: what was said of the output replaced is stale
        if path and os.path.exists(path) and not (path == metrics_path and scored and len(true)):
            os.remove(path)
    if scored and issues_path and len(true):
        list_label_issues(source, at, true, logits, codec, labeller, issues_path)


def list_label_issues(source, positions, true, logits, codec, labeller, path):
    """The scored rows whose label the adapter's probabilities contradict (textlora/label_issues.py, as train.py
    lists its own), written to path; the output and its scores stand whatever this does."""
    from . import label_issues, reports
    from .inference import probabilities  # the logits are divided by the temperature already
    if codec.problem == REGRESSION:
        print("labels that look wrong: not looked for (a number per text has no class probabilities)")
        return
    try:
        n = label_issues.of_a_file(source.data, positions, true, probabilities(logits, codec.problem), codec,
                                   labeller.threshold, source.text_columns, labeller.temperature != 1.0, path)
    except Exception as e:  # broad on purpose: cleanlab refuses small or one-class sets its own ways
        print(f"predict.py: the label issues could not be listed ({reports.in_a_line(e)}); the output and its scores "
              f"are written", file=sys.stderr)
        return
    print(f"labels that look wrong (cleanlab, the adapter's probabilities): {n} of {len(true)} scored rows, listed in "
          f"{path}, most suspicious first")


def report_scores(cfg, facts, codec, true, logits, rows, label_columns, max_length, precision, device, width, path):
    """The scored rows' scores, computed by train.py's own scorer (as on its evaluation rows)."""
    from transformers import EvalPrediction

    from . import files, reports, scores
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
    from .settings import is_local
    if cfg.base_model and is_local(cfg.base_model) and not os.path.exists(cfg.base_model):
        raise Refused(f"--base_model {cfg.base_model!r} does not exist; give the folder of the base model the adapter "
                      f"was trained from, or its Hub name")
    if not os.path.isdir(base_name):
        go_offline_without_hub()  # train.py's probe: offline within seconds, not after a minute of retries
    from peft import PeftModel
    from transformers import AutoTokenizer
    from transformers import logging as transformers_logging

    from . import inference, pooling
    transformers_logging.set_verbosity_error()  # the fresh head's "newly initialized" warning: the adapter replaces it
    transformers_logging.disable_progress_bar()  # stderr keeps one bar, the rows'
    # peft asks transformers 5 a deprecated name
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing")
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
        if facts.get("pooling") == pooling.MEAN:  # the head reads what it was trained on (an adapter of few rows)
            pooling.mean_pooled(model)
    except KeyError as e:  # peft finds no layer of the adapter's name in the base model
        raise Refused(f"cannot load this adapter onto base model {base_name!r}: it has no layer {e.args[0]!r} of the "
                      f"adapter's; give --base_model the model the adapter was trained from") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise Refused(f"cannot load base model {base_name!r} with this adapter ({str(e).splitlines()[0]}); "
                      f"set --base_model to a local copy") from None
    return model, tokenizer, base_name
