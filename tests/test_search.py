"""SEARCH_TRIALS: the settings chosen by trials on the validation rows alone, as a user runs it: what the search
leaves, that its best settings file reproduces the final run, that the evaluation rows play no part in it, that a
killed search goes on from the trials done, and that under a launcher every process runs the same trial."""
import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, in_process
from test_resilience import LAUNCHERS, everything_said, tiny_run

OWN = {"learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 32, "num_epochs": 1}  # train.py's own: the first trial


def searched(tiny_model, tiny_imdb, out, *flags):
    """The flags of a search on the tiny model and data: 100 training rows, 100 validation rows, fp32."""
    return tiny_run(tiny_model, tiny_imdb, out, "--train_size", "100", *flags)


def read(out, name):
    with open(os.path.join(out, name), encoding="utf-8") as f:
        return json.load(f)


def trials_by_number(out):
    """Each trial's settings and validation scores by epoch, by its number (the seconds aside)."""
    found = read(out, "search.json")
    return {t["trial"]: (t["settings"], t[f"{found['metric']}_by_epoch"], t["state"]) for t in found["trials"]}


def test_a_search_leaves_its_trials_and_settings_that_reproduce_the_final_run(tiny_model, tiny_imdb, tmp_path):
    out = str(tmp_path / "searched")
    run = in_process("train", *searched(tiny_model, tiny_imdb, out, "--search_trials", "3"))
    assert run.returncode == 0, run.stderr[-3000:]
    found = read(out, "search.json")
    assert found["trials_done"] == 3 and len(found["trials"]) == 3
    first = found["trials"][0]
    assert first["settings"] == OWN and first["state"] == "complete"  # the recipe's settings: the first trial
    scores = [t["value"] for t in found["trials"] if t["state"] == "complete"]
    best = found["best"]
    assert best["value"] == max(scores) >= first["value"]  # never worse than the recipe, on the validation rows
    assert all(len(t["validation_accuracy_by_epoch"]) <= t["settings"]["num_epochs"] for t in found["trials"])
    assert os.path.getsize(os.path.join(out, "search.png")) > 0 and os.path.exists(os.path.join(out, "search.db"))
    assert "trial" in run.stdout.split("the search's trials")[-1] and "best" in run.stdout.split("search: ")[-1]
    assert "100 from 'train' (no overlap) to score the search's trials and calibrate" in run.stdout  # the data line

    # the final run trained with the best trial's settings, and says so in metrics.json and the card
    metrics = read(out, "metrics.json")
    assert {k: metrics["config"][k] for k in OWN} == best["settings"]
    assert metrics["search"]["best"] == best and metrics["search"]["trials_done"] == 3
    card = open(os.path.join(out, "adapter", "README.md"), encoding="utf-8").read()
    assert "chosen by a search of 3 trials" in card and f"trial {best['trial']} won" in card
    if best["settings"]["num_epochs"] > 1:  # its kept epoch is the trial's best, trained alike on the same rows
        assert metrics["kept_epoch"]["score"] == best["value"]

    # python train.py OUTPUT_DIR/best_settings.json: the final run again, bit for bit in fp32
    settings = read(out, "best_settings.json")
    assert settings["search_trials"] == 0 and settings["output_dir"] == out + "-best"
    again = in_process("train", os.path.join(out, "best_settings.json"))
    assert again.returncode == 0, again.stderr[-3000:]
    weights = "adapter/adapter_model.safetensors"
    assert open(os.path.join(out, weights), "rb").read() == open(os.path.join(out + "-best", weights), "rb").read()
    reproduced = read(out + "-best", "metrics.json")
    assert reproduced["eval_accuracy"] == metrics["eval_accuracy"] and reproduced["epochs"] == metrics["epochs"]
    assert reproduced["search"] is None

    # the evaluation rows play no part: other evaluation rows (fewer, so others of the test split), the same trials
    other = str(tmp_path / "other-eval")
    run = in_process("train", *searched(tiny_model, tiny_imdb, other, "--search_trials", "3", "--eval_size", "60"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert trials_by_number(other) == trials_by_number(out)
    assert read(other, "metrics.json")["rows"] != metrics["rows"]  # the final adapter scored on other rows


def test_a_killed_search_goes_on_from_the_trials_done(tiny_model, tiny_imdb, tmp_path):
    import optuna
    out = str(tmp_path / "killed")
    flags = searched(tiny_model, tiny_imdb, out, "--search_trials", "4")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    storage = f"sqlite:///{os.path.join(out, 'search.db')}"
    deadline = time.time() + 240
    done = []
    while len(done) < 2:  # two trials done, the third under way
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "no two trials were done in time"
        time.sleep(0.2)
        try:
            done = [t for t in optuna.load_study(study_name="train.py", storage=storage).trials
                    if t.state.is_finished()]
        except Exception:  # not created yet
            done = []
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in stderr and "search" in stderr.splitlines()[-1], stderr[-3000:]
    before = trials_by_number(out) if os.path.exists(os.path.join(out, "search.json")) else None
    assert before is None  # written once the search ends
    kept = {t.number: (t.params, t.user_attrs.get("validation")) for t in done}

    # without --resume the kept trials are not thrown away: refused in one line
    again = in_process("train", *flags)
    assert again.returncode == 2 and "--resume" in again.stderr and again.stderr.count("\n") == 1, again.stderr

    resumed = in_process("train", *flags, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = trials_by_number(out)
    finished = [n for n, (_, _, state) in trials.items() if state in ("complete", "pruned")]
    assert len(finished) == 4  # as asked, counting the ones done before the kill
    for number, (params, scores) in kept.items():  # those kept as they were, none trained again
        assert trials[number][0] == params and trials[number][1] == scores
    assert sum(settings == OWN for settings, _, state in trials.values() if state == "complete") == 1
    assert os.path.exists(os.path.join(out, "adapter")) and read(out, "metrics.json")["search"]["trials_done"] == 4


def test_under_a_launcher_every_process_runs_the_same_trial(tiny_model, tiny_imdb, tmp_path):
    """Two processes train each trial together: a trial of other LoRA shapes on one of them would fail the gradients'
    exchange, or hang it. Pruning is off there (a pruned trial would stop on rank 0 alone)."""
    out, logs = str(tmp_path / "ddp"), tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([*LAUNCHERS["torchrun"], "--log-dir", str(logs), "--tee", "3", "train.py",
                           *searched(tiny_model, tiny_imdb, out, "--search_trials", "2")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env={**env, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, everything_said(proc, logs)
    found = read(out, "search.json")
    assert found["trials_done"] == 2 and found["pruned"] == 0 and found["pruner"].startswith("none")
    assert read(out, "metrics.json")["processes"] == 2
    assert {k: read(out, "metrics.json")["config"][k] for k in OWN} == found["best"]["settings"]


def test_a_search_without_validation_rows_or_with_a_negative_count_is_refused(tiny_model, tiny_imdb, tmp_path):
    out = str(tmp_path / "refused")
    # 400 training rows: 350 trained on leave 50, too few to hold back
    flags = [f for f in tiny_run(tiny_model, tiny_imdb, out, "--train_size", "350", "--search_trials", "2")]
    at = flags.index("--validation_size")
    del flags[at:at + 2]
    run = in_process("train", *flags)
    assert run.returncode == 2 and "--search_trials scores each trial on validation rows" in run.stderr, run.stderr
    assert run.stderr.count("train.py: error:") == 1 and "Traceback" not in run.stderr and not os.path.exists(out)
    run = in_process("train", *tiny_run(tiny_model, tiny_imdb, out, "--search_trials", "-1"))
    assert run.returncode == 2 and "--search_trials must be 0" in run.stderr and not os.path.exists(out)
    run = in_process("train", *tiny_run(tiny_model, tiny_imdb, out, "--search_trials", "2", "--max_steps", "5"))
    assert run.returncode == 2 and "drop one of --max_steps and --search_trials" in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and not os.path.exists(out)


def test_the_pruner_stops_the_lowest_quarter_only():
    """Four trials scored 0.5, 0.6, 0.7 and 0.8 at an epoch: a fifth at 0.55 is in their lowest quarter (below
    0.575, counted by hand) and stopped; one at 0.65 goes on."""
    import optuna

    from textlora import search
    study = optuna.create_study(direction="maximize", pruner=search.pruner(several=False))
    for score in (0.5, 0.6, 0.7, 0.8):
        trial = study.ask()
        trial.report(score, step=50)
        study.tell(trial, score)
    for score, pruned in ((0.55, True), (0.65, False)):
        trial = study.ask()
        trial.report(score, step=50)
        assert trial.should_prune() == pruned, score
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
                   values=None if pruned else score)
    assert isinstance(search.pruner(several=True), optuna.pruners.NopPruner)


def test_a_trial_scores_the_epoch_the_final_run_would_keep_and_stops_where_it_would():
    """With EARLY_STOPPING_PATIENCE 1, epochs scored 0.80, 0.79, 0.85: the run stops after the second and keeps the
    first, so the trial's score is 0.80 (not 0.85), and it stops there too; without patience, 0.85."""
    from types import SimpleNamespace

    from transformers import TrainerControl

    from textlora import search
    for patience, expected, stops_after in ((1, 0.80, 2), (None, 0.85, None)):
        cfg = SimpleNamespace(seed=0, learning_rate=1e-3, lora_r=4, lora_alpha=32, num_epochs=1,
                              early_stopping_patience=patience)
        trials = search.trials_of(cfg, lambda settings: object(), "accuracy", greater=True)
        trials.model_init(None)
        stopped = None
        for epoch, score in enumerate((0.80, 0.79, 0.85), 1):
            control = TrainerControl()
            if stopped is None:
                trials.on_evaluate(None, None, control, metrics={"eval_accuracy": score})
                stopped = epoch if control.should_training_stop else None
        assert stopped == stops_after and trials.objective({"eval_accuracy": 0.85}) == expected
