"""Fine-tune a text classifier with LoRA: DistilBERT on IMDB movie reviews, or your own data.

    python train.py                                   # the settings below
    python train.py --train_size 200 --eval_size 200  # any setting, as a flag in lower case (--help lists them)
    torchrun --nproc_per_node=2 train.py              # several processes (DDP), same flags

    python train.py settings.json --seed 1          # a settings file (run.json is one), flags over it
    python train.py --warmup_steps 0.1 --weight_decay 0.01  # any other TrainingArguments field is a flag too

Writes OUTPUT_DIR: checkpoint-*/ (one per epoch, what --resume continues from), adapter/ (the LoRA weights and the
trained head as safetensors, adapter_config.json, tokenizer, labels.json, training.json, a model card), run.json,
metrics.json and training_curves.png. The plumbing lives in textlora/, one module a concern; docs/reference.md has
every setting, file format and refusal.
"""
import os
import sys
import time
from typing import Literal

# the plumbing, one concern a module (textlora/__init__.py lists them); none imports torch until it is needed
from textlora import Refused, baseline, calibration, data, duplicates, few_rows, files, label_issues, machine, \
    models, pooling, reports, scores, search, settings
from textlora.hub import go_offline_without_hub
from textlora.labels import REGRESSION

# -----------------------------------------------------------------------------
# Every setting is also a flag, its name in lower case: --model_name, --train_size, ... (python train.py --help)
MODEL_NAME = "distilbert-base-uncased"  # base model: a Hub name or a local folder
DATASET_NAME = "stanfordnlp/imdb"       # a Hub name, a local folder, or one .parquet/.csv/.tsv/.jsonl file
TRAIN_SPLIT = "train"                   # split the training rows are drawn from
EVAL_SPLIT = "test"                     # split the evaluation rows come from (none such: validation, else TRAIN_SPLIT)
TEXT_COLUMN = ["text"]                  # column holding the text; two columns: a pair of texts, such as question answer
LABEL_COLUMN = ["label"]                # the class (name or id), a list of labels, or a number; or several 0/1 columns
PROBLEM_TYPE: Literal["auto", "single_label", "multi_label", "regression"] = "auto"  # auto: from LABEL_COLUMN's values
LABEL_NAMES = ["neg=Negative", "pos=Positive"]  # how to show the data's label names, as data=shown
TRAIN_SIZE = 1000                       # rows drawn at random (seeded) for training
EVAL_SIZE = 1000                        # rows drawn at random (seeded) for evaluation: the accuracy reported
VALIDATION_SIZE: int | None = None      # held out: choose the epoch kept, calibrate; None: 500, 1 epoch EVAL_SIZE/2
SEED = 42                               # subsets, new head and LoRA start, batch order: same seed, same run
MAX_LENGTH = 512                        # tokens per text; what becomes of a longer one is LONG_TEXTS
LONG_TEXTS: Literal["truncate", "head_tail", "windows"] = "truncate"  # cut; first and last tokens; windows over all
STRIDE: int | None = None               # windows: tokens a window shares with the next; None: MAX_LENGTH / 4
LORA_R = 4                              # LoRA rank
LORA_ALPHA = 32                         # LoRA scale
LORA_DROPOUT = 0.01                     # dropout on the LoRA input
TARGET_MODULES = ["q_lin"]              # linear layers that get LoRA: DistilBERT's query; left so, any model's query
LEARNING_RATE = 1e-3                    # peak learning rate (linear decay)
BATCH_SIZE = 4                          # training rows per step and process
NUM_EPOCHS = 1                          # epochs of training; evaluation and a checkpoint after each
CONTRASTIVE_STAGE = True                # fewer rows than MIN_EPOCH_ROWS: the head reads the mean, trained on pairs
MIN_EPOCH_ROWS = 1000                   # fewer rows: pairs first (SetFit), epochs of 128 a class (else this); 0: off
BEST_METRIC = "auto"                    # the epoch kept is the best at it; auto: accuracy, micro_f1 or rmse by problem
THRESHOLD: float | None = None          # several labels: a label is given past it; None: its best F1 on validation rows
BASELINE = True                         # TF-IDF + logistic regression (ridge for numbers) on the same rows, to compare
LABEL_ISSUES = True                     # rows whose label looks wrong (cleanlab), listed in OUTPUT_DIR/label_issues.csv
EARLY_STOPPING_PATIENCE: int | None = None  # stop after this many epochs without a better BEST_METRIC; None: off
SEARCH_TRIALS = 0                       # > 0: trials (Optuna, on validation rows) pick the 4 settings above from these
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


def tokenize(batch, indices, tokenizer, max_length, long_texts="truncate", stride=0):
    """How texts become tokens, for training, evaluation and predict.py alike: two text columns are a pair (the
    tokenizer's separator, the longer one truncated first); padding happens per batch. A text longer than max_length
    is cut (truncate), keeps its first quarter and last three quarters of max_length (head_tail, as Sun et al. 2019),
    or becomes overlapping windows of max_length tokens, stride tokens shared (windows: the tokenizer's overflow), each
    a row with its text's label and text_id, whose logits inference.per_text averages into the text's."""
    texts = [batch[c] for c in ("text", "text_pair") if c in batch]
    if long_texts == "windows":
        encoded = tokenizer(*texts, truncation=True, max_length=max_length, stride=stride,
                            return_overflowing_tokens=True)
        of = encoded.pop("overflow_to_sample_mapping")
    else:
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        of = list(range(len(encoded["input_ids"])))
    # only a text cut to max_length can be longer: those alone are tokenized whole, to count them (and cut them)
    cut = sorted({i for i, w in zip(of, encoded["input_ids"]) if len(w) >= max_length})
    whole = tokenizer(*([t[i] for i in cut] for t in texts), verbose=False) if cut else {"input_ids": []}
    tokens = dict(zip(cut, map(len, whole["input_ids"])))
    if long_texts == "head_tail":
        head, tail = max_length // 4, max_length - max_length // 4
        for k, i in enumerate(cut):
            if tokens[i] > max_length:
                for key in encoded.keys():
                    encoded[key][i] = whole[key][k][:head] + whole[key][k][tokens[i] - tail:]
    encoded["text_id"] = [indices[i] for i in of]
    encoded["tokens"] = [tokens.get(i, len(w)) for i, w in zip(of, encoded["input_ids"])]  # the text's whole length
    if "label" in batch:
        encoded["label"] = [batch["label"][i] for i in of]
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]  # batches of similar length, without a pass
    return encoded


def lora_model(cfg, base_name, config):
    """The base model in fp32 wrapped in LoRA, the new classification head trained in full: the run's, and each trial's
    in a search. Returns it, what loading it said, the head's names, and why LoRA went on the layers it did."""
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model

    from textlora import inference
    transformers.set_seed(cfg.seed)  # the new head and the LoRA matrices start from random values
    # A saved head with another number of classes (a model tuned for 2, data with 4) is replaced by a fresh one.
    model, loading = data.load_or_fail("model", cfg.model_name, "--model_name", "cannot be loaded",
                                       lambda: inference.load_model(base_name, config=config,
                                                                    ignore_mismatched_sizes=True,
                                                                    output_loading_info=True,
                                                                    trust_remote_code=cfg.trust_remote_code))
    targets, targets_why = models.target_modules(model, cfg)  # the seed's q_lin: each backbone's own query
    head = [n for n, m in model.named_children() if n != model.base_model_prefix and list(m.parameters())]
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                             lora_dropout=cfg.lora_dropout, target_modules=targets,
                                             modules_to_save=list(head)))  # a copy: peft appends to it
    if few_rows.stage_runs(cfg, config):  # few rows: the head reads the mean the contrastive stage trains
        pooling.mean_pooled(model)
    return model, loading, head, targets_why


def training_arguments(cfg, device, precision, keep_best, best, passes, **changed):
    """The Trainer's settings: the run's, and with `changed` each trial's in a search; passes: few_rows.passes()."""
    from transformers import TrainingArguments
    return TrainingArguments(**{
        "output_dir": cfg.output_dir,
        "learning_rate": cfg.learning_rate,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.eval_batch_size or machine.eval_batch_size(device, precision),
        "num_train_epochs": cfg.num_epochs,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        # about 25 points an epoch on the curve
        "logging_steps": max(1, -(-cfg.train_size * passes // cfg.batch_size) // 25),
        "load_best_model_at_end": keep_best,  # the best epoch's adapter is kept, chosen on validation rows
        "metric_for_best_model": ("validation_" if keep_best else "") + best,
        "greater_is_better": best not in scores.LOWER_IS_BETTER,
        "seed": cfg.seed,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "train_sampling_strategy": few_rows.sampling(cfg, passes),  # few rows: the order few_rows.repeated made
        "report_to": cfg.report_to,
        "use_cpu": device == "cpu",
        "dataloader_pin_memory": device == "cuda",
        "restore_callback_states_from_checkpoint": True,  # early stopping counts on across a resume
        **cfg.trainer,  # every other TrainingArguments field given as a flag: --weight_decay 0.01, ...
        **changed,
    })


def read_settings(args=None):
    """The settings above as flags: --train_size 200, ... (or args, a list of them)."""
    return settings.read_settings(__file__, globals(), args)


def main(args=None):
    cfg = read_settings(args)  # the constants above, with the flags given on the command line (or args)
    main_process = machine.rank_zero()  # rank 0 (or the only process) alone prints and writes results
    keep_best = cfg.num_epochs > 1  # the best epoch's adapter is kept, chosen on validation rows
    with machine.this_machine_first():  # under a launcher, each machine's first process checks and fills caches first
        resume_from, started = settings.check_settings(cfg)  # before anything heavy: a bad flag is refused at once

        # -- 1. data: seeded random subsets for training, evaluation and, with several epochs, validation ---
        # a search may choose several epochs: its validation rows are drawn as for several
        dataset, subsets = data.load(cfg, keep_best or cfg.search_trials > 0)  # checked: splits, columns, sizes
        keep_best = keep_best and subsets["validation"][0] is not None  # too few rows to hold back: the last epoch
        # the kind of problem is decided here, once, from the labels: one class, several labels, or a number per text
        picked, positions = data.draw(dataset, subsets, cfg.seed)  # positions: each row's place in its split
        rows, codec, why = data.as_text_and_target(picked, dataset, cfg, subsets)
        labels, problem = codec.names, codec.problem
        best = data.best_metric(cfg, problem, labels)
        class_weights = data.loss_weights(cfg, rows["train"], labels, problem)  # None: every class weighs the same
        drawn = data.digest(rows)  # --resume refuses data that changed under the same name
        if started and started.get("rows_digest", drawn) != drawn:
            raise Refused(f"--resume: the rows drawn from {cfg.dataset_name!r} are not the run's (the data changed "
                          f"since it started); start over with --overwrite_output_dir")
        # the same text (case and spacing aside) in the training and the evaluation rows inflates the score
        repeated = duplicates.count(rows)

        # -- 2. tokenize once, within the model's reach, with the fast tokenizer; padding happens per batch ---
        from transformers import AutoConfig, AutoTokenizer

        from textlora import inference
        # A local base model is recorded by absolute path, so the adapter loads from any working directory.
        base_name = os.path.abspath(cfg.model_name) if os.path.isdir(cfg.model_name) else cfg.model_name
        model_error, remote = ("model", cfg.model_name, "--model_name", "cannot be loaded"), cfg.trust_remote_code
        tokenizer = data.load_or_fail("model", cfg.model_name, "--model_name", "has no usable tokenizer",
                                      lambda: AutoTokenizer.from_pretrained(base_name, trust_remote_code=remote))
        config = data.load_or_fail(*model_error, lambda: AutoConfig.from_pretrained(
            base_name, num_labels=len(labels), id2label=dict(enumerate(labels)), problem_type=problem,
            label2id={n: i for i, n in enumerate(labels)}, trust_remote_code=remote))
        passes = few_rows.passes(cfg, config)  # few rows: each epoch passes over them several times
        if started and few_rows.stage_runs(cfg, config) and started.get("few_rows") != few_rows.RECIPE:
            raise Refused(f"--resume: the run in {cfg.output_dir!r} was started by an earlier train.py, whose recipe "
                          f"for few rows this one no longer has; start over with --overwrite_output_dir")
        max_length = models.within_reach(cfg.max_length, config, tokenizer)  # past its positions a model fails
        padding_added = models.give_a_padding_token(tokenizer, config, cfg)  # decoders (GPT-2, Llama, Qwen) lack one
        stride = models.window_stride(cfg, max_length, tokenizer)  # windows: tokens shared by neighbours
        tokenized = {name: inference.tokenized(r, tokenize, tokenizer, max_length, cfg.long_texts, stride, name)
                     for name, r in rows.items() if r is not None}
        long = {name: inference.long_texts(t, max_length) for name, t in tokenized.items()}  # said, never silent
        if main_process:
            print(reports.data_line(cfg, subsets, codec, why, class_weights, repeated["counts"], long, max_length,
                                    passes))

        # -- 3. the model, in fp32, wrapped in LoRA; the new classification head trains in full ------------------
        for keys, value in ((("attention_dropout", "attention_probs_dropout_prob"), cfg.attention_dropout),
                            (("dropout", "hidden_dropout_prob"), cfg.hidden_dropout)):  # DistilBERT's, BERT's names
            for key in keys:
                if hasattr(config, key):
                    setattr(config, key, value)
        model, loading, head, targets_why = lora_model(cfg, base_name, config)  # loaded (and cached) here first

    # -- 4. train, evaluating and saving a checkpoint at each epoch end ---------------------------------
    from transformers import EarlyStoppingCallback

    from textlora.inference import Trainer  # transformers' own, evaluating rows in the order given (sorted by length)
    device = machine.device_type()
    # a resumed run goes on in the precision it started in, not in one measured again
    precision, speed = (started["precision"], started["speed"]) if started else \
        machine.choose_precision(cfg.mixed_precision, device, main_process)
    # Rows are evaluated sorted by length, as predict.py labels them, so that both run the same batches.
    eval_rows = inference.by_length(tokenized["eval"])[0]
    validation_rows = inference.by_length(tokenized["validation"])[0] if tokenized.get("validation") is not None \
        else None
    scorer = scores.Scores(problem, labels, cfg.threshold or 0.5)
    trained_on = few_rows.repeated(tokenized["train"], cfg, passes)

    def trainer_of(args, scored_on, callbacks=(), **model):  # the run's Trainer, and each trial's in a search
        return Trainer(**model, args=args, train_dataset=trained_on, eval_dataset=scored_on,
                       data_collator=inference.PadWithin(tokenizer, limit=max_length, multiple=pad_to),
                       processing_class=tokenizer, compute_metrics=scorer,
                       compute_loss_func=data.weighted_loss(class_weights, problem) if class_weights else None,
                       callbacks=[reports.log_at_epoch_end(), *callbacks] + (
                           [EarlyStoppingCallback(cfg.early_stopping_patience)]
                           if args.load_best_model_at_end and cfg.early_stopping_patience else []))

    if main_process:
        settings.start_run(cfg, {"precision": precision, "speed": speed, "rows_digest": drawn,  # run.json: what
                                 "processes": machine.processes(), "few_rows": few_rows.RECIPE})  # --resume needs
    pad_to = inference.fit_to_the_chip(model, device, precision)  # and the head computes in fp32 in any precision
    searched = None
    if cfg.search_trials:  # the settings chosen on the validation rows alone; the evaluation rows are not given to it
        def fresh(settings_of_the_trial):  # a model of the trial's settings, built and fitted as the final run's
            built = lora_model(settings_of_the_trial, base_name, config)
            inference.fit_to_the_chip(built[0], device, precision)
            return built
        trials = search.trials_of(cfg, lambda chosen: fresh(chosen)[0], best, best not in scores.LOWER_IS_BETTER)
        each = training_arguments(cfg, device, precision, False, best, passes, **search.EACH_TRIAL)
        with machine.stop_cleanly_on_signals(cfg.output_dir):  # best_settings.json fixes what is chosen again
            cfg, searched = search.run(cfg, trainer_of(each, validation_rows, [trials], model_init=trials.model_init),
                                       trials, {"validation_size": subsets["validation"][1], "mixed_precision":
                                                precision, "eval_batch_size": each.per_device_eval_batch_size,
                                                "contrastive_stage": False})  # a search has none
        if main_process:
            print(search.line(searched))
            reports.extra("the search's plot", lambda: search.save_plot(os.path.join(cfg.output_dir, search.PLOT),
                                                                         searched))
        keep_best = cfg.num_epochs > 1
        model, loading, head, targets_why = fresh(cfg)  # the best trial's settings
    if main_process:
        print(reports.model_line(model, cfg, head, labels, loading, max_length, targets_why))
    # With one epoch there is nothing to choose: the evaluation rows are scored at its end, as they always were.
    args = training_arguments(cfg, device, precision, keep_best, best, passes)
    trainer = trainer_of(args, {"validation": validation_rows} if keep_best else eval_rows, model=model)

    if main_process:
        print(f"training on {args.device} in {machine.precision_text(precision, speed)}, {args.world_size} "
              f"process(es): {cfg.train_size} train / {cfg.eval_size} eval rows, {cfg.num_epochs} epoch(s)"
              + (f" of {passes} passes over the rows" if passes > 1 else "")
              + (f", but --max_steps {args.max_steps} decides how long" if args.max_steps > 0 else "")
              + (f", resuming from {resume_from} in the precision the run started in" if resume_from else ""))
    start = time.time()
    with machine.stop_cleanly_on_signals(cfg.output_dir):
        # few rows: the LoRA matrices first trained on pairs of rows, then the head's start fitted to what they give
        # (a checkpoint holds both: not again on --resume)
        rounds = few_rows.stage_rounds(cfg, config)
        head_start = "logistic regression" if rounds else "random"  # a resume's checkpoint holds what it was
        if rounds and not resume_from:
            if main_process:
                print(f"contrastive stage, before the epochs: {few_rows.stage_text(cfg, rounds)}")
            stage = few_rows.stage_arguments(args)
            few_rows.contrastive_stage(model, tokenized["train"], cfg, rounds, stage, trainer.data_collator)
            head_start = few_rows.head_from_features(model, tokenized["train"], stage, trainer.data_collator,
                                                     class_weights)
        result = trainer.train(resume_from_checkpoint=resume_from)
        # The kept adapter on the evaluation rows, scored once. predict, not evaluate: the trackers' runs ended with
        # the training, and a score logged now would open another.
        reported = trainer.predict(eval_rows, metric_key_prefix="eval").metrics \
            if keep_best or scorer.last is None else None
        # The probabilities calibrated on the validation rows: a temperature, and with several labels the thresholds
        held_out = inference.logits_of(trainer, tokenized["validation"]) \
            if tokenized.get("validation") is not None and problem != REGRESSION else None
        examples = range(min(3, cfg.eval_size))  # for the summary, through the one inference path (every process)
        example_logits = inference.logits_of(trainer, inference.texts(tokenized["eval"], examples))
    wall = time.time() - start
    machine.leave_processes()  # the work of the others is done; rank 0 writes the results alone
    if not main_process:
        return

    # -- 5. calibrate, compare with the baseline, and write the results (each whole or not at all, metrics.json last)
    # The extras (calibration, baseline, curves, summary) each end in one line if they fail: the adapter and its
    # scores, what the run is for, are written whatever they do.
    calibrated, report = reports.extra("the calibration", lambda: calibration.of_the_run(
        held_out, rows.get("validation"), scorer, cfg.threshold), otherwise=(None, scorer.report()))
    metrics = reports.metrics_of(cfg, trainer, result, reported, report, calibrated, codec, best, subsets,
                                 class_weights, wall, precision, speed, max_length,
                                 config.pad_token_id if padding_added else None, base_name, model, long, stride)
    metrics["head_start"] = head_start  # few rows: the head's last layer from a logistic regression after the stage
    if cfg.baseline:  # like for like: with several labels, at thresholds chosen as the adapter's were (or the same)
        tuned_on = rows["validation"] if calibrated and cfg.threshold is None else None  # the adapter's were tuned
        metrics["baseline"] = reports.extra("the baseline", lambda: baseline.score(
            rows["train"], rows["eval"], problem, labels, cfg.threshold or 0.5, tuned_on))
    metrics["duplicates"] = repeated["counts"]
    metrics["search"] = search.summary(searched) if searched else None  # searched: over what, what won
    if repeated["eval_rows"]:  # the headline again, on the evaluation rows no training row repeats
        metrics["eval_without_duplicates"] = reports.extra("the score without duplicates", lambda: duplicates.
                                                           scores_without(scorer, calibrated, repeated["eval_rows"],
                                                                          cfg.threshold))
    adapter_dir = os.path.join(cfg.output_dir, "adapter")
    card = reports.model_card(cfg, metrics, head, machine.precision_text(precision, speed), adapter_dir)

    def save_adapter(path):
        model.save_pretrained(path)  # safetensors: the LoRA matrices and the trained head
        tokenizer.save_pretrained(path)
        reports.save_adapter_files(path, cfg, codec, precision, metrics, card)  # card, labels.json, training.json

    files.write_atomically(adapter_dir, save_adapter)
    if cfg.label_issues:  # out-of-sample probabilities: the adapter's on rows it never trained on, else the baseline's
        metrics["label_issues"] = reports.extra("the label issues", lambda: label_issues.of_the_run(
            rows, positions, subsets, calibration.adapter_probabilities(scorer, held_out, calibrated),
            codec, calibration.thresholds_of(calibrated, cfg.threshold, labels), calibrated,
            os.path.join(cfg.output_dir, "label_issues.csv")))
    reports.extra("the training curves", lambda: files.write_atomically(
        os.path.join(cfg.output_dir, "training_curves.png"),
        lambda to: reports.save_curves(to, metrics, trainer.state.log_history, scorer)))
    files.write_json(os.path.join(cfg.output_dir, "metrics.json"), metrics)  # its presence marks a finished run

    # -- 6. summary: the score, three evaluation rows as the model now labels them, how to load it ----------
    reports.extra("the summary", lambda: reports.print_summary(cfg, metrics, codec, rows["eval"].select(examples),
                                                              example_logits, adapter_dir))
    if searched:
        print(f"the search's trials ({cfg.output_dir}/{search.RECORD}, {search.PLOT}; the final run's settings: "
              f"{cfg.output_dir}/{search.BEST_SETTINGS}):\n{search.table(searched)}")


def fail(message):
    """Bad input: one line on stderr and exit status 2, before anything is written."""
    print(f"train.py: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    go_offline_without_hub()
    with machine.no_teardown_under_a_launcher():
        try:
            main()
        except Refused as e:
            fail(str(e))
        except KeyboardInterrupt:  # while the data or the model loads (training's own Ctrl-C says more)
            print("\ntrain.py: interrupted before training started", file=sys.stderr)
            sys.exit(130)
