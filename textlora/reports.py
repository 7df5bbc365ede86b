"""Results and reports: metrics.json's parts, the model card, the curves, the lines printed, the summary."""
import os

from . import few_rows
from .duplicates import text as duplicates_text
from .labels import MULTI, PROBLEM_NAMES, REGRESSION, SINGLE
from .pooling import MEAN, pooled
from .scores import SCORES
from .search import card_text as search_card_text


def log_at_epoch_end():
    """A loss log at each epoch's end, where the checkpoint is saved: the logged losses then cover every step up to
    any checkpoint, so the run's mean loss can be had from them after a resume (run_loss)."""
    from transformers import TrainerCallback

    class LogAtEpochEnd(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            control.should_log = True
    return LogAtEpochEnd()


def run_loss(log, steps):
    """The mean training loss over all the run's steps: each logged loss is the mean over the steps since the one
    before. The Trainer's own training_loss covers only this process's steps, so it is 0 or partial after a resume."""
    total, last = 0.0, 0
    for h in log:
        if "loss" in h:
            total, last = total + h["loss"] * (h["step"] - last), h["step"]
    return total / max(steps, 1)


def in_a_line(e):
    """An exception as the one line that says what failed: its type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def extra(what, work, otherwise=None):
    """work() for something a run adds to the adapter and its scores (the calibration, the baseline, the curves, the
    summary), or, where it fails, one line saying so and `otherwise`: the run it adds to is never lost to it."""
    import sys
    try:
        return work()
    except Exception as e:  # broad on purpose: scikit-learn, scipy, matplotlib and the data each fail their own way
        print(f"train.py: {what} could not be made ({in_a_line(e)}); "
              f"the adapter and its scores are written without it", file=sys.stderr)
        return otherwise


def metrics_of(cfg, trainer, result, reported, report, calibrated, codec, best, subsets, class_weights, wall,
               precision, speed, max_length, pad_token_id_added, base_name, model, long, stride):
    """metrics.json: the kept adapter's scores on the evaluation rows (with several labels, at the thresholds chosen
    on the validation rows), per epoch, which rows did what, the calibration, the cost, the machine, the settings."""
    labels, problem = codec.names, codec.problem
    log = trainer.state.log_history
    keep_best = cfg.num_epochs > 1 and subsets["validation"][0] is not None
    final = reported or [h for h in log if "eval_loss" in h][-1]  # the kept adapter on the evaluation rows
    prefix = "eval_validation_" if keep_best else "eval_"  # the scores that chose the epoch kept
    epochs = list({epoch_of(h): h for h in log if f"{prefix}loss" in h}.values())
    kept = next(e for e in epochs if e["step"] == trainer.state.best_global_step) if keep_best else epochs[-1]
    losses = [h for h in log if "loss" in h]
    passes = few_rows.passes(cfg, model.config)
    return {
        "problem_type": problem, "labels": labels, "headline": SCORES[problem][0],
        **{k: v for k, v in final.items() if k.startswith("eval_")},
        **{f"eval_{k}": v for k, v in (calibrated or {}).get("scores_at_thresholds", {}).items()},
        **report,
        "calibration": calibrated,
        "epochs": epoch_table(epochs, losses, prefix),
        "kept_epoch": {"epoch": epoch_of(kept), "by": best, "score": kept[prefix + best],
                       "last_epoch": epoch_of(epochs[-1]), "last_score": epochs[-1][prefix + best]},
        "rows": rows_text(cfg, subsets, calibrated, trainer.state.epoch, passes, long.get("train", {}).get("rows")),
        "class_weights": class_weights,
        "train_loss": run_loss(log, trainer.state.global_step),  # all the run's steps, resumed or not
        "train_runtime_s": result.metrics["train_runtime"],
        "train_reviews_per_s": result.metrics["train_samples_per_second"],
        "eval_runtime_s": final["eval_runtime"],
        "eval_reviews_per_s": final["eval_samples_per_second"],
        "wall_time_s": wall,
        "device": str(trainer.args.device), "processes": trainer.args.world_size, "mixed_precision": precision,
        "matmul_gflops": speed, "max_length": max_length, "pad_token_id_added": pad_token_id_added,
        "long_texts": {"setting": cfg.long_texts, "stride": stride if cfg.long_texts == "windows" else None,
                       **{f"{name}_longer": n["longer"] for name, n in long.items()},
                       "said": long_text(long, max_length, cfg.long_texts)},
        "data": {"train_split": subsets["train"][0], "eval_split": subsets["eval"][0],
                 "validation_split": subsets["validation"][0], "labels": labels},
        "config": {k: v for k, v in vars(cfg).items() if k not in ("overwrite_output_dir", "resume")}
                  | {"base_model": base_name},
        **dict(zip(("trainable_parameters", "total_parameters"), model.get_nb_trainable_parameters())),
        "lora_target_modules": sorted(model.peft_config["default"].target_modules),  # as peft applied them
        "pooling": pooled(model),  # what the head reads: its architecture's first token, or the mean of the tokens
        "passes_per_epoch": passes,  # few rows: each epoch passed over them this often
        "contrastive_rounds": few_rows.stage_rounds(cfg, model.config),  # few rows: the stage's reads of each row
        "versions": versions(),
    }


def save_adapter_files(path, cfg, codec, precision, metrics, card):
    """Beside the weights: the model card, labels.json (the base config lacks the names) and training.json (what
    predict.py needs)."""
    import json

    from .files import write_text
    write_text(os.path.join(path, "README.md"), card)
    write_text(os.path.join(path, "labels.json"), json.dumps(dict(enumerate(codec.names))))
    write_text(os.path.join(path, "training.json"), json.dumps(adapter_facts(cfg, codec, precision, metrics), indent=2))


def epoch_table(epochs, losses, prefix):
    """Per epoch: the scores on the rows that chose the epoch kept, and the mean training loss logged during it."""
    import numpy as np
    return [{"epoch": epoch_of(e), "scored_on": "validation" if "validation" in prefix else "evaluation",
             **{k[len(prefix):]: v for k, v in e.items()
                if k.startswith(prefix) and not k.endswith(("runtime", "per_second"))},
             "train_loss": float(np.mean([h["loss"] for h in losses if e["epoch"] - 1 < h["epoch"] <= e["epoch"]]
                                         or [np.nan]))} for e in epochs]


def epoch_of(logged):
    """The epoch a log entry closes: a whole number, or where --max_steps ended the run within one, the share done
    (0.06: 3 steps of 50)."""
    epoch = logged["epoch"]
    return round(epoch) if abs(epoch - round(epoch)) < 1e-6 else round(epoch, 3)


def rows_text(cfg, subsets, calibrated, epochs_done, passes, windows=None):
    """Which rows did what, in words, for metrics.json. epochs_done: the Trainer's count, less than NUM_EPOCHS where
    --max_steps (or early stopping) ended the run sooner; windows: the training rows, where long texts are windows."""
    train, (eval_split, _), (validation_split, validation_size) = subsets["train"], subsets["eval"], \
        subsets["validation"]
    steps = cfg.trainer.get("max_steps", -1)
    of = f" windows of the {cfg.train_size} texts" if cfg.long_texts == "windows" and windows else " rows"
    seen = f" ({round(epochs_done * (windows if of != ' rows' else cfg.train_size))}{of} seen: --max_steps {steps}, " \
        f"{epochs_done:.3g} epochs)" if steps > 0 else ""
    passes = few_rows.text(cfg, passes)
    return {"trained_on": f"{cfg.train_size} rows of {train[0]!r}{seen}" + (f", {passes}" if passes else ""),
            "epoch_kept_chosen_on": f"{validation_size} rows of {validation_split!r}, none trained on or reported"
            if validation_split and cfg.num_epochs > 1 else LAST_EPOCH if cfg.num_epochs > 1
            else "nothing to choose: one epoch",
            "calibrated_on": f"{validation_size} rows of {validation_split!r}, none trained on or reported"
            if calibrated else "not calibrated: a number per text" if validation_split
            else "not calibrated: no rows left to hold out",
            "scores_reported_on": f"{cfg.eval_size} rows of {eval_split!r}, none trained on"}


def adapter_facts(cfg, codec, precision, metrics):
    """What predict.py needs to label texts as this run evaluated them: the columns, the labels (the data's values,
    ids and shown names), the length, the precision, and the padding token a decoder's base config lacks."""
    return {"text_column": cfg.text_column, "labels": codec.names, "problem_type": codec.problem,
            "label_codec": codec.to_json(),
            "label_column": cfg.label_column[0] if len(cfg.label_column) == 1 else cfg.label_column,
            "long_texts": cfg.long_texts, "stride": metrics["long_texts"]["stride"],
            "passes_per_epoch": metrics["passes_per_epoch"],  # few rows: each epoch passed over them this many times
            "contrastive_rounds": metrics["contrastive_rounds"],  # few rows: the stage's reads of each row
            "head_start": metrics["head_start"],  # few rows: the head's last layer from a logistic regression
            "pooling": metrics["pooling"],  # predict.py's head reads what this one read (textlora/pooling.py)
            "threshold": cfg.threshold or 0.5, "max_length": metrics["max_length"],
            "mixed_precision": cfg.mixed_precision, "evaluated_in": precision,
            "pad_token_id": metrics["pad_token_id_added"],
            # the probabilities are softmax (or sigmoid) of logits / temperature; several labels: each label's threshold
            "temperature": (metrics["calibration"] or {}).get("temperature", 1.0),
            "thresholds": list(((metrics["calibration"] or {}).get("thresholds") or {}).values()) or None}


def versions():
    import peft
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


LONG = {"truncate": "cut at {n} tokens", "head_tail": "read by their first and last tokens ({n} in all)",
        "windows": "read whole, in windows of {n} tokens"}


def long_text(long, max_length, setting):
    """How many training and evaluation texts are longer than the model reads at once, and what becomes of them."""
    train, evaluated = long.get("train", {}), long.get("eval", {})
    return (f"{train.get('longer', 0)} of {train.get('texts', 0)} training and {evaluated.get('longer', 0)} of "
            f"{evaluated.get('texts', 0)} evaluation texts are longer than {max_length} tokens: "
            + LONG[setting].format(n=max_length) + (" (--long_texts head_tail or windows reads past it)"
                                                    if setting == "truncate" else "")
            + (f" ({train.get('rows', 0)} training rows of windows)" if setting == "windows" else ""))


def data_line(cfg, subsets, codec, why, class_weights, repeated, long, max_length, passes):
    (train_split, _), (eval_split, _), (validation_split, validation_size) = subsets.values()
    labels, shown = codec.names, codec.shown_classes()
    source = repr(eval_split) if eval_split != train_split else f"{eval_split!r} too, without overlap"
    if eval_split != cfg.eval_split:
        also = " or 'validation'" if eval_split != "validation" else ""
        source += f" (there is no {cfg.eval_split!r}{also} split)"
    chooser = repr(validation_split) if validation_split != train_split else f"{train_split!r} (no overlap)"
    kind = {SINGLE: f"{len(labels)} classes: {', '.join(shown)}",
            MULTI: f"{len(labels)} labels, several per text: {', '.join(shown)}",
            REGRESSION: f"a number per text: {labels[0]}"}[codec.problem]
    passes = few_rows.text(cfg, passes)
    return (f"data: {cfg.train_size} rows from {train_split!r} for training" + (f" ({passes})" if passes else "")
            + f", {cfg.eval_size} from {source} for evaluation"
            + (f", {validation_size} from {chooser} to {purpose(cfg, codec.problem)}" if validation_split else "")
            + "; " + kind
            + f" (column {' '.join(map(repr, cfg.label_column))}: {why})"
            + (f"; pairs of texts from {' and '.join(cfg.text_column)}" if len(cfg.text_column) == 2 else "")
            + (f"; loss weights {', '.join(f'{w:.3g}' for w in class_weights)}" if class_weights else "")
            + (f"; DUPLICATES: {found}" if (found := duplicates_text(repeated)) else "")
            + (f"; {long_text(long, max_length, cfg.long_texts)}"
               if any(n["longer"] for n in long.values()) else ""))


def purpose(cfg, problem):
    """What the validation rows do, in words."""
    calibrate = {SINGLE: "calibrate the probabilities", REGRESSION: None,
                 MULTI: "calibrate the probabilities" + ("" if cfg.threshold else " and choose each label's threshold")}
    does = [d for d in ("score the search's trials" if cfg.search_trials else None,
                        "choose the epoch kept" if cfg.num_epochs > 1 else None, calibrate[problem]) if d]
    return " and ".join(does) or "hold out (unused: a number per text has no probabilities to calibrate)"


LAST_EPOCH = "the last epoch: too few rows to hold some back to choose one by (none is reported on for choosing)"


def kept_text(metrics):
    """Which epoch's adapter was kept and why, beside the last epoch's score; nothing to say after one epoch."""
    kept = metrics["kept_epoch"]
    if len(metrics["epochs"]) == 1:
        return ""
    if metrics["rows"]["epoch_kept_chosen_on"] == LAST_EPOCH:
        return f"; the last of {kept['last_epoch']} epochs kept: too few rows to hold some back to choose one by"
    return (f"; epoch {kept['epoch']} of {kept['last_epoch']} kept, best by {kept['by']} on the validation rows "
            f"({kept['score']:.4f}; last epoch {kept['last_score']:.4f})")


def model_line(model, cfg, head, labels, loading, max_length, targets_why):
    trainable, total = model.get_nb_trainable_parameters()
    saved = sorted({saved_shape[0] for name, saved_shape, _ in loading["mismatched_keys"]
                    if name.split(".")[0] in head and name.endswith("weight")})  # the head's outputs, as saved
    lora = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and "modules_to_save" not in n]
    found = sorted({n.split(".")[-1] for n in lora})
    return (f"model: LoRA on {len(lora)} layers ({', '.join(found)}{f': {targets_why}' if targets_why else ''}) + head "
            f"{', '.join(head)} trained in full: "
            f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
            + (f"; a fresh head of {len(labels)} outputs replaces the saved one of {saved[0]}" if saved else "")
            + (f"; MAX_LENGTH {cfg.max_length} lowered to {max_length}, the most this model takes"
               if max_length < cfg.max_length else ""))


def headline_text(metrics, prefix="eval_"):
    """The problem's headline score and two more, such as "accuracy 0.8010 (F1 0.7962)"."""
    problem, labels = metrics["problem_type"], metrics["labels"]
    shown = {SINGLE: ("accuracy", "f1" if len(labels) == 2 else "macro_f1"), MULTI: ("micro_f1", "macro_f1",
                                                                                      "exact_match"),
             REGRESSION: ("rmse", "mae", "spearman")}[problem]
    # with two classes, F1 is the second class's (id 1): it is named
    words = lambda key: f"F1 of {labels[1]}" if key == "f1" else \
        key.replace("_", " ").replace("rmse", "RMSE").replace("mae", "MAE").replace("f1", "F1")
    return (f"{words(shown[0])} {metrics[prefix + shown[0]]:.4f} ("
            + ", ".join(f"{words(k).replace('spearman', 'Spearman')} {metrics[prefix + k]:.4f}" for k in shown[1:])
            + ")")


def load_code(metrics, adapter_dir, indent=""):
    labels, pad = metrics["labels"], metrics["pad_token_id_added"]
    return (f"model = AutoPeftModelForSequenceClassification.from_pretrained(\"{adapter_dir}\", "
            f"num_labels={len(labels)}, id2label={dict(enumerate(labels))}, ignore_mismatched_sizes=True"
            + (f", problem_type=\"{metrics['problem_type']}\"" if metrics["problem_type"] != SINGLE else "")
            + (f", pad_token_id={pad})" if pad is not None else ")")
            # without it the head reads the first token, and its outputs are not the trained model's
            + (f"\n{indent}from textlora.pooling import mean_pooled  # beside train.py\n{indent}mean_pooled(model)  "
               f"# the head reads the mean of the tokens, as in training" if metrics.get("pooling") == MEAN else ""))


NOT_CALIBRATED = "none (no held-out rows, or a number per text)"


def model_card(cfg, metrics, head, precision, adapter_dir):
    base, labels, data = metrics["config"]["base_model"], metrics["labels"], metrics["data"]
    multi = metrics["problem_type"] == MULTI
    stage = "; first a contrastive stage: " + few_rows.stage_text(cfg, metrics["contrastive_rounds"],
                                                                 metrics["head_start"]) \
        if metrics.get("contrastive_rounds") else ""
    return f"""---
base_model: {base}
library_name: peft
pipeline_tag: text-classification
---
# LoRA adapter: {os.path.basename(base.rstrip('/'))} for text classification ({' / '.join(labels)}: \
{PROBLEM_NAMES[metrics['problem_type']]})

- Base model: `{base}`
- Data: `{cfg.dataset_name}`, {cfg.train_size} texts from `{data['train_split']}` and {cfg.eval_size} from \
`{data['eval_split']}`, drawn with seed {cfg.seed}; {metrics['long_texts']['said']}
- LoRA: r={cfg.lora_r}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, target modules \
{metrics['lora_target_modules']}; trained head: {head}
- Training: learning rate {cfg.learning_rate}, batch size {cfg.batch_size}, {metrics['kept_epoch']['last_epoch']} \
epoch(s) run of {cfg.num_epochs}, {precision} on {metrics['device']}; trained on {metrics['rows']['trained_on']}{stage}
- Settings: {search_card_text(metrics['search']) if metrics.get('search') else "as given (no search)"}
- Evaluation: {headline_text(metrics)} on {cfg.eval_size} texts\
{kept_text(metrics)}{baseline_text(metrics)}{without_duplicates_text(metrics)}
- Calibration: {calibration_text(metrics) if metrics["calibration"] else NOT_CALIBRATED}
- Text: {' and '.join(f'`{c}`' for c in cfg.text_column)}{' (a pair)' if len(cfg.text_column) == 2 else ''}; \
class loss weights: {metrics['class_weights'] or 'none'}

Labels: {', '.join(f'{i} = {name}' for i, name in enumerate(labels))} (also in labels.json)\
{f"; each is given where its probability passes {thresholds_text(cfg, metrics)}" if multi else ""}.

```python
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
{load_code(metrics, adapter_dir)}
tokenizer = AutoTokenizer.from_pretrained("{adapter_dir}")
```
"""


def thresholds_text(cfg, metrics):
    """Several labels: the threshold of each, as predict.py uses them (adapter/training.json)."""
    chosen = (metrics["calibration"] or {}).get("thresholds")
    if not chosen:
        return f"{cfg.threshold or 0.5}"
    return "its threshold (" + ", ".join(f"{name} {t:.3g}" for name, t in chosen.items()) + ")"


def save_curves(path, metrics, log, scorer):
    """Training loss per step, the headline score per epoch, and the kept adapter on the evaluation rows: its
    confusion matrix, its F1 per label, or its predictions against the true numbers."""
    import numpy as np
    losses = [h for h in log if "loss" in h]
    from matplotlib.figure import Figure  # not pyplot: no screen, no window, nothing global to close
    epochs, labels, headline = metrics["epochs"], metrics["labels"], metrics["headline"]
    fig = Figure(figsize=(20, 4.5))
    a, b, c, d = fig.subplots(1, 4)
    a.plot([h["step"] for h in losses], [h["loss"] for h in losses], marker=".")
    a.set(title="training loss", xlabel="step", ylabel="loss")
    b.plot([e["epoch"] for e in epochs], [e[headline] for e in epochs], marker="o")
    b.set_xticks([e["epoch"] for e in epochs])
    b.set(title=f"{headline} on the {epochs[0]['scored_on']} rows", xlabel="epoch", ylabel=headline)
    kept = f"epoch {metrics['kept_epoch']['epoch']}"
    if metrics["problem_type"] == SINGLE:
        confusion = np.array(metrics["confusion_matrix"]["rows_true_columns_predicted"])
        c.imshow(confusion, cmap="Blues")
        for (i, j), n in np.ndenumerate(confusion):
            c.text(j, i, n, ha="center", va="center", color="white" if n > confusion.max() / 2 else "black")
        c.set(title=f"confusion matrix, {kept}", xlabel="predicted", ylabel="true", xticks=range(len(labels)),
              yticks=range(len(labels)), xticklabels=labels, yticklabels=labels)
    elif metrics["problem_type"] == MULTI:
        c.barh(labels, [metrics["per_label"][name]["f1"] for name in labels])
        c.set(title=f"F1 per label, {kept}", xlabel="F1", xlim=(0, 1))
    else:
        true, predicted = scorer.numbers()
        c.scatter(true, predicted, s=8, alpha=0.5)
        c.plot([true.min(), true.max()], [true.min(), true.max()], color="gray")
        c.set(title=f"predicted against true, {kept}", xlabel=f"true {labels[0]}", ylabel="predicted")
    if metrics["calibration"]:  # reliability diagram: confidence against the share right, before and after
        p, y, problem = scorer.last.predictions, scorer.last.label_ids, metrics["problem_type"]
        from .calibration import probabilities, reliability
        for t, name in ((1.0, "before"), (metrics["calibration"]["temperature"], "after")):
            count, confidence, right = reliability(probabilities(p, problem, t), y, problem)
            d.plot(confidence[count > 0], right[count > 0], marker="o", label=f"{name} (T={t:.3g})")
        d.plot([0, 1], [0, 1], color="gray", linestyle="--")
        d.set(title="reliability on the evaluation rows", xlabel="confidence", ylabel="share right", xlim=(0, 1),
              ylim=(0, 1))
        d.legend()
    else:
        d.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, format="png")


def print_summary(cfg, metrics, codec, examples, logits, adapter_dir):
    """The score and on which rows, three evaluation rows as the model labels them (through the one inference path,
    textlora/inference.py, as predict.py would), and how to use the adapter."""
    from textlora.inference import decided
    problem = codec.problem
    pairs = "text_pair" in examples.column_names
    texts = [{"text": a, "text_pair": b} for a, b in zip(examples["text"], examples["text_pair"])] if pairs \
        else list(examples["text"])
    calibrated = metrics["calibration"] or {}
    temperature, thresholds = calibrated.get("temperature", 1.0), list((calibrated.get("thresholds") or {}).values())
    predicted = [codec.shown(p) for p in decided(logits / temperature, problem, thresholds or cfg.threshold or 0.5)]
    true = [codec.shown(label) for label in examples["label"]]
    width = max(map(len, predicted + true))
    data = metrics["data"]
    where = (f"{data['eval_split']!r}" if data["eval_split"] != data["train_split"]
             else f"{data['eval_split']!r} held out (none trained on)")
    wall = metrics["wall_time_s"]
    took = f"{wall / 60:.1f} min" if wall >= 60 else f"{wall:.0f} s"
    print(f"\n{'=' * 72}\ndone in {took} on {metrics['device']}: "
          f"{headline_text(metrics)} on {cfg.eval_size} rows of {where}{baseline_text(metrics)}{kept_text(metrics)}")
    if metrics.get("eval_without_duplicates"):
        print(f"  {without_duplicates_text(metrics).lstrip('; ')}")
    if calibrated:
        print(f"  {calibration_text(metrics)}")
    if found := label_issues_text(metrics):
        print(f"  {found}")
    for text, t, p in zip(texts, true, predicted):
        verdict = "     " if problem == REGRESSION else "ok   " if p == t else "wrong"
        print(f"  {verdict} predicted {p:<{width}} true {t:<{width}} "
              f"\"{shortened(' | '.join(text.values()) if pairs else text)}\"")
    print(f"adapter:  {adapter_dir}/\nmetrics:  {cfg.output_dir}/metrics.json, {cfg.output_dir}/training_curves.png\n"
          f"load it, with its label names:\n  from peft import AutoPeftModelForSequenceClassification\n"
          f"  {load_code(metrics, adapter_dir, '  ')}\n"
          f"or predict: {predict_example(texts[0], adapter_dir)}\n"
          f"{'=' * 72}")


def baseline_text(metrics):
    """The baseline's headline score beside the adapter's, and which is the better, in plain words."""
    base = metrics.get("baseline")
    if not base:
        return ""
    headline = metrics["headline"]
    ours, theirs = metrics[f"eval_{headline}"], base[headline]
    lower = headline in ("rmse", "mae")
    better = "the adapter is better" if (ours < theirs if lower else ours > theirs) else \
        "the same" if ours == theirs else "the BASELINE IS BETTER: fine-tuning did not pay here"
    return f"; {base['model']} on the same rows {theirs:.4f} ({better})"


def without_duplicates_text(metrics):
    """The headline on the evaluation rows that no training row repeats, where some do."""
    found = metrics.get("eval_without_duplicates")
    if not found:
        return ""
    if not found["rows"]:
        return f"; all {found['left_out']} evaluation rows are also training rows: the score measures nothing new"
    return (f"; without the {found['left_out']} evaluation rows whose text is also a training row's: "
            f"{headline_text({**metrics, **{f'eval_{k}': v for k, v in found.items()}})} on {found['rows']} rows")


def label_issues_text(metrics):
    found = metrics.get("label_issues")
    if not found:
        return ""
    if found["listed"] is None:
        return f"labels that look wrong: not looked for ({found['why']})"
    from .label_issues import ROWS
    looked_at = found["rows_looked_at"]
    where = ", ".join(f"{n} of {looked_at[name]} {ROWS[name]} rows" for name, n in found["listed"].items())
    failed = "".join(f"; {ROWS[name]} rows not looked at ({why})" for name, why in found.get("not_listed", {}).items())
    return (f"labels that look wrong (cleanlab, out-of-sample probabilities): {where or 'none looked at'}; listed in "
            f"{found['file']}, most suspicious first{failed}")


def calibration_text(metrics):
    c = metrics["calibration"]
    text = (f"probabilities calibrated on {c['fitted_on_rows']} held-out rows (temperature {c['temperature']:.3g}): "
            f"expected calibration error {c['ece_before']:.3f} -> {c['ece_after']:.3f}, Brier {c['brier_before']:.3f} "
            f"-> {c['brier_after']:.3f}")
    if "scores_at_thresholds" in c:
        half = c.get("scores_at_0.5") or c.get("scores_at_threshold")
        text += (f"; thresholds by {c['thresholds_by']}: micro F1 {half['micro_f1']:.4f} -> "
                 f"{c['scores_at_thresholds']['micro_f1']:.4f}")
    return text


def shortened(text, width=60):
    """The text on one line, its first `width` characters, and "..." only where more was cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width] + "..."


def predict_example(text, adapter_dir):
    """A predict.py command line on a text like the data's: a pair goes in as two tab-separated fields a line."""
    import shlex
    if isinstance(text, dict):
        return (f"printf '%s\\t%s\\n' {shlex.quote(' '.join(text['text'].split()[:6]))} "
                f"{shlex.quote(' '.join(text['text_pair'].split()[:6]))} | python predict.py {adapter_dir}")
    return f"python predict.py {adapter_dir} {shlex.quote(' '.join(text.split()[:8]))}"
