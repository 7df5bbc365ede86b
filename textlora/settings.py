"""Settings and the run folder: train.py's settings block read as flags (or a settings file, flags over it), every
other TrainingArguments field a flag too, the checks made before anything heavy is imported, what a run leaves in
OUTPUT_DIR and what --overwrite_output_dir may remove, and what --resume goes on with."""
import json
import os

from . import fail, few_rows
from .files import remove, writable
from .labels import AS_THEY_ARE
from .machine import processes
from .scores import SCORES
from .search import FILES as SEARCH_FILES
from .search import STORAGE as SEARCH_STORAGE


# TrainingArguments fields that train.py sets from its own settings (or that a launcher sets, or that hold a secret),
# each with what governs it, said when one is given as a flag: every other field is a flag of its own, passed through.
EACH_EPOCH = "--num_epochs governs it (train.py evaluates and saves a checkpoint at each epoch's end)"
BEST = "--best_metric governs it (with more than one epoch, the epoch best at it on the validation rows is kept)"
GOVERNED_BY = {
    "output_dir": "--output_dir governs it", "learning_rate": "--learning_rate governs it",
    "seed": "--seed governs it", "report_to": "--report_to governs it",
    "per_device_train_batch_size": "--batch_size governs it",
    "per_device_eval_batch_size": "--eval_batch_size governs it",
    "num_train_epochs": "--num_epochs governs it", "bf16": "--mixed_precision governs it",
    "fp16": "--mixed_precision governs it",
    "use_cpu": "the device governs it (a GPU where there is one; CUDA_VISIBLE_DEVICES= for the CPU)",
    "dataloader_pin_memory": "the device governs it (pinned on a GPU)", "eval_strategy": EACH_EPOCH,
    "save_strategy": EACH_EPOCH, "load_best_model_at_end": BEST, "metric_for_best_model": BEST,
    "greater_is_better": BEST, "train_sampling_strategy": "--group_by_length and --min_epoch_rows govern it",
    "restore_callback_states_from_checkpoint": "--resume governs it", "resume_from_checkpoint": "--resume governs it",
    "label_names": "--label_column governs it",
    "dataloader_drop_last": "every evaluation row must be scored (a text's windows, each row once)",
    "batch_eval_metrics": "the scores are of all rows at once (scores.Scores)",
    "do_train": "it always trains", "do_eval": "it always evaluates",
    "do_predict": "it always scores the evaluation rows", "local_rank": "the launcher (torchrun, accelerate) sets it",
    "hub_token": "use HF_TOKEN or `hf auth login` (a secret is never a setting: run.json records every setting)"}
SET_BY_TRAIN_PY = tuple(GOVERNED_BY)
# What a run did to its folder, not what it computed: a run.json reused as a settings file must not do it again
# (replace the run it records, or look for a checkpoint in another --output_dir).
RUN_CONTROL = ("overwrite_output_dir", "resume")


def set_by_train_py(name):
    """One line for a Trainer field that train.py sets itself, naming what governs it."""
    return f"--{name} is a Trainer setting that train.py sets itself: {GOVERNED_BY[name]}"


def read_settings(script, namespace, args=None):
    """The UPPER_CASE constants of the script's settings block as flags (lower case): type from the default (or the
    annotation where it has one), help text from the constant's trailing comment, so adding a setting is one line.
    Every other TrainingArguments field is a flag too; those given are cfg.trainer. A first argument ending in .json
    is a settings file (run.json is one) that the flags after it override, as in Hugging Face's example scripts."""
    import ast
    import dataclasses
    import io
    import sys
    import tokenize
    import typing

    from transformers import HfArgumentParser
    source = open(script, encoding="utf-8").read()
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    fields, annotations = [], namespace.get("__annotations__", {})
    body = ast.parse(source).body
    for node in body[:next(i for i, n in enumerate(body) if isinstance(n, ast.FunctionDef))]:  # the settings block
        target = getattr(node, "target", None) or getattr(node, "targets", [None])[0]  # NAME: type = ... or NAME = ...
        if isinstance(target, ast.Name) and target.id.isupper():
            name, default = target.id, namespace[target.id]
            kind = annotations.get(name) or (list[type(default[0])] if isinstance(default, list) else type(default))
            meta = {"help": comments.get(node.end_lineno, "").replace("%", "%%")}
            # a plain default where it can be: HfArgumentParser reads a bool's default from it (the --no_ flags)
            fields.append((name.lower(), kind,
                           dataclasses.field(default_factory=lambda d=default: list(d), metadata=meta)
                           if isinstance(default, list) else dataclasses.field(default=default, metadata=meta)))
    ours = {name for name, _, _ in fields}
    settings_class = dataclasses.make_dataclass("Settings", fields)
    args = list(sys.argv[1:] if args is None else args)
    path = args.pop(0) if args and args[0].endswith(".json") else None
    values = settings_file(path) if path else {}
    if given := next((k for k in values if k in GOVERNED_BY and k not in ours), None):
        fail(f"settings file {path!r}: {set_by_train_py(given)}")
    flagged = [a.split("=")[0][2:] for a in args if a.startswith("--")]
    if given := next((f for f in flagged if f in GOVERNED_BY and f not in ours), None):
        fail(set_by_train_py(given))
    kinds = {name: kind for name, kind, _ in fields}
    if not ({"-h", "--help"} & set(args) or set(values) - ours):
        cfg, rest = parse(HfArgumentParser(settings_class), kinds, values, path, args)
        if not rest:
            cfg.trainer = {}
            return cfg  # no Trainer flag: TrainingArguments, which imports torch, is not needed to read these

    from transformers import TrainingArguments
    hints = typing.get_type_hints(TrainingArguments)
    knobs = [f for f in dataclasses.fields(TrainingArguments)
             if f.init and f.name not in SET_BY_TRAIN_PY and f.name not in ours]
    if unknown := sorted(set(values) - ours - {f.name for f in knobs}):
        fail(f"settings file: {', '.join(unknown)} {'is no setting' if len(unknown) == 1 else 'are no settings'} "
             f"of train.py (python train.py --help lists them)")
    trainer_fields = [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                                metadata={**f.metadata, "help": "Trainer: " + (
                                                                    f.metadata.get("help") or "").replace("%", "%%")}))
                      for f in knobs]
    parser = HfArgumentParser([settings_class, dataclasses.make_dataclass("TrainerSettings", trainer_fields)])
    defaults = vars(parser.parse_args_into_dataclasses([])[1])  # the Trainer's own, as the parser reads them
    cfg, trainer, rest = parse(parser, kinds | {f.name: hints[f.name] for f in knobs}, values, path, args)
    if rest:
        fail(f"{' '.join(rest)}: no such setting of train.py or the Trainer (python train.py --help lists them)")
    cfg.trainer = {k: v for k, v in vars(trainer).items() if v != defaults[k]}
    return cfg


def parse(parser, kinds, values, path, args):
    """The settings file's values and then the flags, through the one parser: a value in the file gets the type and
    the checks its flag gets (the file's values are written as the flags that give them), and a value that no flag
    could give (null where the setting has a value, a list for one value, text for a number) is refused by name."""
    def refuse(message):
        fail(message.replace("argument ", "", 1))
    flags, plain = [], {}
    for name, value in values.items():
        if value is None or value == []:  # null, or an empty list (CLASS_WEIGHTS'), which no flag's words give
            plain[name] = as_flag(name, value, kinds[name], path)
        else:
            flags += as_flag(name, value, kinds[name], path)
    parser.set_defaults(**plain)
    parser.error = lambda message: fail(f"settings file {path!r}: {message.replace('argument ', '', 1)}")
    *_, rest = parser.parse_args_into_dataclasses(flags, return_remaining_strings=True)
    assert not rest, rest  # every key was checked to be a setting
    parser.error = refuse  # argparse's usage and error, two lines, as the one line of every other refusal
    return parser.parse_args_into_dataclasses(flags + args, return_remaining_strings=True)


def as_flag(name, value, kind, path):
    """A settings file's value as the flag's words (a list for a list setting; one value there is a list of one, as
    the flag takes it); null where the setting may be None (None returned). A value of another JSON type is refused."""
    import enum
    import types
    import typing
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    allowed = [k for k in (typing.get_args(kind) if union else (kind,)) if k is not type(None)]
    bases = {typing.get_origin(k) or k for k in allowed}
    textual = str in bases or typing.Literal in bases or any(isinstance(k, type) and issubclass(k, enum.Enum)
                                                             for k in bases)
    shown = json.dumps(value)[:60]
    where = f"settings file {path!r}: {name}"
    if value is None:
        if type(None) not in typing.get_args(kind):
            fail(f"{where} is null; it takes {what(bases, textual)} (or leave it out for the default)")
        return None
    if isinstance(value, list):
        if list not in bases:
            fail(f"{where} takes one value ({what(bases, textual)}), not the list {shown}")
        if not all(isinstance(v, (str, int, float)) for v in value):
            fail(f"{where} takes a list of words or numbers, got {shown}")
        return [f"--{name}", *map(str, value)] if value else []
    if isinstance(value, dict):
        if dict not in bases:
            fail(f"{where} takes {what(bases, textual)}, not the object {shown}")
        return [f"--{name}", json.dumps(value)]
    if isinstance(value, bool) != (bool in bases) and not textual and list not in bases:
        fail(f"{where} takes {what(bases, textual)}, got {shown}")
    if isinstance(value, str) and not (textual or list in bases or dict in bases):
        fail(f"{where} takes {what(bases, textual)}, got the text {shown}")
    if not isinstance(value, str) and textual and not bases & {int, float, bool}:
        fail(f"{where} takes text, got {shown}")
    return [f"--{name}={str(value).lower() if isinstance(value, bool) else value}"]  # =: a value may start with -


def what(bases, textual):
    """A setting's type in words."""
    return ("true or false" if bool in bases else "a whole number" if int in bases and float not in bases
            else "a number" if float in bases else "a list" if list in bases else "text" if textual else "a value")


def settings_file(path):
    """A settings file's values: a JSON object of settings by their flag names, or a run's run.json (less what that
    run did to its folder: RUN_CONTROL)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"settings file {path!r} cannot be read: {getattr(e, 'strerror', None) or str(e).splitlines()[0]}")
    if isinstance(values, dict) and isinstance(values.get("settings"), dict):  # run.json: what a run started with
        values = {"min_epoch_rows": 0, "contrastive_stage": False} | {k: v for k, v in values["settings"].items()
                                                                      if k not in RUN_CONTROL}
    # A run recorded before MIN_EPOCH_ROWS (its run.json, or its search's best_settings.json, which holds every
    # setting and search_trials 0) passed over its rows once an epoch: so it does again.
    if isinstance(values, dict) and values.get("search_trials") == 0 and {"output_dir", "seed", "validation_size",
                                                                          "eval_batch_size"} <= set(values):
        values = {"min_epoch_rows": 0, "contrastive_stage": False} | values
    if not isinstance(values, dict):
        fail(f"settings file {path!r} holds no JSON object of settings")
    if not isinstance(values.get("trainer") or {}, dict):
        fail(f"settings file {path!r}: trainer holds Trainer settings by name, as an object")
    return {k: v for k, v in values.items() if k != "trainer"} | dict(values.get("trainer") or {})


def check_settings(cfg):
    """Refuse bad numbers and an output folder that a run must not touch. Returns the checkpoint to resume from and,
    when resuming, what the run recorded when it started (its settings and precision)."""
    for name in ("train_size", "eval_size", "validation_size", "batch_size", "eval_batch_size", "num_epochs",
                 "max_length", "lora_r", "early_stopping_patience"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            fail(f"--{name} must be at least 1, got {getattr(cfg, name)}")
    if not 0 <= cfg.min_epoch_rows <= few_rows.MOST_ROWS:
        fail(f"--min_epoch_rows must be from 0 (each epoch passes over the rows once) to {few_rows.MOST_ROWS:,}, got "
             f"{cfg.min_epoch_rows}")
    if cfg.search_trials < 0:
        fail(f"--search_trials must be 0 (no search) or more, got {cfg.search_trials}")
    if cfg.search_trials and (cfg.trainer.get("max_steps") or -1) > 0:
        fail(f"--max_steps {cfg.trainer['max_steps']} would train every trial as long, and the epochs the search "
             f"chooses would change nothing; drop one of --max_steps and --search_trials")
    for name in ("lora_dropout", "attention_dropout", "hidden_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            fail(f"--{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.label_names != [AS_THEY_ARE] and any("=" not in pair for pair in cfg.label_names):
        fail(f"--label_names takes data=shown pairs, such as neg=Negative, or {AS_THEY_ARE} to show the data's own "
             f"names; got {' '.join(cfg.label_names)}")
    if cfg.seed < 0:
        fail(f"--seed must be 0 or more, got {cfg.seed}")
    if cfg.seed >= 2**32:  # what torch and numpy take
        fail(f"--seed must be below 2**32, got {cfg.seed}")
    if not cfg.target_modules:
        fail("--target_modules takes one linear layer's name or more (or all-linear)")
    for name in ("learning_rate", "lora_alpha"):
        if not getattr(cfg, name) > 0:
            fail(f"--{name} must be more than 0, got {getattr(cfg, name)}")
    if not 1 <= len(cfg.text_column) <= 2:
        fail(f"--text_column takes one column, or two for a pair of texts; got {' '.join(cfg.text_column) or 'none'}")
    known = ["auto", *dict.fromkeys(sum(SCORES.values(), ()))]
    if cfg.best_metric not in known:
        fail(f"--best_metric {cfg.best_metric!r} is not a score train.py computes; choose one of {', '.join(known)}")
    if cfg.long_texts != "truncate" and len(cfg.text_column) == 2:
        fail(f"--long_texts {cfg.long_texts} reads one text column: a pair of texts is cut as the tokenizer cuts it "
             f"(the longer first); use --long_texts truncate")
    if cfg.threshold is not None and not 0 < cfg.threshold < 1:
        fail(f"--threshold must be between 0 and 1, got {cfg.threshold}")
    if not cfg.label_column:
        fail("--label_column takes one column, or several 0/1 columns (one label each)")
    if cfg.class_weights != ["balanced"] and not all(positive(w) for w in cfg.class_weights):
        fail(f"--class_weights takes balanced, or one positive number per class; got {' '.join(cfg.class_weights)}")
    check_tracker(cfg.report_to)
    if cfg.trainer:  # the Trainer's own flags, checked by TrainingArguments itself (it imports torch: only if given)
        from transformers import TrainingArguments
        try:
            TrainingArguments(output_dir=cfg.output_dir, **cfg.trainer)
        except (ValueError, TypeError, ImportError) as e:
            fail(f"{' '.join('--' + k for k in cfg.trainer)}: {str(e).splitlines()[0]}")
        # numbers TrainingArguments takes but the Trainer divides by, or that make no sense below 0
        for name, least in (("gradient_accumulation_steps", 1), ("eval_accumulation_steps", 1),
                            ("logging_steps", 1e-9), ("weight_decay", 0), ("max_grad_norm", 0), ("save_total_limit", 0),
                            ("dataloader_num_workers", 0), ("label_smoothing_factor", 0)):
            if cfg.trainer.get(name) is not None and not cfg.trainer[name] >= least:
                bound = f"at least {least}" if least >= 1 else "more than 0" if least else "0 or more"
                fail(f"--{name} must be {bound}, got {cfg.trainer[name]}")
    for what, name in (("dataset", cfg.dataset_name), ("model", cfg.model_name)):
        if is_local(name) and not os.path.exists(name):
            fail(not_found(what, name, f"--{what}_name"))

    out = cfg.output_dir
    check_not_a_home_of_other_files(out)
    entries = os.listdir(out) if os.path.isdir(out) else []
    checkpoints = sorted((d for d in entries if is_checkpoint(d) and whole(os.path.join(out, d))),
                         key=lambda d: int(d.split("-")[1]))
    finished = "adapter" in entries or "metrics.json" in entries
    searching = SEARCH_STORAGE in entries and not finished  # a search's trials, kept: --resume goes on from them
    if os.path.exists(out) and not os.path.isdir(out):
        fail(f"--output_dir {out!r} is a file, not a folder")
    if cfg.resume and cfg.overwrite_output_dir:
        fail("--resume and --overwrite_output_dir contradict each other; pick one")
    if cfg.resume and not checkpoints and not searching:
        fail(f"--resume: {out!r} holds no checkpoint to continue from")
    if cfg.resume and finished:
        fail(f"--resume: the run in {out!r} has already finished")
    if not cfg.resume and not cfg.overwrite_output_dir and finished:
        fail(f"{out!r} already holds a finished run; pass --overwrite_output_dir to replace it, "
             f"or choose another --output_dir")
    if not cfg.resume and not cfg.overwrite_output_dir and (checkpoints or searching):
        fail(f"{out!r} holds an unfinished run; pass --resume to continue it or --overwrite_output_dir to start over")
    if cfg.overwrite_output_dir and (other := next((e for e in sorted(entries)
                                                    if not is_run_file(e, os.path.join(out, e))), None)):
        fail(f"--overwrite_output_dir removes only a run's own files, and {out!r} also holds {other!r}; "
             f"move that away or choose another --output_dir")
    if not cfg.resume and not cfg.overwrite_output_dir and (
            mine := next((e for e in sorted(entries) if e in RUN_FILES), None)):  # a new run would write over it
        fail(f"{out!r} holds {mine!r}, which a run writes: pass --overwrite_output_dir to replace an earlier run's, "
             f"or choose another --output_dir")
    writable(out, "--output_dir", out)
    if not cfg.resume:
        return None, None
    return os.path.join(out, checkpoints[-1]) if checkpoints else None, as_the_run_started(cfg)


# What train.py writes in OUTPUT_DIR, and all that --overwrite_output_dir may remove: checkpoint-N/ folders, these,
# and the ".NAME.partial" files a kill can leave beside them. runs/ is TensorBoard's; RUN_RECORD holds the settings
# and the precision a run started with, which --resume goes on with.
RUN_RECORD = "run.json"


RUN_FILES = ("adapter", "metrics.json", "training_curves.png", "label_issues.csv", RUN_RECORD, "runs", *SEARCH_FILES)


def start_run(cfg, facts):
    """Rank 0, before training: an earlier run removed where asked (only its files), and run.json written with the
    settings and what else --resume goes on with (precision, drawn rows, processes)."""
    from .files import write_json
    if cfg.overwrite_output_dir:
        remove_earlier_run(cfg.output_dir)  # asked for: no old checkpoint mixes with the new ones
    os.makedirs(cfg.output_dir, exist_ok=True)
    write_json(os.path.join(cfg.output_dir, RUN_RECORD), {"settings": vars(cfg), **facts})


def is_checkpoint(name):
    return name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit()


def is_run_file(name, path=None):
    """Whether an entry of OUTPUT_DIR is a run's own: by its name and, where a user's could bear the same name, by
    what it holds (run.json train.py's record, runs/ TensorBoard's event files only)."""
    if not (is_checkpoint(name) or name in RUN_FILES or name in (f".{f}.partial" for f in RUN_FILES)):
        return False
    if path is None or os.path.islink(path):
        return True
    if name == RUN_RECORD:
        try:
            with open(path, encoding="utf-8") as f:
                return isinstance(json.load(f).get("settings"), dict)
        except (OSError, ValueError, AttributeError):
            return False
    if name == "runs":
        return all(f.startswith("events.out.tfevents.") for _, _, files in os.walk(path) for f in files)
    return True


def remove_earlier_run(out):
    """Remove what an earlier run wrote in out, and nothing else (check_settings refused a folder with more)."""
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if is_run_file(name, os.path.join(out, name)):
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
FREE_ON_RESUME = ("output_dir", "overwrite_output_dir", "resume", "report_to", "eval_batch_size", "trust_remote_code",
                  "disable_tqdm", "log_level", "log_level_replica", "logging_dir", "save_total_limit", "run_name",
                  "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers")


def as_the_run_started(cfg):
    """The record of the run being resumed; flags that would make another run than its checkpoints' are refused.
    MIXED_PRECISION auto means the precision the run started in (measured again, it could come out otherwise)."""
    path = os.path.join(cfg.output_dir, RUN_RECORD)
    if not os.path.exists(path):
        if cfg.num_epochs > 1:  # its epochs were scored on the evaluation rows: no epoch to keep could be chosen
            fail(f"--resume: the run in {cfg.output_dir!r} was started by an earlier train.py, which chose the epoch "
                 f"kept on the evaluation rows; start over with --overwrite_output_dir")
        cfg.min_epoch_rows = 0  # begun before MIN_EPOCH_ROWS too: each epoch passed over the rows once
        cfg.contrastive_stage = False  # and before the contrastive stage
        return None  # one epoch: nothing to choose; its precision is measured again, as it was then
    try:
        with open(path, encoding="utf-8") as f:
            started = json.load(f)
        was, now = started["settings"], vars(cfg)
        assert isinstance(was, dict) and started["precision"] in ("bf16", "fp16", "no")
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        fail(f"--resume: {path!r} is not the record train.py writes; start over with --overwrite_output_dir")
    was = {"long_texts": "truncate", "stride": None} | was  # runs begun before LONG_TEXTS cut their texts
    if "min_epoch_rows" not in was:  # begun before MIN_EPOCH_ROWS: each epoch passed over the rows once
        cfg.min_epoch_rows = 0
    if "contrastive_stage" not in was:  # begun before the stage: its head read the first token
        cfg.contrastive_stage = False
    if now.get("validation_size") is None and isinstance(was.get("validation_size"), int):
        cfg.validation_size = was["validation_size"]  # recorded by number (before None was the default): the same rows
    if isinstance(was.get("label_column"), str):  # recorded before several label columns were possible
        was = was | {"label_column": [was["label_column"]]}
    # the Trainer's own flags: one given then and not now (or now and not then) differs too
    knobs = set(was.get("trainer") or {}) | set(now.get("trainer") or {})
    missing = "not given (the Trainer's default)"
    was = {k: v for k, v in was.items() if k != "trainer"} | {k: (was.get("trainer") or {}).get(k, missing)
                                                              for k in knobs}
    now = {k: v for k, v in now.items() if k != "trainer"} | {k: now["trainer"].get(k, missing) for k in knobs}
    changed = [k for k in now if k not in FREE_ON_RESUME and k in was and was[k] != now[k]
               and not (k == "mixed_precision" and now[k] in ("auto", started["precision"]))
               and not (k == "best_metric" and {was[k], now[k]} == {"auto", "accuracy"} and "problem_type" not in was)]
    if started.get("processes", processes()) != processes():
        fail(f"--resume: the run started with {started['processes']} process(es) and this one has {processes()}; the "
             f"Trainer would skip other rows than the run trained on: resume with {started['processes']}")
    if changed:
        fail("--resume goes on with the run's own settings, and these differ: "
             + ", ".join(f"--{k} {now[k]} (the run's: {was[k]})" if now[k] != missing else
                         f"--{k} {now[k]}, the run's: {was[k]}" for k in changed)
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


def check_tracker(name):
    """REPORT_TO: a tracker whose package is missing is refused now, not after the data and the model are loaded.
    Hand-written: transformers' own check (transformers.integrations) imports torch, and this runs before it."""
    import importlib.util
    if not name.replace("_", "").isalnum():  # find_spec("") or of "a.b" would raise, or import a package's parent
        fail(f"--report_to takes a tracker's name (tensorboard, trackio, wandb, mlflow, ...) or none, got {name!r}")
    packages = {"tensorboard": ["tensorboard", "tensorboardX"], "azure_ml": ["azureml"]}.get(name, [name])
    if name not in ("none", "all") and not any(importlib.util.find_spec(p) for p in packages):
        fail(f"--report_to {name}: its package is not installed; pip install {packages[0]}")


def positive(text):
    try:
        return float(text) > 0
    except ValueError:
        return False


def is_local(name):
    return (os.path.exists(name) or name.startswith((".", "/", "~"))
            or name.endswith((".parquet", ".csv", ".tsv", ".json", ".jsonl")))


def not_found(what, name, flag):
    if is_local(name):
        return f"{what} {name!r} does not exist; set {flag} to a local folder"
    why = ("the Hugging Face Hub cannot be reached and it is not in the local cache"
           if os.environ.get("HF_HUB_OFFLINE") == "1" else "it could not be loaded from the Hugging Face Hub")
    return f"{what} {name!r}: {why}; set {flag} (or {flag[2:].upper()} in train.py) to a local copy"
