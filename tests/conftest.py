"""Fixtures: a tiny DistilBERT with random weights and a small IMDB-shaped dataset, built in temp folders; the
pretrained stand-in (standin_model.py) and the real data sets (real_data) for the real-learning tests.

No test needs the network: train.py runs offline on local copies, and only real_data reaches for the Hub, for a data
set that has no local copy.
"""
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys

import pytest
from filelock import FileLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `import train`: the in-process tests call its functions directly
# The real data sets: the environment variable that names a local copy, how the failure line calls it, its Hub name.
REAL_DATA = {"imdb": ("IMDB_DIR", "IMDB", "stanfordnlp/imdb"),
             "ag_news": ("AG_NEWS_DIR", "AG News", "fancyzhx/ag_news")}
# Each pytest-xdist worker runs one training at a time. torch starts one thread per core in every process, so two
# workers would put four busy threads on two cores, and OpenMP threads that wait by spinning slow each other down
# (bench/README.md, "Test-suite timing"). Launchers set their own.
if "PYTEST_XDIST_WORKER" in os.environ:  # set in the workers only; they inherit the main process's environment
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
# A process that aborts or crashes (SIGABRT, SIGSEGV) prints the Python stack of every thread to its stderr first.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

# The libraries' log handlers write to the stream that was sys.stderr when each was made. Made inside a test, that is
# capsys's stream (closed when the test ends) or in_process's, and a log line of a later test in the worker fails
# ("--- Logging error ---" and a traceback on its stderr), depending on which test a worker ran first. Made here, at
# collection, they hold the session's own.
import datasets.utils.logging  # noqa: E402
import optuna.logging  # noqa: E402
import transformers.utils.logging  # noqa: E402

for library in (datasets.utils.logging, transformers.utils.logging, optuna.logging):
    library.get_verbosity()  # configures the library's handler now, where it is done lazily
GOOD = "great wonderful superb brilliant loved excellent moving beautiful".split()
BAD = "awful terrible boring dull hated worst poor waste".split()
FILLER = "the a film movie plot actor scene story it was and this of with".split()


def review(rng, label):
    """Sentiment words of one side among a few filler words: a random tiny model learns it in a few epochs."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(0, 6))]
    for _ in range(rng.randint(3, 6)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(GOOD if label else BAD))
    return " ".join(words)


def reviews(n, seed):
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return {"text": [review(rng, label) for label in labels], "label": labels}


def write_split(folder, split, rows):
    import datasets
    os.makedirs(folder, exist_ok=True)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        os.path.join(folder, f"{split}-00000-of-00001.parquet"))


def built_once(tmp_path_factory, name, build):
    """A session fixture's folder, built by the first pytest-xdist worker that asks and reused by the others (each
    used to build its own: the 3-epoch run twice, about 17 s of a 2-core machine). build(folder) fills the folder."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / name  # parent: shared by the workers
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():  # a build that failed left no mark: the next worker tries, and fails, too
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small random DistilBERT (q_lin and all) with a WordPiece vocab of the fixture's words."""
    def build(folder):
        from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + GOOD + BAD + FILLER
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
        DistilBertTokenizer.from_pretrained(str(folder)).save_pretrained(str(folder))
        # spread-out features: learnable in a few steps
        config = DistilBertConfig(vocab_size=len(vocab), dim=64, hidden_dim=128, n_layers=2, n_heads=2,
                                  max_position_embeddings=128, initializer_range=0.2, seq_classif_dropout=0.0)
        import torch
        torch.manual_seed(0)
        DistilBertForSequenceClassification(config).save_pretrained(str(folder))
    return str(built_once(tmp_path_factory, "tiny-distilbert", build))


@pytest.fixture(scope="session")
def tiny_imdb(tmp_path_factory):
    """An IMDB-shaped folder: plain_text/{train,test}-00000-of-00001.parquet with text and ClassLabel label."""
    def build(folder):
        write_split(folder / "plain_text", "train", reviews(400, seed=1))
        write_split(folder / "plain_text", "test", reviews(200, seed=2))
    return str(built_once(tmp_path_factory, "tiny-imdb", build))


def run_train(*flags, env=None, timeout=300):
    """Run train.py as a user does (offline unless env says otherwise) and return the finished process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} if env is None else env
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *flags], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def in_process(script, *args, stdin=None):
    """`python SCRIPT.py ARGS` (SCRIPT: "train", "predict" or a module) as its main(ARGS) in this process, offline, its
    output captured: a CompletedProcess, as run_train gives. A refusal goes through the script's own fail(): exit
    status 2 and its one line on stderr; an interruption (exit status 130) stops the test run, as Ctrl-C does. A
    process spends seconds on imports alone (bench/README.md), so what only a process shows (the Hub probe before any
    import, signals, launchers, a real pipe, the exit status itself) is tested once in one, and the rest here.
    Warnings logged by the libraries are not captured here (their handlers hold the stderr they started with)."""
    import importlib
    import io
    from unittest import mock

    import datasets.config
    import huggingface_hub.constants

    from textlora import Refused
    module = importlib.import_module(script) if isinstance(script, str) else script  # or a module, loaded already
    out, err = io.StringIO(), io.StringIO()
    given = io.TextIOWrapper(io.BytesIO((stdin or "").encode()), encoding="utf-8")
    # the libraries read offline mode once, at import (already done in this process): their flags are set too
    with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}), \
            mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", True), \
            mock.patch.object(datasets.config, "HF_HUB_OFFLINE", True), mock.patch.object(sys, "stdin", given), \
            library_switches_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main(list(args))
            code = 0
        except Refused as refusal:
            try:
                module.fail(str(refusal))
            except SystemExit as exit:
                code = exit.code
        except SystemExit as exit:  # --help, an argparse error
            if exit.code == 130:  # interrupted (Ctrl-C, SIGTERM): the scripts' message is said, the run stops
                raise KeyboardInterrupt from exit
            code = exit.code
    return subprocess.CompletedProcess([module.__name__, *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def library_switches_kept():
    """The libraries' process-wide switches as they were: predict.py quiets transformers' logging and turns off the
    progress bars of transformers and datasets for its process, which a later run here must not inherit (the
    Trainer, for one, drops its progress bar when the logging is quieter than warnings)."""
    import datasets.utils
    import transformers.utils.logging as transformers_logging
    verbosity, bars, dataset_bars = (transformers_logging.get_verbosity(),
                                     transformers_logging.is_progress_bar_enabled(),
                                     datasets.utils.are_progress_bars_disabled())
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        (transformers_logging.enable_progress_bar if bars else transformers_logging.disable_progress_bar)()
        (datasets.utils.disable_progress_bars if dataset_bars else datasets.utils.enable_progress_bars)()


@pytest.fixture
def train(tiny_model, tiny_imdb, tmp_path):
    """train(flag, ...) runs train.py on the tiny model and data into a fresh folder, in this process unless
    in_a_process; returns (the finished run, as a CompletedProcess, output_dir)."""
    def run(*flags, output_dir=None, in_a_process=False):
        output_dir = output_dir or str(tmp_path / "run")
        flags = ("--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200", "--eval_size", "100",
                 "--min_epoch_rows", "0", "--validation_size", "100", "--output_dir", output_dir, *flags)
        return (run_train(*flags) if in_a_process else in_process("train", *flags)), output_dir
    return run


@pytest.fixture(scope="session")
def trained(tiny_model, tiny_imdb, tmp_path_factory):
    """One finished run, 3 epochs in fp32, shared by the tests that only read what it wrote:
    (its stdout, output_dir)."""
    def build(folder):
        proc = in_process("train", "--model_name", tiny_model, "--dataset_name", tiny_imdb, "--train_size", "200",
                          "--min_epoch_rows", "0", "--eval_size", "100", "--validation_size", "100", "--num_epochs",
                          "3", "--mixed_precision", "no", "--output_dir", str(folder / "run"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        (folder / "stdout.txt").write_text(proc.stdout)
    folder = built_once(tmp_path_factory, "trained", build)
    return (folder / "stdout.txt").read_text(), str(folder / "run")


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """The pretrained MiniLM encoder in the DistilBERT architecture, with a fresh 2-output head."""
    def build(folder):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "standin_model.py"), str(folder / "model")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return str(built_once(tmp_path_factory, "minilm-as-distilbert", build) / "model")


def copy_from_hub(hub_name, folder):
    """Save the Hub copy's train and test splits as folder/data, through load_dataset and its cache; nothing when it
    cannot be had. In a child process, because the libraries read offline mode once, at import: without a reachable
    Hub the child reads only the cache, and fails at once rather than after a minute of retries."""
    from textlora import hub
    env = dict(os.environ)
    offline = any(env.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if not (offline or hub.hub_reachable()):  # train.py's probe: the Hub, through the user's proxy
        env["HF_HUB_OFFLINE"] = "1"
    # written to folder/partial and renamed: folder/data is whole or absent
    code = ("import os, sys; from datasets import load_dataset; data = load_dataset(sys.argv[1]); "
            "[data[s].to_parquet(os.path.join(sys.argv[2], f'{s}-00000-of-00001.parquet')) "
            "for s in ('train', 'test')]; os.rename(sys.argv[2], sys.argv[3])")
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code, hub_name, str(folder / "partial"), str(folder / "data")], env=env,
                       capture_output=True, timeout=1800)


@pytest.fixture(scope="session")
def real_data(tmp_path_factory):
    """real_data("imdb") or real_data("ag_news"): a folder laid out like the data set's Hub copy, found in this order:
    the folder named by IMDB_DIR or AG_NEWS_DIR; ../shared/data/NAME beside the checkout, on machines that have one;
    the Hub copy through load_dataset and its cache, saved once to a temp folder so that train.py and the tests read
    the same rows offline. None of them: the test fails with one line that says how to provide the data. Call it in
    the test's body, so that the test fails rather than errors in its setup."""
    def find(name):
        variable, title, hub_name = REAL_DATA[name]
        if os.environ.get(variable):
            if not os.path.isdir(os.environ[variable]):
                pytest.fail(f"{variable}={os.environ[variable]} is not a folder; point it at a copy of {title} laid "
                            f"out like the Hub's {hub_name}", pytrace=False)
            return os.path.abspath(os.environ[variable])  # a relative path would name another folder from ROOT
        beside = os.path.join(os.path.dirname(ROOT), "shared", "data", name)
        if os.path.isdir(beside):
            return beside
        folder = built_once(tmp_path_factory, f"hub-{name}", lambda f: copy_from_hub(hub_name, f)) / "data"
        if not folder.is_dir():
            pytest.fail(f"{title} not found: set {variable} to a folder laid out like the Hub's {hub_name}, put one at "
                        f"../shared/data/{name} beside the checkout, or let the tests reach the Hugging Face Hub once",
                        pytrace=False)
        return str(folder)
    return find


def make_rare(ag_news, folder, rare="Sports"):
    """AG News with one class kept at a tenth of the others in the training split; the test split as it is."""
    from datasets import load_dataset
    ag = load_dataset(ag_news)
    rare_id = ag["train"].features["label"].names.index(rare)
    train = ag["train"].shuffle(seed=0)
    rare_rows = [i for i, label in enumerate(train["label"]) if label == rare_id]
    dropped = set(rare_rows[len(rare_rows) // 10:])
    train.select([i for i in range(len(train)) if i not in dropped]).to_parquet(
        str(folder / "train-00000-of-00001.parquet"))
    ag["test"].to_parquet(str(folder / "test-00000-of-00001.parquet"))
    return str(folder)


@pytest.fixture(scope="session")
def rare_sports(minilm, real_data, tmp_path_factory):
    """rare_sports(weighted): the stand-in trained on 1,000 AG News items of four classes, Sports a tenth of the
    others (make_rare), with or without --class_weights balanced; evaluated on 400 items of the test split as it is:
    (the data's folder, the run's stdout, its output_dir). The two runs are shared by the test of the weights and the
    test of four classes named everywhere. A function, so that missing data fails the test that calls it rather than
    erroring its setup."""
    def run(weighted):
        ag_news = real_data("ag_news")
        data = built_once(tmp_path_factory, "rare-sports", lambda folder: make_rare(ag_news, folder))

        def build(folder):
            proc = in_process("train", "--model_name", minilm, "--dataset_name", str(data), "--train_size", "1000",
                              "--eval_size", "400", "--max_length", "128", "--validation_size", "100",
                              "--output_dir", str(folder / "run"),
                              *(["--class_weights", "balanced"] if weighted else []))
            assert proc.returncode == 0, proc.stderr[-3000:]
            (folder / "stdout.txt").write_text(proc.stdout)
        folder = built_once(tmp_path_factory, f"rare-sports-{'weighted' if weighted else 'plain'}", build)
        return str(data), (folder / "stdout.txt").read_text(), str(folder / "run")
    return run


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory):
    """A small random Llama with a byte-level BPE tokenizer that has an end-of-text token and no padding token, as
    decoder models (GPT-2, Llama, Qwen, SmolLM) come."""
    def build(folder):
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        bpe.train_from_iterator(reviews(400, seed=1)["text"], trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
        assert tokenizer.pad_token is None
        tokenizer.save_pretrained(str(folder))
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=None, initializer_range=0.2)
        torch.manual_seed(0)
        LlamaForSequenceClassification(config).save_pretrained(str(folder))
    return str(built_once(tmp_path_factory, "tiny-llama", build))


def news_mixtures(ag_news, folder, sizes=(("train", 1200), ("test", 400)), seed=0):
    """Texts of one to three real AG News items joined, from the data set's own splits, as folder/SPLIT.jsonl: topics
    (the list of the topics in it: several labels per text) and sports_share (the share of its items that are
    Sports: a number per text)."""
    from datasets import load_dataset
    news, rng = load_dataset(ag_news), random.Random(seed)
    names = news["train"].features["label"].names
    os.makedirs(folder, exist_ok=True)
    for split, n in sizes:
        table = news[split]
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as f:
            for _ in range(n):
                items = [table[i] for i in rng.sample(range(len(table)), rng.randint(1, 3))]
                topics = [names[item["label"]] for item in items]
                f.write(json.dumps({"text": " ".join(item["text"] for item in items),
                                    "topics": sorted(set(topics), key=names.index),
                                    "sports_share": topics.count("Sports") / len(topics)}) + "\n")
    return str(folder)



@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have taken their tests out
def pytest_collection_modifyitems(items):
    """The tests that train the pretrained stand-in or start a launcher go first in each half of the run: the
    README's `-n 2 --dist worksteal` gives each of the two workers one half, in order, and a worker that runs out
    steals from the end of the other's. So both start on long tests, the short ones fill in at the end, and no worker
    is left alone with a long one."""
    long_names = {"minilm", "rare_sports", "mixtures", "launcher"}
    long = [item for item in items if long_names & set(getattr(item, "fixturenames", ()))]
    short = [item for item in items if item not in long]
    fill = max(0, len(items) // 2 - len(long[0::2]))
    items[:] = long[0::2] + short[:fill] + long[1::2] + short[fill:]
    for item in items:  # a run in the test's own process that hangs fails its test (pytest-timeout), not the suite
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(600))
