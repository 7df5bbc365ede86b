"""Fine-tune a text classifier with LoRA: DistilBERT on IMDB movie reviews, or your own data.

    python train.py                                   # the settings below
    python train.py --train_size 200 --eval_size 200  # any setting, as a flag in lower case (--help lists them)
    torchrun --nproc_per_node=2 train.py              # several processes (DDP), same flags

Writes OUTPUT_DIR: checkpoint-*/ (one per epoch, what --resume continues from), adapter/ (the LoRA weights and the
trained head as safetensors, adapter_config.json, tokenizer, labels.json, a model card), metrics.json and
training_curves.png.
"""
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from typing import Literal

from textlora import Refused, tables
from textlora.hub import go_offline_without_hub, hub_reachable  # noqa: F401 (the tests' probe too)
from textlora.labels import AS_THEY_ARE, MULTI, PROBLEM_NAMES, REGRESSION, SINGLE, from_data

# -----------------------------------------------------------------------------
# Every setting is also a flag, its name in lower case: --model_name, --train_size, ... (python train.py --help)
MODEL_NAME = "distilbert-base-uncased"  # base model: a Hub name or a local folder
DATASET_NAME = "stanfordnlp/imdb"       # a Hub name, a local folder, or one .parquet/.csv/.jsonl file
TRAIN_SPLIT = "train"                   # split the training rows are drawn from
EVAL_SPLIT = "test"                     # split the evaluation rows come from (none such: validation, else TRAIN_SPLIT)
TEXT_COLUMN = ["text"]                  # column holding the text; two columns: a pair of texts, such as question answer
LABEL_COLUMN = ["label"]                # the class (name or id), a list of labels, or a number; or several 0/1 columns
PROBLEM_TYPE: Literal["auto", "single_label", "multi_label", "regression"] = "auto"  # auto: from LABEL_COLUMN's values
LABEL_NAMES = ["neg=Negative", "pos=Positive"]  # how to show the data's label names, as data=shown
TRAIN_SIZE = 1000                       # rows drawn at random (seeded) for training
EVAL_SIZE = 1000                        # rows drawn at random (seeded) for evaluation: the accuracy reported
VALIDATION_SIZE = 500                   # NUM_EPOCHS > 1: rows choosing the epoch kept, neither trained on nor reported
SEED = 42                               # subsets, new head and LoRA start, batch order: same seed, same run
MAX_LENGTH = 512                        # tokens per text; longer texts are truncated
LORA_R = 4                              # LoRA rank
LORA_ALPHA = 32                         # LoRA scale
LORA_DROPOUT = 0.01                     # dropout on the LoRA input
TARGET_MODULES = ["q_lin"]              # linear layers that get LoRA matrices: DistilBERT's query (BERT's: query)
LEARNING_RATE = 1e-3                    # peak learning rate (linear decay)
BATCH_SIZE = 4                          # training rows per step and process
NUM_EPOCHS = 1                          # passes over the training rows; evaluation and a checkpoint after each
BEST_METRIC = "auto"                    # the epoch kept is the best at it; auto: accuracy, micro_f1 or rmse by problem
THRESHOLD = 0.5                         # several labels per text: a label is given where its probability passes this
EARLY_STOPPING_PATIENCE: int | None = None  # stop after this many epochs without a better BEST_METRIC; None: off
CLASS_WEIGHTS: list[str] = []           # loss weight per class (or label): balanced (inverse frequency), or numbers
REPORT_TO = "none"                      # live curves through the Trainer: tensorboard, trackio, wandb, mlflow, ...
OUTPUT_DIR = "outputs/distilbert-imdb-lora"  # where the run is written
# Speed: none of these changes the data or the settings above (attention dropout is a change to training).
MIXED_PRECISION: Literal["auto", "bf16", "fp16", "no"] = "auto"  # auto: GPU bf16 (A100 on) else fp16; CPU: the faster
ATTENTION_DROPOUT = 0.0                 # dropout on attention weights; DistilBERT's own 0.1 forces a slower kernel
HIDDEN_DROPOUT = 0.0                    # dropout between the frozen base's layers (DistilBERT's own: 0.1)
GROUP_BY_LENGTH = True                  # batches of similar length pad less (--no_group_by_length: random batches)
EVAL_BATCH_SIZE: int | None = None      # evaluation batch size; None: 64 on a GPU, on a CPU 4 (16 in bf16 with AMX)
# Run control
OVERWRITE_OUTPUT_DIR = False            # replace the run in OUTPUT_DIR (only its files: anything else is refused)
RESUME = False                          # continue the run in OUTPUT_DIR from its last checkpoint, as it started
TRUST_REMOTE_CODE = False               # run Python code shipped with a Hub model
# -----------------------------------------------------------------------------


def tokenize(batch, tokenizer, max_length):
    """How texts become tokens, for training, evaluation and predict.py alike: two text columns are a pair (the
    tokenizer's separator, the longer one truncated first); padding happens per batch."""
    encoded = tokenizer(*(batch[c] for c in ("text", "text_pair") if c in batch), truncation=True,
                        max_length=max_length)
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]  # batches of similar length, without a pass
    return encoded


def main(args=None):
    cfg = read_settings(args)  # the constants above, with the flags given on the command line (or args)
    main_process = rank_zero()  # rank 0 (or the only process) alone prints and writes results
    keep_best = cfg.num_epochs > 1  # the best epoch's adapter is kept, chosen on validation rows
    with this_machine_first():  # under a launcher, each machine's first process checks and fills its caches first
        resume_from, started = check_settings(cfg)  # before anything heavy is imported: a bad flag is refused at once

        # -- 1. data: seeded random subsets for training, evaluation and, with several epochs, validation ---
        data = load_or_fail("dataset", cfg.dataset_name, "--dataset_name", "cannot be read",
                            lambda: tables.read(cfg.dataset_name, cfg.text_column + cfg.label_column))
        eval_split = next((s for s in (cfg.eval_split, "validation") if s in data), cfg.train_split)
        validation_split = ("validation" if "validation" in data and eval_split != "validation"
                            and len(data["validation"]) else cfg.train_split) if keep_best else None
        # a validation split of the data's own may be smaller than VALIDATION_SIZE: all of it is used then
        subsets = {"train": (cfg.train_split, cfg.train_size), "eval": (eval_split, cfg.eval_size),
                   "validation": (validation_split, cfg.validation_size if validation_split in (None, cfg.train_split)
                                  else min(cfg.validation_size, len(data[validation_split])))}
        check_data(data, cfg, subsets)
        # the kind of problem is decided here, once, from the labels: one class, several labels, or a number per text
        rows, codec, why = as_text_and_target(draw(data, subsets, cfg.seed), data, cfg, subsets)
        labels, problem = codec.names, codec.problem
        best = best_metric(cfg, problem, labels)
        class_weights = loss_weights(cfg, rows["train"], labels, problem)  # None: every class weighs the same
        drawn = digest(rows)  # --resume refuses data that changed under the same name
        if started and started.get("rows_digest", drawn) != drawn:
            fail(f"--resume: the rows drawn from {cfg.dataset_name!r} are not the run's (the data changed since it "
                 f"started); start over with --overwrite_output_dir")
        if main_process:
            print(data_line(cfg, subsets, codec, why, class_weights))

        # -- 2. tokenize once, within the model's reach, with the fast tokenizer; padding happens per batch ---
        from transformers import AutoConfig, AutoTokenizer
        # A local base model is recorded by absolute path, so the adapter loads from any working directory.
        base_name = os.path.abspath(cfg.model_name) if os.path.isdir(cfg.model_name) else cfg.model_name
        model_error, remote = ("model", cfg.model_name, "--model_name", "cannot be loaded"), cfg.trust_remote_code
        tokenizer = load_or_fail("model", cfg.model_name, "--model_name", "has no usable tokenizer",
                                 lambda: AutoTokenizer.from_pretrained(base_name, trust_remote_code=remote))
        config = load_or_fail(*model_error, lambda: AutoConfig.from_pretrained(
            base_name, num_labels=len(labels), id2label=dict(enumerate(labels)), problem_type=problem,
            label2id={n: i for i, n in enumerate(labels)}, trust_remote_code=remote))
        max_length = within_reach(cfg.max_length, config, tokenizer)  # past its positions a model fails or crashes
        padding_added = give_a_padding_token(tokenizer, config, cfg)  # decoders (GPT-2, Llama, Qwen) lack one

        tokenized = {name: r.map(tokenize, batched=True, remove_columns=text_columns(cfg), desc=f"tokenize {name}",
                                 fn_kwargs={"tokenizer": tokenizer, "max_length": max_length})
                     for name, r in rows.items() if r is not None}

        # -- 3. the model, wrapped in LoRA; the new classification head trains in full -------------------
        import transformers
        from peft import LoraConfig, TaskType, get_peft_model

        from textlora import inference

        transformers.set_seed(cfg.seed)  # the new head and the LoRA matrices start from random values
        for keys, value in ((("attention_dropout", "attention_probs_dropout_prob"), cfg.attention_dropout),
                            (("dropout", "hidden_dropout_prob"), cfg.hidden_dropout)):  # DistilBERT's, BERT's names
            for key in keys:
                if hasattr(config, key):
                    setattr(config, key, value)
        # A saved head with another number of classes (a model tuned for 2, data with 4) is replaced by a fresh one.
        model, loading = load_or_fail(*model_error, lambda: inference.load_model(
            base_name, config=config, ignore_mismatched_sizes=True, output_loading_info=True, trust_remote_code=remote))
        check_target_modules(model, cfg)
        head = [n for n, m in model.named_children() if n != model.base_model_prefix and list(m.parameters())]
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout,
                                                 target_modules="all-linear" if cfg.target_modules == ["all-linear"]
                                                 else cfg.target_modules,  # peft's all-linear is a name, not a list
                                                 modules_to_save=list(head)))  # a copy: peft appends to it
        if main_process:
            print(model_line(model, cfg, head, labels, loading, max_length))

    # -- 4. train, evaluating and saving a checkpoint at each epoch end ---------------------------------
    from transformers import EarlyStoppingCallback, TrainingArguments

    from textlora.inference import Trainer  # transformers' own, evaluating rows in the order given (sorted by length)

    device = device_type()
    # a resumed run goes on in the precision it started in, not in one measured again
    precision, speed = (started["precision"], started["speed"]) if started else \
        choose_precision(cfg.mixed_precision, device, main_process)
    pad_to = inference.fit_to_the_chip(model, device, precision)  # and the head computes in fp32 in any precision
    # Rows are evaluated sorted by length, as predict.py labels them, so that both run the same batches.
    # With one epoch there is nothing to choose: the evaluation rows are scored at its end, as they always were.
    eval_rows = inference.by_length(tokenized["eval"])[0]
    choose_on = {"validation": inference.by_length(tokenized["validation"])[0]} if keep_best else eval_rows
    scorer = Scores(problem, labels, cfg.threshold)
    args = TrainingArguments(
        output_dir=cfg.output_dir,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or eval_batch_size(device, precision),
        num_train_epochs=cfg.num_epochs,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_steps=max(1, -(-cfg.train_size // cfg.batch_size) // 25),  # about 25 points an epoch on the loss curve
        load_best_model_at_end=keep_best,
        metric_for_best_model=("validation_" if keep_best else "") + best,
        greater_is_better=best not in LOWER_IS_BETTER,
        seed=cfg.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        report_to=cfg.report_to,
        use_cpu=device == "cpu",
        dataloader_pin_memory=device == "cuda",
        restore_callback_states_from_checkpoint=True,  # early stopping counts on across a resume
    )
    trainer = Trainer(model=model, args=args, train_dataset=tokenized["train"], eval_dataset=choose_on,
                      data_collator=inference.PadWithin(tokenizer, limit=max_length, multiple=pad_to),
                      processing_class=tokenizer, compute_metrics=scorer,
                      compute_loss_func=weighted_loss(class_weights, problem) if class_weights else None,
                      callbacks=[log_at_epoch_end()] + ([EarlyStoppingCallback(cfg.early_stopping_patience)]
                                                     if keep_best and cfg.early_stopping_patience else []))

    if main_process:
        if cfg.overwrite_output_dir:
            remove_earlier_run(cfg.output_dir)  # asked for: no old checkpoint mixes with the new ones
        write_atomically(os.path.join(cfg.output_dir, RUN_RECORD), lambda path: write_text(path, json.dumps(
            {"settings": vars(cfg), "precision": precision, "speed": speed, "rows_digest": drawn,
             "processes": args.world_size}, indent=2)))  # what --resume goes on with
        print(f"training on {args.device} in {precision_text(precision, speed)}, {args.world_size} process(es): "
              f"{cfg.train_size} train / {cfg.eval_size} eval rows, {cfg.num_epochs} epoch(s)"
              + (f", resuming from {resume_from} in the precision the run started in" if resume_from else ""))
    start = time.time()
    with stop_cleanly_on_signals(cfg.output_dir):
        result = trainer.train(resume_from_checkpoint=resume_from)
        # The kept adapter on the evaluation rows, scored once. predict, not evaluate: the trackers' runs ended with
        # the training, and a score logged now would open another.
        reported = trainer.predict(eval_rows, metric_key_prefix="eval").metrics \
            if keep_best or scorer.last is None else None
        report = scorer.report()  # per class and the confusion matrix; per label; nothing more for a number
        examples = range(min(3, cfg.eval_size))  # for the summary, through the one inference path (every process)
        example_logits = inference.logits_of(trainer, tokenized["eval"].select(examples))
    wall = time.time() - start
    leave_processes()  # the work of the others is done; rank 0 writes the results alone
    if not main_process:
        return

    # -- 5. write the results; each appears whole or not at all, metrics.json last -----------------------
    log = trainer.state.log_history
    final = reported or [h for h in log if "eval_loss" in h][-1]  # the kept adapter on the evaluation rows
    prefix = "eval_validation_" if keep_best else "eval_"  # the scores that chose the epoch kept
    epochs = list({round(h["epoch"]): h for h in log if f"{prefix}loss" in h}.values())
    kept = next(e for e in epochs if e["step"] == trainer.state.best_global_step) if keep_best else epochs[-1]
    losses = [h for h in log if "loss" in h]
    metrics = {
        "problem_type": problem, "labels": labels, "headline": SCORES[problem][0],
        **{k: v for k, v in final.items() if k.startswith("eval_")},
        **report,
        "epochs": epoch_table(epochs, losses, prefix),
        "kept_epoch": {"epoch": round(kept["epoch"]), "by": best, "score": kept[prefix + best],
                       "last_epoch": round(epochs[-1]["epoch"]), "last_score": epochs[-1][prefix + best]},
        "rows": rows_text(cfg, subsets),
        "class_weights": class_weights,
        "train_loss": run_loss(log, trainer.state.global_step),  # all the run's steps, resumed or not
        "train_runtime_s": result.metrics["train_runtime"],
        "train_reviews_per_s": result.metrics["train_samples_per_second"],
        "eval_runtime_s": final["eval_runtime"],
        "eval_reviews_per_s": final["eval_samples_per_second"],
        "wall_time_s": wall,
        "device": str(args.device), "processes": args.world_size, "mixed_precision": precision, "matmul_gflops": speed,
        "max_length": max_length, "pad_token_id_added": config.pad_token_id if padding_added else None,
        "data": {"train_split": cfg.train_split, "eval_split": eval_split, "validation_split": validation_split,
                 "labels": labels},
        "config": {k: v for k, v in vars(cfg).items() if k not in ("overwrite_output_dir", "resume")}
                  | {"base_model": base_name},
        **dict(zip(("trainable_parameters", "total_parameters"), model.get_nb_trainable_parameters())),
        "versions": versions(),
    }
    adapter_dir = os.path.join(cfg.output_dir, "adapter")
    card = model_card(cfg, metrics, head, precision_text(precision, speed), adapter_dir)

    def save_adapter(path):
        model.save_pretrained(path)  # safetensors: the LoRA matrices and the trained head
        tokenizer.save_pretrained(path)
        write_text(os.path.join(path, "README.md"), card)
        write_text(os.path.join(path, "labels.json"), json.dumps(dict(enumerate(labels))))  # the base config lacks them
        write_text(os.path.join(path, "training.json"), json.dumps(adapter_facts(cfg, codec, precision, metrics),
                                                                   indent=2))

    write_atomically(os.path.join(cfg.output_dir, "training_curves.png"),
                     lambda to: save_curves(to, metrics, losses, scorer))
    write_atomically(adapter_dir, save_adapter)
    write_atomically(os.path.join(cfg.output_dir, "metrics.json"),
                     lambda path: write_text(path, json.dumps(metrics, indent=2)))  # its presence marks a finished run

    # -- 6. summary: the score, three evaluation rows as the model now labels them, how to load it ----------
    print_summary(cfg, metrics, codec, rows["eval"].select(examples), example_logits, adapter_dir)


# ---- settings and flags ---------------------------------------------------------------------------------

def read_settings(args=None):
    """The UPPER_CASE constants of this file as flags (lower case): type from the default (or the annotation where it
    has one), help text from the constant's trailing comment, so adding a setting is one line."""
    import ast
    import io
    import tokenize
    from dataclasses import field, make_dataclass

    from transformers import HfArgumentParser
    source = open(__file__, encoding="utf-8").read()
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    fields, annotations = [], globals().get("__annotations__", {})
    body = ast.parse(source).body
    for node in body[:next(i for i, n in enumerate(body) if isinstance(n, ast.FunctionDef))]:  # the settings block
        target = getattr(node, "target", None) or getattr(node, "targets", [None])[0]  # NAME: type = ... or NAME = ...
        if isinstance(target, ast.Name) and target.id.isupper():
            name, default = target.id, globals()[target.id]
            kind = annotations.get(name) or (list[type(default[0])] if isinstance(default, list) else type(default))
            meta = {"help": comments.get(node.end_lineno, "").replace("%", "%%")}
            # a plain default where it can be: HfArgumentParser reads a bool's default from it (the --no_ flags)
            fields.append((name.lower(), kind, field(default_factory=lambda d=default: list(d), metadata=meta)
                           if isinstance(default, list) else field(default=default, metadata=meta)))
    return HfArgumentParser(make_dataclass("Settings", fields)).parse_args_into_dataclasses(args)[0]


def fail(message):
    """Bad input: one line on stderr and exit status 2, before anything is written."""
    print(f"train.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def check_settings(cfg):
    """Refuse bad numbers and an output folder that a run must not touch. Returns the checkpoint to resume from and,
    when resuming, what the run recorded when it started (its settings and precision)."""
    for name in ("train_size", "eval_size", "validation_size", "batch_size", "eval_batch_size", "num_epochs",
                 "max_length", "lora_r", "early_stopping_patience"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            fail(f"--{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("lora_dropout", "attention_dropout", "hidden_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            fail(f"--{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.label_names != [AS_THEY_ARE] and any("=" not in pair for pair in cfg.label_names):
        fail(f"--label_names takes data=shown pairs, such as neg=Negative, or {AS_THEY_ARE} to show the data's own "
             f"names; got {' '.join(cfg.label_names)}")
    if cfg.seed < 0:
        fail(f"--seed must be 0 or more, got {cfg.seed}")
    for name in ("learning_rate", "lora_alpha"):
        if not getattr(cfg, name) > 0:
            fail(f"--{name} must be more than 0, got {getattr(cfg, name)}")
    if not 1 <= len(cfg.text_column) <= 2:
        fail(f"--text_column takes one column, or two for a pair of texts; got {' '.join(cfg.text_column) or 'none'}")
    known = ["auto", *dict.fromkeys(sum(SCORES.values(), ()))]
    if cfg.best_metric not in known:
        fail(f"--best_metric {cfg.best_metric!r} is not a score train.py computes; choose one of {', '.join(known)}")
    if not 0 < cfg.threshold < 1:
        fail(f"--threshold must be between 0 and 1, got {cfg.threshold}")
    if not cfg.label_column:
        fail("--label_column takes one column, or several 0/1 columns (one label each)")
    if cfg.class_weights != ["balanced"] and not all(positive(w) for w in cfg.class_weights):
        fail(f"--class_weights takes balanced, or one positive number per class; got {' '.join(cfg.class_weights)}")
    check_tracker(cfg.report_to)
    for what, name in (("dataset", cfg.dataset_name), ("model", cfg.model_name)):
        if is_local(name) and not os.path.exists(name):
            fail(not_found(what, name, f"--{what}_name"))

    out = cfg.output_dir
    check_not_a_home_of_other_files(out)
    entries = os.listdir(out) if os.path.isdir(out) else []
    checkpoints = sorted((d for d in entries if is_checkpoint(d) and whole(os.path.join(out, d))),
                         key=lambda d: int(d.split("-")[1]))
    finished = "adapter" in entries or "metrics.json" in entries
    if os.path.exists(out) and not os.path.isdir(out):
        fail(f"--output_dir {out!r} is a file, not a folder")
    if cfg.resume and cfg.overwrite_output_dir:
        fail("--resume and --overwrite_output_dir contradict each other; pick one")
    if cfg.resume and not checkpoints:
        fail(f"--resume: {out!r} holds no checkpoint to continue from")
    if cfg.resume and finished:
        fail(f"--resume: the run in {out!r} has already finished")
    if not cfg.resume and not cfg.overwrite_output_dir and finished:
        fail(f"{out!r} already holds a finished run; pass --overwrite_output_dir to replace it, "
             f"or choose another --output_dir")
    if not cfg.resume and not cfg.overwrite_output_dir and checkpoints:
        fail(f"{out!r} holds an unfinished run; pass --resume to continue it or --overwrite_output_dir to start over")
    if cfg.overwrite_output_dir and (other := next((e for e in sorted(entries) if not is_run_file(e)), None)):
        fail(f"--overwrite_output_dir removes only a run's own files, and {out!r} also holds {other!r}; "
             f"move that away or choose another --output_dir")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        fail(f"--output_dir {out!r} cannot be written ({parent!r} is not a writable folder)")
    if not cfg.resume:
        return None, None
    return os.path.join(out, checkpoints[-1]), as_the_run_started(cfg)


# What train.py writes in OUTPUT_DIR, and all that --overwrite_output_dir may remove: checkpoint-N/ folders, these,
# and the ".NAME.partial" files a kill can leave beside them. runs/ is TensorBoard's; RUN_RECORD holds the settings
# and the precision a run started with, which --resume goes on with.
RUN_RECORD = "run.json"
RUN_FILES = ("adapter", "metrics.json", "training_curves.png", RUN_RECORD, "runs")


def is_checkpoint(name):
    return name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit()


def is_run_file(name):
    return is_checkpoint(name) or name in RUN_FILES or name in (f".{f}.partial" for f in RUN_FILES)


def remove_earlier_run(out):
    """Remove what an earlier run wrote in out, and nothing else (check_settings refused a folder with more)."""
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if is_run_file(name):
            remove(os.path.join(out, name))


def check_not_a_home_of_other_files(out):
    """The current folder, a folder above it, the home folder and one above it hold far more than a run: a run
    written there is mixed into them, and replacing it could remove them."""
    real = os.path.realpath(out)
    for place, what in ((os.getcwd(), "the current folder"), (os.path.expanduser("~"), "the home folder")):
        place = os.path.realpath(place)
        if place == real or place.startswith(real.rstrip(os.sep) + os.sep):
            fail(f"--output_dir {out!r} is {what}{'' if place == real else ' or a folder above it'}; a run needs a "
                 f"folder of its own, such as outputs/NAME")


# Settings that do not change what a run computes, so --resume may take new values of them.
FREE_ON_RESUME = ("output_dir", "overwrite_output_dir", "resume", "report_to", "eval_batch_size", "trust_remote_code")


def as_the_run_started(cfg):
    """The record of the run being resumed; flags that would make another run than its checkpoints' are refused.
    MIXED_PRECISION auto means the precision the run started in (measured again, it could come out otherwise)."""
    path = os.path.join(cfg.output_dir, RUN_RECORD)
    if not os.path.exists(path):
        if cfg.num_epochs > 1:  # its epochs were scored on the evaluation rows: no epoch to keep could be chosen
            fail(f"--resume: the run in {cfg.output_dir!r} was started by an earlier train.py, which chose the epoch "
                 f"kept on the evaluation rows; start over with --overwrite_output_dir")
        return None  # one epoch: nothing to choose; its precision is measured again, as it was then
    try:
        with open(path, encoding="utf-8") as f:
            started = json.load(f)
        was, now = started["settings"], vars(cfg)
        assert isinstance(was, dict) and started["precision"] in ("bf16", "fp16", "no")
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        fail(f"--resume: {path!r} is not the record train.py writes; start over with --overwrite_output_dir")
    if isinstance(was.get("label_column"), str):  # recorded before several label columns were possible
        was = was | {"label_column": [was["label_column"]]}
    changed = [k for k in now if k not in FREE_ON_RESUME and k in was and was[k] != now[k]
               and not (k == "mixed_precision" and now[k] in ("auto", started["precision"]))
               and not (k == "best_metric" and {was[k], now[k]} == {"auto", "accuracy"} and "problem_type" not in was)]
    if started.get("processes", processes()) != processes():
        fail(f"--resume: the run started with {started['processes']} process(es) and this one has {processes()}; the "
             f"Trainer would skip other rows than the run trained on: resume with {started['processes']}")
    if changed:
        fail("--resume goes on with the run's own settings, and these differ: "
             + ", ".join(f"--{k} {now[k]} (the run's: {was[k]})" for k in changed)
             + "; drop them, or start over with --overwrite_output_dir")
    return started


def whole(checkpoint):
    """The Trainer writes trainer_state.json last, so a checkpoint whose state reads is whole (a kill between its
    open and its write leaves it empty)."""
    try:
        with open(os.path.join(checkpoint, "trainer_state.json")) as f:
            return bool(json.load(f))
    except (OSError, ValueError):
        return False


def digest(rows):
    """A fingerprint of the drawn rows' texts and labels: the same name can hold other data by the time of a resume."""
    import hashlib
    h = hashlib.sha256()
    for name, r in rows.items():
        if r is not None:
            h.update(name.encode())
            for column in r.column_names:
                for chunk in r.with_format("arrow").data.column(column).chunks:
                    h.update(str(chunk.to_pylist()).encode())
    return h.hexdigest()


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


# ---- loading: Hub names or local copies -----------------------------------------------------------------

def is_local(name):
    return (os.path.exists(name) or name.startswith((".", "/", "~"))
            or name.endswith((".parquet", ".csv", ".json", ".jsonl")))


def not_found(what, name, flag):
    if is_local(name):
        return f"{what} {name!r} does not exist; set {flag} to a local folder"
    why = ("the Hugging Face Hub cannot be reached and it is not in the local cache"
           if os.environ.get("HF_HUB_OFFLINE") == "1" else "it could not be loaded from the Hugging Face Hub")
    return f"{what} {name!r}: {why}; set {flag} (or {flag[2:].upper()} in train.py) to a local copy"


def load_or_fail(what, name, flag, problem, load):
    """load(), or one line: the name is not there, or what the library said of it (its first line)."""
    try:
        return load()
    except Exception as e:  # the libraries raise a different type for each way a name can be wrong
        fail(not_found(what, name, flag) if not os.path.exists(name)
             else f"{what} {name!r} {problem}: {str(e).splitlines()[0]}")


# ---- data checks and labels -----------------------------------------------------------------------------

def check_data(data, cfg, subsets):
    """Refuse missing splits and columns, empty rows and subsets larger than their split, naming what is there."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if cfg.train_split not in data:
        fail(f"dataset {cfg.dataset_name!r} has no split {cfg.train_split!r} (it has {', '.join(data)})")
    splits = dict.fromkeys(split for split, _ in subsets.values() if split)
    for split in splits:
        columns = data[split].column_names
        for column, flag in [*((c, "--text_column") for c in cfg.text_column),
                             *((c, "--label_column") for c in cfg.label_column)]:
            if column not in columns:
                fail(f"dataset {cfg.dataset_name!r} has no {column!r} column (it has {', '.join(columns)}); set {flag}")
        table = data[split].with_format("arrow")
        empty = pc.is_null(table[cfg.label_column[0]])
        for column in cfg.label_column:
            label, kind, feature = table[column], str(table[column].type), data[split].features[column]
            if kind.startswith(("list", "large_list")):  # a list holding a null, a blank or a -1 id
                bad = set(pc.filter(pc.list_parent_indices(label), pc.fill_null(missing(
                    pc.list_flatten(label), getattr(feature, "feature", None)), True)).to_pylist())
                empty = pc.or_kleene(empty, pa.array([i in bad for i in range(len(label))]))
            empty = pc.or_kleene(empty, pc.is_null(label) if kind.startswith(("list", "large_list"))
                                 else missing(label, feature))
        for column in cfg.text_column:
            text = table[column]
            if not str(text.type).endswith("string"):
                fail(f"--text_column {column!r} holds {text.type}, not text")
            empty = pc.or_kleene(empty, pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_trim_whitespace(text), "")))
        if bad := pc.sum(empty).as_py():
            fail(f"{bad} rows of split {split!r} have empty or missing text or label; "
                 f"the first is row {pc.index(empty, True).as_py()} (counting from 0)")
    for split in splits:  # subsets drawn from one split share its rows
        flags = [(f"--{name}_size", size) for name, (s, size) in subsets.items() if s == split]
        if (total := sum(size for _, size in flags)) > len(data[split]):
            fail(f"{flags[0][0]} {total} is larger than the {split!r} split, which has {len(data[split])} rows"
                 if len(flags) == 1 else f"{' + '.join(f for f, _ in flags)} = {total}, but split {split!r} of "
                 f"{cfg.dataset_name!r} has {len(data[split])} rows")


def missing(values, feature):
    """Which values are no label: null, blank, not a finite number, or ClassLabel's -1 (as in SST-2's test split)."""
    import pyarrow.compute as pc
    from datasets import ClassLabel
    kind = str(values.type)
    return pc.or_kleene(pc.is_null(values), (
        pc.equal(pc.utf8_trim_whitespace(values), "") if kind.endswith("string")
        else pc.less(values, 0) if isinstance(feature, ClassLabel)
        else pc.invert(pc.is_finite(values)) if kind.startswith(("float", "double", "halffloat"))
        else pc.is_null(values)))


def draw(data, subsets, seed):
    """Seeded random rows for each subset. Subsets drawn from one split are consecutive slices of one shuffle of it,
    in the order given (training first), so no row is in two of them."""
    shuffled, taken, drawn = {}, {}, {}
    for name, (split, size) in subsets.items():
        if split is None:
            drawn[name] = None
            continue
        if split not in shuffled:
            shuffled[split], taken[split] = data[split].shuffle(seed=seed), 0
        drawn[name] = shuffled[split].select(range(taken[split], taken[split] + size))
        taken[split] += size
    return drawn


def as_text_and_target(rows, data, cfg, subsets):
    """The drawn rows as text and label, the label codec (textlora/labels.py: the kind of problem, the data's values,
    their ids and shown names), and in words why that kind was chosen."""
    import pyarrow.compute as pc
    from datasets import List, Sequence
    splits = dict.fromkeys(split for split, _ in subsets.values() if split)  # every split's values: the same names
    columns = cfg.label_column
    features = [rows["train"].features[c] for c in columns]
    listed = isinstance(features[0], (List, Sequence))

    def distinct(column):  # over the splits drawn from, a list's items counted one by one
        parts = [data[s].data.column(column) for s in splits]
        return list(set().union(*(pc.unique(pc.list_flatten(c) if listed else c).to_pylist() for c in parts)))

    try:
        codec, why = from_data(features, columns, distinct, cfg.problem_type, cfg.label_names)
    except Refused as e:
        fail(str(e))

    def target(batch):  # the label as the model's loss takes it
        return {"label": [codec.encode(cells) for cells in zip(*(batch[c] for c in columns))]}

    for name, r in rows.items():
        if r is not None:
            features = r.select_columns(cfg.text_column).features.copy()
            features["label"] = codec.feature()  # float32, or class ids: predict.py's codec.as_array() alike
            r = r.map(target, batched=True, remove_columns=[c for c in r.column_names if c not in cfg.text_column],
                      features=features, desc=f"labels {name}")
            rows[name] = r.rename_columns(dict(zip(cfg.text_column, text_columns(cfg))))
    if codec.problem == SINGLE and len(set(rows["train"]["label"])) < 2:
        fail(f"all {cfg.train_size} training rows drawn have the label {codec.names[rows['train'][0]['label']]!r}: "
             f"a classifier needs at least two classes; check --label_column, or draw more rows (--train_size)")
    return rows, codec, why


def best_metric(cfg, problem, labels):
    """BEST_METRIC for this problem: auto is its headline score; one of another problem's scores is refused."""
    if cfg.best_metric == "auto":
        return SCORES[problem][0]
    if cfg.best_metric in ("precision", "recall", "f1") and problem == SINGLE and len(labels) != 2:
        fail(f"--best_metric {cfg.best_metric} is label 1's score, for two classes; with {len(labels)} use macro_"
             f"{cfg.best_metric}")
    if cfg.best_metric not in SCORES[problem]:
        fail(f"--best_metric {cfg.best_metric!r} is not a score of {PROBLEM_NAMES[problem]}; choose one of "
             f"{', '.join(SCORES[problem])}")
    return cfg.best_metric


def text_columns(cfg):
    """What the text columns are called once drawn: text, and text_pair for the second of a pair."""
    return ["text", "text_pair"][:len(cfg.text_column)]


def loss_weights(cfg, train_rows, labels, problem):
    """CLASS_WEIGHTS as one number per class, or per label with several labels per text (the weight of its positive
    rows). balanced: by the inverse of a class's share of the drawn training rows (a class with a tenth of the rows
    weighs ten times more), or a label's negative rows over its positive ones. None when every class weighs the same."""
    import numpy as np
    if not cfg.class_weights:
        return None
    if problem == REGRESSION:
        fail("--class_weights weigh classes or labels; a number per text (regression) has none")
    if cfg.class_weights == ["balanced"]:
        if problem == MULTI:
            positives = np.array(train_rows["label"]).sum(0)
            return ((len(train_rows) - positives) / np.maximum(positives, 1)).tolist()
        counts = np.bincount(train_rows["label"], minlength=len(labels))
        return (len(train_rows) / (len(labels) * np.maximum(counts, 1))).tolist()
    if len(cfg.class_weights) != len(labels):
        fail(f"--class_weights has {len(cfg.class_weights)} numbers for {len(labels)} "
             f"{'labels' if problem == MULTI else 'classes'} ({', '.join(labels)})")
    return [float(w) for w in cfg.class_weights]


def weighted_loss(weights, problem):
    """The loss with a weight per class (cross-entropy) or per label's positive rows (binary cross-entropy), for the
    Trainer's compute_loss_func."""
    import torch
    weight = torch.tensor(weights)  # built once, not at every step; .to() is free when the logits are on the CPU

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        if problem == MULTI:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(),
                                                                        pos_weight=weight.to(logits.device))
        return torch.nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device))
    return loss


def positive(text):
    try:
        return float(text) > 0
    except ValueError:
        return False


def check_tracker(name):
    """REPORT_TO: a tracker whose package is missing is refused now, not after the data and the model are loaded."""
    import importlib.util
    packages = {"tensorboard": ["tensorboard", "tensorboardX"], "azure_ml": ["azureml"]}.get(name, [name])
    if name not in ("none", "all") and not any(importlib.util.find_spec(p) for p in packages):
        fail(f"--report_to {name}: its package is not installed; pip install {packages[0]}")


def check_target_modules(model, cfg):
    """TARGET_MODULES are names of the model's linear layers (GPT-2's Conv1D are linear layers too), or peft's
    all-linear."""
    import torch
    from transformers.pytorch_utils import Conv1D
    linear = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))})
    if cfg.target_modules == ["all-linear"]:
        return
    if missing := [t for t in cfg.target_modules if t not in linear]:
        fail(f"--target_modules {' '.join(missing)} match nothing in {cfg.model_name!r}; "
             f"its linear layers are: {' '.join(linear)} (or all-linear)")


def give_a_padding_token(tokenizer, config, cfg):
    """A batch of texts of several lengths is padded, and a decoder's classifier reads the last token before the
    padding: a tokenizer without a padding token pads with its end-of-text token, and the model is told which (also
    where its config named another). Returns whether the model's padding token is not its base config's."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            fail(f"model {cfg.model_name!r}: its tokenizer has no padding token and no end-of-text token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    base_pad, config.pad_token_id = config.pad_token_id, tokenizer.pad_token_id
    return base_pad != config.pad_token_id  # the base config says otherwise: whoever loads the adapter must be told


# ---- processes and devices --------------------------------------------------------------------------------

def rank_zero():
    """Rank 0 under a launcher, or the only process; readable before the processes have joined."""
    return os.environ.get("RANK", "0") == "0"


def device_type():
    """A CUDA GPU, else Apple's GPU (MPS), else the CPU."""
    import torch
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def processes():
    """How many processes train together (WORLD_SIZE under a launcher), readable before they have joined."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank_zero():
    """The first process on this machine (LOCAL_RANK 0), or the only process."""
    return os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) == "0"


@contextlib.contextmanager
def this_machine_first():
    """Each machine's first process (local rank 0; on one machine, rank 0) runs the block first; under torchrun or
    accelerate launch the other processes wait at its start and run it after. So a bad input is said before the
    others start, and no two processes of a machine write its datasets cache at once (each machine has its own).
    The first process joins the others only at the block's end: it checks the flags and the data before torch is
    even imported. If it stops (and says why), the others' wait fails and they exit quietly."""
    if local_rank_zero():
        yield
        join_processes()
    else:
        try:
            join_processes()
        except RuntimeError:
            sys.exit(2)
        yield


def join_processes():
    """Under a launcher: join the process group (gloo on a CPU, nccl on CUDA) and wait for every process."""
    from accelerate import PartialState
    PartialState(cpu=device_type() == "cpu").wait_for_everyone()


def leave_processes():
    """Under a launcher, all processes leave the process group together, once the work that needs it is done. A
    process that exits with the group still open can abort in its communication threads at the interpreter's
    teardown ("terminate called without an active exception"), failing a finished run."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def stop_cleanly_on_signals(out):
    """Ctrl-C or SIGTERM (a scheduler, `kill`) ends the run with a message; the last whole checkpoint stays."""
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        if rank_zero():
            print(f"\ninterrupted; run again with --resume (and the same flags) to continue from the last checkpoint "
                  f"in {out}", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, before)


# ---- precision ---------------------------------------------------------------------------------------------

def choose_precision(asked, device, main_process):
    """bf16, fp16 or no (fp32), and on a CPU with auto the matmul speeds it was chosen by."""
    import torch
    from accelerate.utils import broadcast_object_list
    if asked != "auto":
        return asked, None
    if device == "cuda":  # bf16 where the chip computes it (compute capability 8.0: A100, L4, RTX 30xx and newer);
        # a T4 or V100 would emulate it, slowly, though torch.cuda.is_bf16_supported() says yes. AMD GPUs (ROCm)
        # report their architecture instead: bf16 from the MI200 (gfx90a) and RDNA3 (gfx11) on.
        if torch.version.hip:
            arch = torch.cuda.get_device_properties(0).gcnArchName
            return ("bf16" if arch.startswith(("gfx90a", "gfx94", "gfx95", "gfx11", "gfx12")) else "fp16"), None
        return ("bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"), None
    if device == "mps":
        return "no", None  # autocast on Apple's GPU is not measured here (no Mac)
    # bf16 pays only where the CPU multiplies bf16 faster than fp32 (AMX, some AVX512-BF16 chips); elsewhere it is
    # slower, and far slower where it is emulated. So rank 0 measures, and every process gets the same answer.
    speed = [{"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)} if main_process else None]
    broadcast_object_list(speed)
    return ("bf16" if speed[0]["bf16"] > 1.2 * speed[0]["fp32"] else "no"), speed[0]  # 1.2: past a short timing's noise


def matmul_gflops(dtype, n=512, seconds=0.05):
    """How fast this CPU multiplies n x n matrices in dtype: one untimed product, then as many as fit in `seconds`."""
    import torch
    a = torch.randn(n, n).to(dtype)
    a @ a
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        a @ a
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def eval_batch_size(device, precision):
    """64 on a GPU. On a CPU, 4, except in bf16 on one with AMX tiles, whose kernels fill up only on bigger batches:
    the rule fits every kind of CPU measured so far (bench/README.md)."""
    import torch
    if device != "cpu":
        return 64
    return 16 if precision == "bf16" and torch.cpu._is_amx_tile_supported() else 4


def precision_text(precision, speed):
    text = "fp32" if precision == "no" else precision
    if speed:
        chosen, other = ("bf16", "fp32") if precision == "bf16" else ("fp32", "bf16")
        text += f" (matmul {speed[chosen]:.3g} vs {speed[other]:.3g} GFLOP/s in {other})"
    return text


# ---- scores and reports -------------------------------------------------------------------------------------

# ---- the three kinds of problem: one class per text, several labels per text, a number per text ---------------

# The scores of each, its headline (BEST_METRIC's auto) first; f1, precision and recall are label 1's, for two classes.
SCORES = {SINGLE: ("accuracy", "macro_f1", "macro_precision", "macro_recall", "f1", "precision", "recall", "loss"),
          MULTI: ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "macro_precision", "macro_recall",
                  "exact_match", "loss"),
          REGRESSION: ("rmse", "mae", "r2", "pearson", "spearman", "loss")}
LOWER_IS_BETTER = ("loss", "rmse", "mae")


class Scores:
    """compute_metrics for the Trainer: the scalar scores of a prediction (all that trackers take). It keeps the last
    prediction, whose full report (per class and the confusion matrix, or per label) is that of the kept adapter on
    the evaluation rows."""

    def __init__(self, problem, labels, threshold):
        self.problem, self.labels, self.threshold, self.last = problem, labels, threshold, None

    def __call__(self, prediction):
        self.last = prediction
        if self.problem == SINGLE:
            return scores(self.confusion())
        if self.problem == MULTI:
            return label_scores(*self.tags())
        return number_scores(*self.numbers())

    def confusion(self):
        return confusion_matrix(self.last.label_ids, self.last.predictions.argmax(-1), len(self.labels))

    def tags(self):
        """True and predicted labels, 0/1 per text and label: a label is predicted where its probability passes the
        threshold."""
        import numpy as np
        probability = 1 / (1 + np.exp(-self.last.predictions.astype(np.float64)))
        return self.last.label_ids > 0.5, probability > self.threshold

    def numbers(self):
        return self.last.label_ids.reshape(-1).astype(float), self.last.predictions.reshape(-1).astype(float)

    def report(self):
        if self.problem == SINGLE:
            confusion = self.confusion()
            return {"per_class": per_class(confusion, self.labels),
                    "confusion_matrix": {"labels": self.labels, "rows_true_columns_predicted": confusion.tolist()}}
        if self.problem == MULTI:
            return {"per_label": per_label(*self.tags(), self.labels), "threshold": self.threshold}
        return {}


def label_scores(true, predicted):
    """Several labels per text: micro scores (every text-label pair counts once), macro (the mean over labels), and
    the share of texts whose labels are all exactly right."""
    counts = label_counts(true, predicted)
    precision, recall, f1 = pr_f1(*counts)
    micro = [float(v) for v in pr_f1(*(c.sum() for c in counts))]
    return {"micro_f1": micro[2], "macro_f1": float(f1.mean()), "micro_precision": micro[0], "micro_recall": micro[1],
            "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
            "exact_match": float((true == predicted).all(1).mean())}


def label_counts(true, predicted):
    """Per label: texts given it rightly, given it wrongly, and missing it (true and predicted: 0/1 per text)."""
    return (true & predicted).sum(0), (~true & predicted).sum(0), (true & ~predicted).sum(0)


def pr_f1(tp, fp, fn):
    import numpy as np
    precision, recall = tp / np.maximum(tp + fp, 1), tp / np.maximum(tp + fn, 1)
    return precision, recall, 2 * precision * recall / np.maximum(precision + recall, 1e-12)


def per_label(true, predicted, labels):
    return by_name(labels, *pr_f1(*label_counts(true, predicted)), true.sum(0))


def number_scores(true, predicted):
    """A number per text: root mean squared and mean absolute error, R² (1: all the variance explained, 0: no better
    than the mean), and the Pearson and Spearman (rank) correlations."""
    import numpy as np
    error = predicted - true

    def correlation(a, b):
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0

    return {"rmse": float(np.sqrt((error ** 2).mean())), "mae": float(np.abs(error).mean()),
            "r2": float(1 - (error ** 2).sum() / spread) if (spread := ((true - true.mean()) ** 2).sum()) > 0
            else float((error == 0).all()),  # one true value for all: 1 if each is hit exactly, else 0
            "pearson": correlation(true, predicted), "spearman": correlation(ranks(true), ranks(predicted))}


def ranks(values):
    """Ranks from 1, ties sharing their mean rank (as Spearman's correlation takes them)."""
    import numpy as np
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values))
    rank[order] = np.arange(1, len(values) + 1)
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=rank) / counts)[group]


def confusion_matrix(true, predicted, n):
    """Counts of (true class, predicted class): rows true, columns predicted."""
    import numpy as np
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (np.asarray(true), np.asarray(predicted)), 1)
    return confusion


def precision_recall_f1(confusion):
    """Per class: of the rows predicted as it, the share right; of the rows truly it, the share found; their mean."""
    import numpy as np
    hits = np.diag(confusion)
    return pr_f1(hits, confusion.sum(0) - hits, confusion.sum(1) - hits)


def scores(confusion):
    """Accuracy and macro precision, recall and F1; with two classes also label 1's (the positive one)."""
    precision, recall, f1 = precision_recall_f1(confusion)
    result = {"accuracy": float(confusion.trace() / confusion.sum()), "macro_precision": float(precision.mean()),
              "macro_recall": float(recall.mean()), "macro_f1": float(f1.mean())}
    if len(confusion) == 2:
        (tn, fp), (fn, tp) = confusion.tolist()
        result |= {"precision": float(precision[1]), "recall": float(recall[1]), "f1": float(f1[1]),
                   "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    return result


def per_class(confusion, labels):
    return by_name(labels, *precision_recall_f1(confusion), confusion.sum(1))


def by_name(labels, precision, recall, f1, support):
    """Per-class (or per-label) scores as metrics.json shows them: by name."""
    return {name: {"precision": p, "recall": r, "f1": f, "support": s} for name, p, r, f, s in
            zip(labels, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist())}


def epoch_table(epochs, losses, prefix):
    """Per epoch: the scores on the rows that chose the epoch kept, and the mean training loss logged during it."""
    import numpy as np
    return [{"epoch": round(e["epoch"]), "scored_on": "validation" if "validation" in prefix else "evaluation",
             **{k[len(prefix):]: v for k, v in e.items()
                if k.startswith(prefix) and not k.endswith(("runtime", "per_second"))},
             "train_loss": float(np.mean([h["loss"] for h in losses if e["epoch"] - 1 < h["epoch"] <= e["epoch"]]
                                         or [np.nan]))} for e in epochs]


def rows_text(cfg, subsets):
    """Which rows did what, in words, for metrics.json."""
    train, (eval_split, _), (validation_split, validation_size) = subsets["train"], subsets["eval"], \
        subsets["validation"]
    return {"trained_on": f"{cfg.train_size} rows of {train[0]!r}",
            "epoch_kept_chosen_on": f"{validation_size} rows of {validation_split!r}, none trained on or reported"
            if validation_split else "nothing to choose: one epoch",
            "scores_reported_on": f"{cfg.eval_size} rows of {eval_split!r}, none trained on"}


def adapter_facts(cfg, codec, precision, metrics):
    """What predict.py needs to label texts as this run evaluated them: the columns, the labels (the data's values,
    ids and shown names), the length, the precision, and the padding token a decoder's base config lacks."""
    return {"text_column": cfg.text_column, "labels": codec.names, "problem_type": codec.problem,
            "label_codec": codec.to_json(),
            "label_column": cfg.label_column[0] if len(cfg.label_column) == 1 else cfg.label_column,
            "threshold": cfg.threshold, "max_length": metrics["max_length"], "mixed_precision": cfg.mixed_precision,
            "evaluated_in": precision, "pad_token_id": metrics["pad_token_id_added"]}


def within_reach(max_length, config, tokenizer):
    """MAX_LENGTH, lowered to what the model takes: its position embeddings, and its tokenizer's limit where it has
    one (RoBERTa's embeddings have 514 positions and take 512 tokens)."""
    reserved = reserved_positions(config)
    limits = [getattr(config, key, None) and getattr(config, key) - reserved
              for key in ("max_position_embeddings", "n_positions")]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)  # none: 1e30
    return min([max_length, *(n for n in limits if n)])


def reserved_positions(config):
    """Encoders in RoBERTa's style (RoBERTa, XLM-R, CamemBERT, ...) number positions from padding_idx + 1: that
    many of their positions never hold a token. They are the models whose code has create_position_ids_from_input_ids."""
    import importlib
    import inspect
    name = str(getattr(config, "model_type", "")).replace("-", "_")
    try:
        module = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
    except ImportError:  # remote code, or no such module: nothing known to reserve
        return 0
    offset = hasattr(module, "create_position_ids_from_input_ids") or any(
        hasattr(c, "create_position_ids_from_input_ids") for _, c in inspect.getmembers(module, inspect.isclass))
    return (config.pad_token_id or 0) + 1 if offset else 0


def versions():
    import peft
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def data_line(cfg, subsets, codec, why, class_weights):
    (train_split, _), (eval_split, _), (validation_split, validation_size) = subsets.values()
    labels, shown = codec.names, codec.shown_classes()
    source = repr(eval_split) if eval_split != train_split else f"{eval_split!r} too, without overlap"
    if eval_split != cfg.eval_split:
        also = " or 'validation'" if eval_split != "validation" else ""
        source += f" (there is no {cfg.eval_split!r}{also} split)"
    chooser = repr(validation_split) if validation_split != train_split else f"{train_split!r} (no overlap)"
    return (f"data: {cfg.train_size} rows from {train_split!r} for training, {cfg.eval_size} from {source} for "
            f"evaluation" + (f", {validation_size} from {chooser} to choose the epoch kept" if validation_split
                             else "") + "; " + {SINGLE: f"{len(labels)} classes: {', '.join(shown)}",
                                                MULTI: f"{len(labels)} labels, several per text: {', '.join(shown)}",
                                                REGRESSION: f"a number per text: {labels[0]}"}[codec.problem]
            + f" (column {' '.join(map(repr, cfg.label_column))}: {why})"
            + (f"; pairs of texts from {' and '.join(cfg.text_column)}" if len(cfg.text_column) == 2 else "")
            + (f"; loss weights {', '.join(f'{w:.3g}' for w in class_weights)}" if class_weights else ""))


def kept_text(metrics):
    """Which epoch's adapter was kept and why, beside the last epoch's score; nothing to say after one epoch."""
    kept = metrics["kept_epoch"]
    if len(metrics["epochs"]) == 1:
        return ""
    return (f"; epoch {kept['epoch']} of {kept['last_epoch']} kept, best by {kept['by']} on the validation rows "
            f"({kept['score']:.4f}; last epoch {kept['last_score']:.4f})")


def model_line(model, cfg, head, labels, loading, max_length):
    trainable, total = model.get_nb_trainable_parameters()
    saved = sorted({saved_shape[0] for name, saved_shape, _ in loading["mismatched_keys"]
                    if name.split(".")[0] in head and name.endswith("weight")})  # the head's outputs, as saved
    lora = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and "modules_to_save" not in n]
    found = sorted({n.split(".")[-1] for n in lora})
    return (f"model: LoRA on {len(lora)} layers ({', '.join(found)}) + head {', '.join(head)} trained in full: "
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


def load_code(metrics, adapter_dir):
    labels, pad = metrics["labels"], metrics["pad_token_id_added"]
    return (f"model = AutoPeftModelForSequenceClassification.from_pretrained(\"{adapter_dir}\", "
            f"num_labels={len(labels)}, id2label={dict(enumerate(labels))}, ignore_mismatched_sizes=True"
            + (f", problem_type=\"{metrics['problem_type']}\"" if metrics["problem_type"] != SINGLE else "")
            + (f", pad_token_id={pad})" if pad is not None else ")"))


def model_card(cfg, metrics, head, precision, adapter_dir):
    base, labels, data = metrics["config"]["base_model"], metrics["labels"], metrics["data"]
    return f"""---
base_model: {base}
library_name: peft
pipeline_tag: text-classification
---
# LoRA adapter: {os.path.basename(base.rstrip('/'))} for text classification ({' / '.join(labels)}: \
{PROBLEM_NAMES[metrics['problem_type']]})

- Base model: `{base}`
- Data: `{cfg.dataset_name}`, {cfg.train_size} texts from `{data['train_split']}` and {cfg.eval_size} from \
`{data['eval_split']}`, drawn with seed {cfg.seed}, truncated to {metrics['max_length']} tokens
- LoRA: r={cfg.lora_r}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, target modules {cfg.target_modules}; \
trained head: {head}
- Training: learning rate {cfg.learning_rate}, batch size {cfg.batch_size}, {cfg.num_epochs} epoch(s), {precision} \
on {metrics['device']}
- Evaluation: {headline_text(metrics)} on {cfg.eval_size} texts\
{kept_text(metrics)}
- Text: {' and '.join(f'`{c}`' for c in cfg.text_column)}{' (a pair)' if len(cfg.text_column) == 2 else ''}; \
class loss weights: {metrics['class_weights'] or 'none'}

Labels: {', '.join(f'{i} = {name}' for i, name in enumerate(labels))} (also in labels.json)\
{f"; each is given where its probability passes {cfg.threshold}" if metrics['problem_type'] == MULTI else ""}.

```python
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
{load_code(metrics, adapter_dir)}
tokenizer = AutoTokenizer.from_pretrained("{adapter_dir}")
```
"""


def save_curves(path, metrics, losses, scorer):
    """Training loss per step, the headline score per epoch, and the kept adapter on the evaluation rows: its
    confusion matrix, its F1 per label, or its predictions against the true numbers."""
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: no screen, no window, nothing global to close
    epochs, labels, headline = metrics["epochs"], metrics["labels"], metrics["headline"]
    fig = Figure(figsize=(15, 4.5))
    a, b, c = fig.subplots(1, 3)
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
    predicted = [codec.shown(p) for p in decided(logits, problem, cfg.threshold)]
    true = [codec.shown(label) for label in examples["label"]]
    width = max(map(len, predicted + true))
    data = metrics["data"]
    where = (f"{data['eval_split']!r}" if data["eval_split"] != data["train_split"]
             else f"{data['eval_split']!r} held out (none trained on)")
    print(f"\n{'=' * 72}\ndone in {metrics['wall_time_s'] / 60:.1f} min on {metrics['device']}: "
          f"{headline_text(metrics)} on {cfg.eval_size} rows of {where}{kept_text(metrics)}")
    for text, t, p in zip(texts, true, predicted):
        verdict = "     " if problem == REGRESSION else "ok   " if p == t else "wrong"
        print(f"  {verdict} predicted {p:<{width}} true {t:<{width}} "
              f"\"{shortened(' | '.join(text.values()) if pairs else text)}\"")
    print(f"adapter:  {adapter_dir}/\nmetrics:  {cfg.output_dir}/metrics.json, {cfg.output_dir}/training_curves.png\n"
          f"load it, with its label names:\n  from peft import AutoPeftModelForSequenceClassification\n"
          f"  {load_code(metrics, adapter_dir)}\n"
          f"or predict: {predict_example(texts[0], adapter_dir)}\n"
          f"{'=' * 72}")


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


# ---- kill-safe writes -----------------------------------------------------------------------------------------

def write_atomically(path, write):
    """Write beside the target, then rename: a kill at any moment leaves the old state or the new, never half."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    remove(tmp)  # left behind by a run killed while writing
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        remove(tmp)


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def remove(path):
    if os.path.islink(path):  # the link goes, never what it points to
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


if __name__ == "__main__":
    go_offline_without_hub()
    try:
        main()
    except Refused as e:
        fail(str(e))
