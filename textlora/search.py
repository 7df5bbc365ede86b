"""The settings search (SEARCH_TRIALS): trials through the Trainer's own hyperparameter_search with Optuna, each a
fresh LoRA model of the trial's settings (model_init, the PEFT maintainers' pattern in peft#914), scored on the
validation rows alone at each epoch's end, so that Optuna prunes a hopeless trial; the run's own settings are the first
trial. The trials are kept in Optuna's SQLite storage in OUTPUT_DIR, so that --resume goes on from the trials done.
What it leaves beside the run: search.json (every trial), best_settings.json (a settings file of the final run) and
search.png (the trials' curves)."""
import copy
import os

from .files import write_atomically, write_json

STORAGE, RECORD, BEST_SETTINGS, PLOT = "search.db", "search.json", "best_settings.json", "search.png"
FILES = (STORAGE, f"{STORAGE}-journal", RECORD, BEST_SETTINGS, PLOT)  # the journal: SQLite's, where a kill leaves it
STUDY = "train.py"
SEARCHED = ("learning_rate", "lora_r", "lora_alpha", "num_epochs")
# Each trial's Trainer: scored at each epoch's end, nothing saved (the final run, trained again with the best settings,
# saves its own checkpoints), no tracker run opened per trial.
EACH_TRIAL = {"save_strategy": "no", "load_best_model_at_end": False, "metric_for_best_model": None,
              "report_to": "none"}


def space(cfg):
    """What is searched: each range holds the run's own settings, the first trial."""
    return {"learning_rate": [min(1e-4, cfg.learning_rate), max(3e-3, cfg.learning_rate)],  # on a log scale
            "lora_r": sorted({2, 4, 8, 16, cfg.lora_r}), "lora_alpha": sorted({8, 16, 32, 64, cfg.lora_alpha}),
            "num_epochs": [1, max(4, cfg.num_epochs)]}


def suggest(trial, over):
    """A trial's settings by train.py's names. Optuna answers a second ask of a name with the first answer, so
    model_init (which runs first) and hp_space read the same values."""
    return {"learning_rate": trial.suggest_float("learning_rate", *over["learning_rate"], log=True),
            "lora_r": trial.suggest_categorical("lora_r", over["lora_r"]),
            "lora_alpha": trial.suggest_categorical("lora_alpha", over["lora_alpha"]),
            "num_epochs": trial.suggest_int("num_epochs", *over["num_epochs"])}


def own_settings(cfg):
    """The run's own values of the settings searched: its first trial."""
    return {name: getattr(cfg, name) for name in SEARCHED}


def with_settings(cfg, chosen):
    out = copy.copy(cfg)  # not dataclasses.replace: cfg.trainer is no field of it
    for name, value in chosen.items():
        setattr(out, name, value)
    return out


def trials_of(cfg, build, metric, greater):
    """The Trainer's model_init, hp_space and compute_objective, and a callback of its, sharing the trial under way:
    its validation scores by epoch (kept with the trial in Optuna's storage) and, as its objective, the score of the
    epoch the final run would keep: the best so far, and with EARLY_STOPPING_PATIENCE none after the run would have
    stopped (the trial stops there too)."""
    from transformers import TrainerCallback

    class Trials(TrainerCallback):
        def __init__(self):
            self.cfg, self.build, self.key, self.greater = cfg, build, f"eval_{metric}", greater
            self.over, self.trial, self.trainer = space(cfg), None, None
            self.scores, self.kept, self.since = [], None, 0

        def model_init(self, trial=None):
            import transformers
            self.release()  # the last trial's model, before the next is built (a pruned trial's is still held)
            self.trial, self.scores, self.kept, self.since = trial, [], None, 0
            model = self.build(self.cfg if trial is None else with_settings(self.cfg, suggest(trial, self.over)))
            # the trial trains from the random state the final run trains from (its Trainer seeds once the model is
            # built)
            transformers.set_seed(self.cfg.seed)
            return model

        def release(self):
            import gc

            import torch
            if self.trainer is not None:
                self.trainer.model = self.trainer.model_wrapped = self.trainer.optimizer = None
                self.trainer.lr_scheduler = None
                self.trainer.accelerator.clear()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        def hp_space(self, trial):
            chosen = suggest(trial, self.over)
            return {"learning_rate": chosen["learning_rate"], "num_train_epochs": chosen["num_epochs"]}  # Trainer's

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            """Before the objective is asked (the Trainer calls back from evaluate): the epoch's score, and as the
            run's early stopping would, a stop after EARLY_STOPPING_PATIENCE epochs without a strictly better one."""
            score = metrics[self.key]
            self.scores.append(score)
            if self.trial is not None:
                self.trial.set_user_attr("validation", list(self.scores))
            if self.since is None:  # stopped: a later evaluation (the Trainer's own after training) counts not
                return
            if self.kept is None or (score > self.kept if self.greater else score < self.kept):
                self.kept, self.since = score, 0
            else:
                self.since += 1
            if self.cfg.early_stopping_patience and self.since >= self.cfg.early_stopping_patience:
                control.should_training_stop, self.since = True, None

        def objective(self, metrics):
            return self.kept if self.kept is not None else metrics[self.key]

    return Trials()


def pruner(several):
    """A trial in the lowest quarter at an epoch (of the trials before it there) is stopped, from the 4th trial on.
    Optuna's percentile is of the trials kept: 75 prunes the lowest quarter. None under a launcher: a pruned trial
    stops on rank 0 alone, and the other processes would wait for it at their next step."""
    import optuna
    return optuna.pruners.NopPruner() if several else optuna.pruners.PercentilePruner(75.0, n_startup_trials=3)


def run(cfg, trainer, trials, fixed):
    """The search, or what a kill left of it: returns the final run's settings (the best trial's) and the record
    (search.json), on every process. Rank 0 alone asks Optuna; the Trainer hands each trial to the others. fixed: what
    best_settings.json fixes by value (the validation rows' number, the precision, the evaluation batch size)."""
    import optuna
    from optuna.trial import TrialState
    from sqlalchemy.engine import URL

    from . import fail
    from .machine import processes, rank_zero
    several = processes() > 1
    # by URL.create, not a formatted string: a ? or % in OUTPUT_DIR would put the storage elsewhere
    storage = URL.create("sqlite", database=os.path.abspath(os.path.join(cfg.output_dir, STORAGE))).render_as_string(
        hide_password=False)
    direction = "maximize" if trials.greater else "minimize"
    study_settings = {"storage": storage, "study_name": STUDY, "load_if_exists": True, "pruner": pruner(several)}
    left = [0]
    if rank_zero():
        study = optuna.create_study(direction=direction, **study_settings)
        if study.direction.name.lower() != direction:  # Optuna keeps a loaded study's own
            fail(f"--resume: the search in {cfg.output_dir!r} chose by the other direction of its score; start over "
                 f"with --overwrite_output_dir")
        for cut in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # under way at a kill: again
            study.tell(cut.number, state=TrialState.FAIL)
        # seeded by the trials there are: after a resume the sampler does not ask again for the trials it asked for
        study_settings["sampler"] = optuna.samplers.TPESampler(seed=cfg.seed + len(study.trials),
                                                               n_startup_trials=max(2, cfg.search_trials // 3))
        own = own_settings(cfg)
        if not any(t.params == own for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING))):
            study.enqueue_trial(own)
        left = [max(0, cfg.search_trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                          TrialState.PRUNED))))]
    if several:
        from accelerate.utils import broadcast_object_list
        broadcast_object_list(left)
    trials.trainer = trainer
    if left[0]:
        # a trial that fails (out of memory, scores of a diverged model) is recorded as such, and the search goes on;
        # under a launcher the other processes would wait for it: the run stops
        trainer.hyperparameter_search(direction=direction, backend="optuna", hp_space=trials.hp_space,
                                      n_trials=left[0], compute_objective=trials.objective, gc_after_trial=True,
                                      catch=() if several else (RuntimeError, ValueError), **study_settings)
    trials.release()  # the last trial's model, before the final run's is built
    trials.trainer = None
    found = [None]
    if rank_zero():
        study = optuna.load_study(study_name=STUDY, storage=storage)
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            fail(f"--search_trials: none of the {len(study.trials)} trials finished (search.db and the messages "
                 f"above say why); fix that and run again with --resume, or start over with --overwrite_output_dir")
        found = [record_of(study, cfg, trials, direction, several)]
        best = with_settings(cfg, found[0]["best"]["settings"])
        write_json(os.path.join(cfg.output_dir, BEST_SETTINGS), settings_of(best, fixed))
        write_json(os.path.join(cfg.output_dir, RECORD), found[0])
    if several:
        broadcast_object_list(found)
    return with_settings(cfg, found[0]["best"]["settings"]), found[0]


def record_of(study, cfg, trials, direction, several):
    """search.json: every trial (its settings, its validation score by epoch, how it ended, its seconds), the best
    and the run's own settings' trial."""
    from optuna.trial import TrialState
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    key = trials.key.replace("eval_", "validation_", 1)
    rows = [{"trial": t.number, "settings": t.params, f"{key}_by_epoch": t.user_attrs.get("validation", []),
             "value": t.value if t.value is not None else (list(t.intermediate_values.values()) or [None])[-1],
             "state": {TrialState.FAIL: "failed or cut short"}.get(t.state, t.state.name.lower()),
             "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
             if t.datetime_complete and t.datetime_start else None}
            for t in study.trials if t.state != TrialState.WAITING]
    best = study.best_trial
    own = own_settings(cfg)
    first = next((r for r in rows if r["settings"] == own and r["state"] == "complete"), None)
    return {"metric": key, "direction": direction, "space": trials.over, "log_scale": ["learning_rate"],
            "trials_asked": cfg.search_trials, "trials_done": len(done),
            "pruned": sum(t.state == TrialState.PRUNED for t in done),
            "pruner": "none (several processes: a trial stops on all of them or none)" if several
            else "Optuna PercentilePruner: the lowest quarter at an epoch, from the 4th trial on",
            "epochs_run": sum(len(r[f"{key}_by_epoch"]) for r in rows),
            "epochs_asked": sum(r["settings"].get("num_epochs", 0) for r in rows),
            "seconds": sum(r["seconds"] or 0 for r in rows),
            "best": {"trial": best.number, "settings": best.params, "value": best.value},
            "own_settings": {"trial": first and first["trial"], "settings": own, "value": first and first["value"]},
            "trials": rows}


def settings_of(cfg, fixed):
    """best_settings.json: the final run's settings as a settings file, with no search; by value what would otherwise
    be chosen again: the validation rows' number (the search drew them as for several epochs; one epoch alone would
    draw other ones), the precision (auto measures again) and the evaluation batch size; and its own OUTPUT_DIR beside
    this one (the searched run stays as it is)."""
    from .settings import RUN_CONTROL
    return {k: v for k, v in vars(cfg).items() if k not in RUN_CONTROL} | fixed | {
        "search_trials": 0, "output_dir": cfg.output_dir.rstrip("/\\") + "-best"}


def summary(found):
    """metrics.json's search: over what, how many trials, what won (every trial: search.json)."""
    return {k: v for k, v in found.items() if k != "trials"} | {"files": [RECORD, BEST_SETTINGS, PLOT, STORAGE]}


def card_text(found):
    """The model card's line: searched, over what, what won."""
    over = found["space"]
    return (f"chosen by a search of {found['trials_done']} trials (Optuna through the Trainer, on the validation "
            f"rows alone; {found['pruned']} pruned) over learning rate {over['learning_rate'][0]:g} to "
            f"{over['learning_rate'][1]:g} (log scale), LoRA r {over['lora_r']}, alpha {over['lora_alpha']}, epochs "
            f"{over['num_epochs'][0]} to {over['num_epochs'][1]}; trial {found['best']['trial']} won, "
            f"{found['metric'].replace('_', ' ')} {found['best']['value']:.4f} (the run's own settings: "
            + (f"{found['own_settings']['value']:.4f})" if found["own_settings"]["value"] is not None
               else "not scored)"))


def table(found):
    """The trials, a line each, as printed at the end."""
    key = found["metric"]
    lines = [f"{'trial':>5}  {'learning_rate':>13}  {'lora_r':>6}  {'lora_alpha':>10}  {'num_epochs':>10}  "
             f"{key + ' by epoch':<34} {'seconds':>7}  ended"]
    for r in found["trials"]:
        s = r["settings"]
        by_epoch = " ".join(f"{v:.4f}" for v in r[f"{key}_by_epoch"])
        mark = " best" if r["trial"] == found["best"]["trial"] else ""
        mark += " (the run's own settings)" if r["trial"] == found["own_settings"]["trial"] else ""
        lines.append(f"{r['trial']:>5}  {s.get('learning_rate', float('nan')):>13.3g}  {s.get('lora_r', '-'):>6}  "
                     f"{s.get('lora_alpha', '-'):>10}  {s.get('num_epochs', '-'):>10}  {by_epoch:<34} "
                     f"{r['seconds'] or 0:>7.0f}  {r['state']}{mark}")
    return "\n".join(lines)


def line(found):
    """The search in one line: how many trials, what won, against the run's own settings."""
    best, own, key = found["best"], found["own_settings"], found["metric"]
    shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in best["settings"].items())
    mine = f"{own['value']:.4f}" if own["value"] is not None else "not scored"
    return (f"search: {found['trials_done']} trial(s), {found['pruned']} pruned ({found['epochs_run']} of "
            f"{found['epochs_asked']} epochs run), {found['seconds'] / 60:.1f} min, on the validation rows alone; "
            f"best trial {best['trial']}: {shown}: {key.replace('_', ' ')} {best['value']:.4f} (the run's own "
            f"settings: {mine})")


def save_plot(path, found):
    """search.png: each trial's validation score by epoch; the best and the run's own settings marked, a pruned
    trial dashed."""
    from matplotlib.figure import Figure
    key = found["metric"]
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for r in found["trials"]:
        scores = r[f"{key}_by_epoch"]
        if not scores:
            continue
        best, own = r["trial"] == found["best"]["trial"], r["trial"] == found["own_settings"]["trial"]
        s = r["settings"]
        label = (f"{r['trial']}: lr {s['learning_rate']:.2g}, r {s['lora_r']}, alpha {s['lora_alpha']}"
                 + (" (best)" if best else "") + (" (own settings)" if own else ""))
        ax.plot(range(1, len(scores) + 1), scores, marker="o", label=label, linewidth=3 if best else 1.2,
                linestyle="--" if r["state"] == "pruned" else "-", color="black" if own and not best else None)
    ax.set(title=f"the search's trials: {key} by epoch (dashed: pruned)", xlabel="epoch", ylabel=key)
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_atomically(path, lambda to: fig.savefig(to, format="png"))
