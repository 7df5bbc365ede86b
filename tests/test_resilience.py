"""Launchers, resume and interruption: several processes, a run stopped and continued, a run killed mid-way."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, in_process
from safetensors.torch import load_file
from test_train import files_digest
from textlora.settings import whole  # a checkpoint counts once its trainer_state.json, written last, reads


def tiny_run(tiny_model, tiny_imdb, out, *flags):
    """The flags of a run of the tiny model on the tiny data, in fp32, into out."""
    return ["--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200", "--eval_size", "100",
            "--min_epoch_rows", "0", "--validation_size", "100", "--mixed_precision", "no", "--output_dir", out, *flags]


def start_train(tiny_model, tiny_imdb, out, *flags, output=None):
    """train.py in the background, as a user's terminal would run it; its output to pipes, or to one open file."""
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *tiny_run(tiny_model, tiny_imdb, out,
                                                                                        *flags)],
                            stdout=output or subprocess.PIPE, stderr=output or subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def wait_for(checkpoint, proc, timeout=120):
    """Until the checkpoint is whole: its trainer_state.json, written last, exists from its open and reads only once
    written (a stop between the two leaves no checkpoint to resume from)."""
    deadline = time.time() + timeout
    while not whole(checkpoint):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, f"{checkpoint} never appeared"
        time.sleep(0.02)


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"],
    # accelerate's --cpu runs one process; --multi_gpu starts torchrun's workers, which use gloo without a GPU
    "accelerate": [os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu",
                   "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
}


def launch(launcher, logs, *flags):
    """train.py under a launcher with 2 processes; each rank's stdout and stderr also go to a file under logs."""
    log_flags = (["--log-dir", str(logs), "--tee", "3"] if launcher == "torchrun"
                 else ["--log_dir", str(logs), "--tee", "3"])
    # each launcher gives its ranks 1, as for a user
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([*LAUNCHERS[launcher], *log_flags, "train.py", *flags], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**env, "HF_HUB_OFFLINE": "1"})


def everything_said(proc, logs):
    """The launcher's own output and every rank's, for a failure message: nothing a rank said is cut off."""
    ranks = [f"--- {path.relative_to(logs)} ---\n{path.read_text(errors='replace')}"
             for path in sorted(logs.rglob("*.log"))]
    return "\n".join([f"--- launcher exit {proc.returncode}, stderr ---", proc.stderr, *ranks])


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_processes_on_cpu(launcher, tiny_model, tiny_imdb, tmp_path):
    out, logs = str(tmp_path / "ddp"), tmp_path / "logs"
    proc = launch(launcher, logs, "--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200",
                  "--min_epoch_rows", "0", "--eval_size", "100", "--output_dir", out)
    assert proc.returncode == 0, everything_said(proc, logs)
    assert "terminate called" not in everything_said(proc, logs)  # every process left cleanly
    assert len(list(logs.rglob("stderr.log"))) == 2, "one log per rank"
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["processes"] == 2
    assert metrics["matmul_gflops"] and proc.stdout.count("(matmul ") == 1  # rank 0 measures and says it, once
    # each review once
    assert sum(sum(row) for row in metrics["confusion_matrix"]["rows_true_columns_predicted"]) == 100
    assert os.path.exists(os.path.join(out, "adapter", "adapter_model.safetensors"))
    assert proc.stdout.count("done in") == 1, "only rank 0 prints the summary"
    # 200 reviews, 2 processes x batch 4: 25 steps to the epoch
    assert [d for d in os.listdir(out) if d.startswith("checkpoint-")] == ["checkpoint-25"]


@pytest.mark.parametrize("train_size, message", [
    ("0", "--train_size must be at least 1"),  # a flag: every rank checks it before they join, rank 0 says it
    ("401", "--train_size 401 is larger than the 'train' split"),  # the data: rank 0 checks it, the other waits
])
def test_bad_input_under_a_launcher_is_one_line_and_exit_status_2(tiny_model, tiny_imdb, tmp_path, train_size, message):
    """The error is said once, the rank exits with 2, the launcher stops the run: no hang, no traceback."""
    out, logs = str(tmp_path / "ddp"), tmp_path / "logs"
    proc = launch("torchrun", logs, "--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", train_size,
                  "--eval_size", "100", "--output_dir", out)
    said = everything_said(proc, logs)
    assert proc.returncode != 0, said
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "train.py: error:" in line]
    assert len(errors) == 1 and message in errors[0], said
    assert "exitcode  : 2" in proc.stderr, said  # the launcher's report names the rank's status
    assert "Traceback" not in "".join(path.read_text() for path in logs.rglob("*.log")), said
    assert not os.path.exists(out)


def test_resume_after_interruption_equals_a_straight_run(trained, tiny_model, tiny_imdb, tmp_path):
    """Same seed, same run: a run stopped after epoch 1 and resumed ends where an uninterrupted one does."""
    straight = trained[1]  # the same flags, 3 epochs, not interrupted
    data = str(tmp_path / "data")
    shutil.copytree(tiny_imdb, data)  # the same rows under another name: changed below, then put back

    out = str(tmp_path / "stopped")
    proc = start_train(tiny_model, data, out, "--num_epochs", "3")
    wait_for(os.path.join(out, "checkpoint-50"), proc)  # epoch 1 of 3 saved
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in stderr, stderr[-3000:]
    assert not os.path.exists(os.path.join(out, "adapter")) and not os.path.exists(os.path.join(out, "metrics.json"))

    # flags that would make another run than the checkpoint's are refused, by name, and nothing is touched
    before = files_digest(out)
    # (the signal needs a process; the refusals and the resumed run are train.py's main() in this one)
    changed = in_process("train", *tiny_run(tiny_model, data, out, "--num_epochs", "3", "--resume", "--learning_rate",
                                            "0.01", "--lora_r", "8", "--eval_batch_size", "8"))
    stderr = changed.stderr
    assert changed.returncode == 2 and stderr.count("\n") == 1, stderr[-3000:]
    assert "--learning_rate 0.01 (the run's: 0.001)" in stderr and "--lora_r 8 (the run's: 4)" in stderr, stderr
    assert "eval_batch_size" not in stderr  # it changes no result: taken
    assert files_digest(out) == before

    # data changed under the same name: the rows drawn are not the run's, refused
    import datasets
    original = os.path.join(data, "plain_text", "train-00000-of-00001.parquet")
    shutil.copy(original, str(tmp_path / "kept.parquet"))
    table = datasets.Dataset.from_parquet(original)
    table.map(lambda r: {"text": r["text"] + " again"}).to_parquet(original)
    changed = in_process("train", *tiny_run(tiny_model, data, out, "--num_epochs", "3", "--resume"))
    assert changed.returncode == 2 and "are not the run's (the data changed" in changed.stderr, changed.stderr[-3000:]
    assert files_digest(out) == before
    shutil.copy(str(tmp_path / "kept.parquet"), original)

    # MIXED_PRECISION auto goes on in the precision the run started in (fp32), not in one measured again; and
    # VALIDATION_SIZE left at its default (None) goes on with the number the run recorded, as runs begun before
    # None was the default recorded 500
    flags = tiny_run(tiny_model, data, out, "--num_epochs", "3", "--resume", "--mixed_precision", "auto")
    at = flags.index("--validation_size")
    resumed = in_process("train", *flags[:at], *flags[at + 2:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "training on cpu in fp32, " in resumed.stdout and "in the precision the run started in" in resumed.stdout, \
        resumed.stdout
    assert json.load(open(os.path.join(out, "metrics.json")))["mixed_precision"] == "no"
    assert json.load(open(os.path.join(out, "metrics.json")))["calibration"]["fitted_on_rows"] == 100

    a = load_file(os.path.join(straight, "adapter", "adapter_model.safetensors"))
    b = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    ma, mb = (json.load(open(os.path.join(folder, "metrics.json"))) for folder in (straight, out))
    assert ma["eval_accuracy"] == mb["eval_accuracy"]
    assert [e["loss"] for e in ma["epochs"]] == [e["loss"] for e in mb["epochs"]]
    # every figure taken from the training covers all its steps, resumed or not
    assert mb["train_loss"] == pytest.approx(ma["train_loss"], rel=1e-9) and mb["train_loss"] > 0
    assert [e["train_loss"] for e in ma["epochs"]] == pytest.approx([e["train_loss"] for e in mb["epochs"]], rel=1e-9)


def stops(proc, every=0.01):
    """Stop the process (SIGSTOP) again and again until it ends, yielding at each stop. What is on disk while it is
    stopped is what a kill (SIGKILL) at that moment would leave: a killed process cleans nothing up, and what it
    wrote before is there for any other process to read. One run gives hundreds of kill moments this way."""
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):  # it ended before the stop reached it
            proc.returncode = os.waitstatus_to_exitcode(status)
            return
        yield
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(every)


def assert_whole_or_absent(out):
    """What train.py relies on or promises: a checkpoint whose trainer_state.json reads is whole (--resume takes
    it); training_curves.png, adapter/ and metrics.json are whole or absent; metrics.json comes last."""
    names = set(os.listdir(out)) if os.path.isdir(out) else set()
    for name in names:
        if name.startswith("checkpoint-") and whole(os.path.join(out, name)):
            assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= set(
                os.listdir(os.path.join(out, name))), name
            load_file(os.path.join(out, name, "adapter_model.safetensors"))
    if "training_curves.png" in names:
        with open(os.path.join(out, "training_curves.png"), "rb") as f:
            png = f.read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
    if "adapter" in names:
        adapter = os.path.join(out, "adapter")
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md",
                "labels.json"} <= set(os.listdir(adapter))
        load_file(os.path.join(adapter, "adapter_model.safetensors"))
        json.load(open(os.path.join(adapter, "adapter_config.json")))
        json.load(open(os.path.join(adapter, "labels.json")))
    if "run.json" in names:  # what --resume goes on with
        assert json.load(open(os.path.join(out, "run.json")))["precision"] == "no"
    if "metrics.json" in names:
        assert "adapter" in names  # written last
        assert "eval_accuracy" in json.load(open(os.path.join(out, "metrics.json")))
    return names


def test_a_kill_at_any_moment_leaves_whole_results_or_none(trained, tiny_model, tiny_imdb, tmp_path):
    """A run stopped every 10 ms from start to end: at every stop, what it has written is whole or absent, and an
    earlier run in the same outputs folder is not touched."""
    earlier = trained[1]
    before = files_digest(earlier)
    out = os.path.join(os.path.dirname(earlier), "stopped-and-checked")  # beside the earlier run
    with open(tmp_path / "output.txt", "w") as log:
        proc = start_train(tiny_model, tiny_imdb, out, output=log)
        try:
            moments = [assert_whole_or_absent(out) for _ in stops(proc)]
        finally:
            if proc.returncode is None:  # a check failed: do not leave it stopped
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, (tmp_path / "output.txt").read_text()[-3000:]
    assert len(moments) > 100, len(moments)
    assert {"adapter", "metrics.json", "training_curves.png", "checkpoint-50"} <= assert_whole_or_absent(out)
    assert files_digest(earlier) == before


def test_no_pickle_in_the_project():
    """Weights are read and written as safetensors; nothing in our code unpickles."""
    for folder, _, files in os.walk(ROOT):
        if ".venv" in folder or ".git" in folder:
            continue
        for name in files:
            if name.endswith(".py") and name != "test_resilience.py":
                source = open(os.path.join(folder, name)).read()
                for word in ("torch.load(", "import pickle", "pickle.load", "trust_remote_code=True"):
                    assert word not in source, (name, word)
