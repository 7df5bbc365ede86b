"""Fine-tune a text classifier with LoRA: DistilBERT on IMDB movie reviews, or your own data.

    python train.py                                   # the defaults below
    python train.py --train_size 200 --eval_size 200  # any constant, as a flag in lower case (--help lists them)
    torchrun --nproc_per_node=2 train.py              # several processes (DDP), same flags

Reads the constants below, loads a seeded subset of the data, wraps the model in a LoRA adapter,
trains it with the transformers Trainer and writes OUTPUT_DIR:
    checkpoint-*/           one per epoch (what --resume continues from)
    adapter/                adapter weights (safetensors), adapter_config.json, tokenizer, labels.json, README.md
    metrics.json            final and per-epoch accuracy and loss, per-class scores, confusion matrix, timings, device
    training_curves.png     training loss per step, evaluation accuracy per epoch, confusion matrix
"""
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

# -----------------------------------------------------------------------------
# What to train. Every constant is also a command-line flag: --model_name, --train_size, ...
MODEL_NAME = "distilbert-base-uncased"  # a Hub name or a local folder
DATASET_NAME = "stanfordnlp/imdb"       # a Hub name, a local folder, or a .parquet/.csv/.jsonl file
TRAIN_SPLIT = "train"
EVAL_SPLIT = "test"                     # if the data has no such split: "validation", else drawn from TRAIN_SPLIT
TEXT_COLUMN = "text"
LABEL_COLUMN = "label"                  # class names (a ClassLabel or strings) or integer class ids 0, 1, 2, ...
LABEL_NAMES = {"neg": "Negative", "pos": "Positive"}  # how to show the data's label names (IMDB's are neg, pos)
TRAIN_SIZE = 1000                       # rows drawn at random from TRAIN_SPLIT
EVAL_SIZE = 1000                        # rows drawn at random from EVAL_SPLIT
SEED = 42
MAX_LENGTH = 512                        # tokens; longer texts are truncated
LORA_R = 4
LORA_ALPHA = 32
LORA_DROPOUT = 0.01
TARGET_MODULES = ["q_lin"]              # DistilBERT's query projection; BERT calls it "query"
LEARNING_RATE = 1e-3
BATCH_SIZE = 4
NUM_EPOCHS = 1
OUTPUT_DIR = "outputs/distilbert-imdb-lora"
# Speed. These keep the data and every setting above; attention dropout is regularisation, so turning it off
# is a change to training, checked against accuracy in bench/ (README.md, "Performance").
MIXED_PRECISION = "auto"                # auto: bf16 on a GPU that has it (else fp16), on a CPU whichever is measured faster; or bf16, fp16, no
ATTENTION_DROPOUT = 0.0                 # DistilBERT's own is 0.1, which forces the slow attention kernel in training
GROUP_BY_LENGTH = True                  # batches of similar length pad less (--no_group_by_length: random batches)
EVAL_BATCH_SIZE = None                  # None: 64 on a GPU; 4 on a CPU, where larger batches ran slower (bench/)
# -----------------------------------------------------------------------------


def flag(default, help, **metadata):
    metadata = {"help": help, **metadata}
    # a plain default, not a factory, where it can be: HfArgumentParser reads a bool's default from it (--no_ flags)
    return field(default_factory=lambda: list(default), metadata=metadata) if isinstance(default, list) else field(default=default, metadata=metadata)


@dataclass
class Config:
    model_name: str = flag(MODEL_NAME, "base model: Hub name or local folder")
    dataset_name: str = flag(DATASET_NAME, "Hub name, local folder, or one .parquet/.csv/.jsonl file")
    train_split: str = flag(TRAIN_SPLIT, "split the training rows are drawn from")
    eval_split: str = flag(EVAL_SPLIT, "split the evaluation rows are drawn from; if missing: validation, else TRAIN_SPLIT")
    text_column: str = flag(TEXT_COLUMN, "column holding the text")
    label_column: str = flag(LABEL_COLUMN, "column holding the class: a name (ClassLabel or string) or an id 0..N-1")
    label_names: list[str] = flag([f"{k}={v}" for k, v in LABEL_NAMES.items()], "how to show the data's label names, as data=shown")
    train_size: int = flag(TRAIN_SIZE, "rows drawn at random (seeded) for training")
    eval_size: int = flag(EVAL_SIZE, "rows drawn at random (seeded) for evaluation")
    seed: int = flag(SEED, "subsets, new head and LoRA start, batch order: same seed, same run")
    max_length: int = flag(MAX_LENGTH, "tokens per text; longer texts are truncated")
    lora_r: int = flag(LORA_R, "LoRA rank")
    lora_alpha: int = flag(LORA_ALPHA, "LoRA scale")
    lora_dropout: float = flag(LORA_DROPOUT, "dropout on the LoRA input")
    target_modules: list[str] = flag(TARGET_MODULES, "linear layers that get LoRA matrices (BERT: query)")
    learning_rate: float = flag(LEARNING_RATE, "peak learning rate (linear decay)")
    batch_size: int = flag(BATCH_SIZE, "training rows per step and process")
    num_epochs: int = flag(NUM_EPOCHS, "passes over the training rows; evaluation and a checkpoint after each")
    output_dir: str = flag(OUTPUT_DIR, "where the run is written")
    overwrite_output_dir: bool = flag(False, "replace a finished run in output_dir")
    resume: bool = flag(False, "continue the run in output_dir from its last checkpoint")
    mixed_precision: str = flag(MIXED_PRECISION, "auto: bf16 on a GPU (fp16 without bf16), on a CPU the faster one, "
                                                 "measured; or force bf16, fp16, no", choices=["auto", "bf16", "fp16", "no"])
    attention_dropout: float = flag(ATTENTION_DROPOUT, "dropout on attention weights (DistilBERT's own: 0.1; slower)")
    group_by_length: bool = flag(GROUP_BY_LENGTH, "training batches of similar length (less padding)")
    eval_batch_size: int | None = flag(EVAL_BATCH_SIZE, "evaluation batch size; default 4 on a CPU, 64 on a GPU")
    trust_remote_code: bool = flag(False, "run Python code shipped with a Hub model")


def hub_reachable(timeout=3.0):
    from urllib.parse import urlparse
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    ok = []
    # getaddrinfo has no timeout of its own, so the probe runs in a thread we stop waiting for.
    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


# Without a reachable Hub, from_pretrained and load_dataset retry for about a minute and end in a
# traceback. Offline mode makes them use the local cache or fail at once, which we turn into one line.
if os.environ.get("HF_HUB_OFFLINE", "") == "" and not hub_reachable():
    os.environ["HF_HUB_OFFLINE"] = "1"

# The heavy libraries are imported at the step that first needs them: a bad flag or bad data is reported in a few
# seconds, not after the ten that importing peft and the Trainer can take.
from transformers import HfArgumentParser

cfg = HfArgumentParser(Config).parse_args_into_dataclasses()[0]
offline = os.environ.get("HF_HUB_OFFLINE") == "1"
# Under a launcher every process checks the flags in step 0, before the processes join. Rank 0 says what is wrong;
# another rank holds its error until it has joined, so it cannot end the run before rank 0 has said the same thing,
# and says it itself only if rank 0 found nothing (another machine's disk, say).
main = os.environ.get("RANK", "0") == "0"  # rank 0 (or the only process) alone prints and writes results
quiet, held = not main, []


def fail(message):
    """Bad input: one line on stderr and exit status 2, before anything is written."""
    if quiet:
        held.append(message)
        return
    print(f"train.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def is_local(name):
    return os.path.exists(name) or name.startswith((".", "/", "~")) or name.endswith((".parquet", ".csv", ".json", ".jsonl"))


def not_found(what, name, flag):
    if is_local(name):
        return f"{what} {name!r} does not exist; set {flag} to a local folder"
    why = "the Hugging Face Hub cannot be reached and it is not in the local cache" if offline else "it could not be loaded from the Hugging Face Hub"
    return f"{what} {name!r}: {why}; set {flag} (or {flag[2:].upper()} in train.py) to a local copy"


# -- 0. check the numbers and the output folder before any slow work -----------------------------
for name in ("train_size", "eval_size", "batch_size", "eval_batch_size", "num_epochs", "max_length", "lora_r"):
    if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
        fail(f"--{name} must be at least 1, got {getattr(cfg, name)}")
for name in ("lora_dropout", "attention_dropout"):
    if not 0 <= getattr(cfg, name) < 1:
        fail(f"--{name} must be in [0, 1), got {getattr(cfg, name)}")
if any("=" not in pair for pair in cfg.label_names):
    fail(f"--label_names takes data=shown pairs, such as neg=Negative; got {' '.join(cfg.label_names)}")

for what, name, flag_ in (("dataset", cfg.dataset_name, "--dataset_name"), ("model", cfg.model_name, "--model_name")):
    if is_local(name) and not os.path.exists(name):
        fail(not_found(what, name, flag_))

out = cfg.output_dir


def whole(checkpoint):
    """The Trainer writes trainer_state.json last, so a checkpoint whose state reads is whole (a kill between its
    open and its write leaves it empty)."""
    try:
        with open(os.path.join(out, checkpoint, "trainer_state.json")) as f:
            return bool(json.load(f))
    except (OSError, ValueError):
        return False


checkpoints = sorted((d for d in (os.listdir(out) if os.path.isdir(out) else []) if d.startswith("checkpoint-") and whole(d)),
                     key=lambda d: int(d.split("-")[1]))
finished = os.path.exists(os.path.join(out, "adapter")) or os.path.exists(os.path.join(out, "metrics.json"))
if os.path.exists(out) and not os.path.isdir(out):
    fail(f"--output_dir {out!r} is a file, not a folder")
if cfg.resume and cfg.overwrite_output_dir:
    fail("--resume and --overwrite_output_dir contradict each other; pick one")
if cfg.resume and not checkpoints:
    fail(f"--resume: {out!r} holds no checkpoint to continue from")
if cfg.resume and finished:
    fail(f"--resume: the run in {out!r} has already finished")
if not cfg.resume and not cfg.overwrite_output_dir:
    if finished:
        fail(f"{out!r} already holds a finished run; pass --overwrite_output_dir to replace it, or choose another --output_dir")
    if checkpoints:
        fail(f"{out!r} holds an unfinished run; pass --resume to continue it or --overwrite_output_dir to start over")
parent = os.path.abspath(out)
while not os.path.exists(parent):
    parent = os.path.dirname(parent)
if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    fail(f"--output_dir {out!r} cannot be written ({parent!r} is not a writable folder)")

# Under torchrun or accelerate launch the processes join ("where it runs", below). Rank 0 checks the data and the
# model before the others read them: a bad input is reported once, by rank 0, and the datasets cache is written by one
# process at a time. So the other ranks join now and wait, and rank 0 joins after loading the data, which it can do
# before importing torch: a bad dataset is reported in 2.6 s instead of 6.5 s (2-core AMD EPYC).
if quiet:
    import torch
    from accelerate import PartialState
    try:
        PartialState(cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available())).wait_for_everyone()
    except RuntimeError:  # rank 0 stopped before it got here, and said why
        sys.exit(2)
    quiet = False
    if held:  # rank 0 found nothing wrong (another machine's disk, say)
        fail(held[0])

# -- 1. data: a seeded random subset for training and one for evaluation --------------------------
import pyarrow.compute as pc
from datasets import ClassLabel, load_dataset

try:
    if os.path.isfile(cfg.dataset_name):  # one table, which load_dataset calls "train"
        kind = {".jsonl": "json"}.get(os.path.splitext(cfg.dataset_name)[1], os.path.splitext(cfg.dataset_name)[1][1:])
        data = load_dataset(kind, data_files=cfg.dataset_name)
    else:
        data = load_dataset(cfg.dataset_name)
except Exception as e:  # datasets raises a different type for each way a name can be wrong
    fail(not_found("dataset", cfg.dataset_name, "--dataset_name") if not os.path.exists(cfg.dataset_name)
         else f"dataset {cfg.dataset_name!r} cannot be read: {str(e).splitlines()[0]}")

if cfg.train_split not in data:
    fail(f"dataset {cfg.dataset_name!r} has no split {cfg.train_split!r} (it has {', '.join(data)})")
eval_split = next((s for s in (cfg.eval_split, "validation") if s in data), cfg.train_split)
for split in dict.fromkeys((cfg.train_split, eval_split)):
    columns = data[split].column_names
    for column, flag_ in ((cfg.text_column, "--text_column"), (cfg.label_column, "--label_column")):
        if column not in columns:
            fail(f"dataset {cfg.dataset_name!r} has no {column!r} column (it has {', '.join(columns)}); set {flag_}")
    table = data[split].with_format("arrow")
    text, label = table[cfg.text_column], table[cfg.label_column]
    if not str(text.type).endswith("string"):
        fail(f"--text_column {cfg.text_column!r} holds {text.type}, not text")
    # a row without text or class: null, blank, or a negative id (ClassLabel's -1: no label, as in SST-2's test split)
    kind = str(label.type)
    no_label = (pc.equal(pc.utf8_trim_whitespace(label), "") if kind.endswith("string")
                else pc.less(label, 0) if kind.startswith(("int", "uint")) else pc.is_null(label))
    empty = pc.or_kleene(pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_trim_whitespace(text), "")),
                         pc.or_kleene(pc.is_null(label), no_label))
    bad = pc.sum(empty).as_py()
    if bad:
        fail(f"{bad} rows of split {split!r} have empty or missing text or label; "
             f"the first is row {pc.index(empty, True).as_py()} (counting from 0)")

rows = data[cfg.train_split].shuffle(seed=cfg.seed)
if eval_split == cfg.train_split:  # one table: the evaluation rows are drawn from it too, without overlap
    if cfg.train_size + cfg.eval_size > len(rows):
        fail(f"--train_size + --eval_size = {cfg.train_size + cfg.eval_size}, but split {cfg.train_split!r} of "
             f"{cfg.dataset_name!r} has {len(rows)} rows")
    train_rows, eval_rows = rows.select(range(cfg.train_size)), rows.select(range(cfg.train_size, cfg.train_size + cfg.eval_size))
else:
    for split, size, flag_ in ((cfg.train_split, cfg.train_size, "--train_size"), (eval_split, cfg.eval_size, "--eval_size")):
        if size > len(data[split]):
            fail(f"{flag_} {size} is larger than the {split!r} split, which has {len(data[split])} rows")
    train_rows, eval_rows = rows.select(range(cfg.train_size)), data[eval_split].shuffle(seed=cfg.seed).select(range(cfg.eval_size))

# Class names come from the data: a ClassLabel's names, else the sorted distinct strings, else the ids themselves.
feature = train_rows.features[cfg.label_column]
if isinstance(feature, ClassLabel):
    names = feature.names
elif feature.dtype in ("string", "large_string"):
    names = sorted(set(data[cfg.train_split].unique(cfg.label_column)) | set(data[eval_split].unique(cfg.label_column)))
elif feature.dtype.startswith(("int", "uint")):
    names = [str(i) for i in range(max(max(data[s].unique(cfg.label_column)) for s in (cfg.train_split, eval_split)) + 1)]
else:
    fail(f"--label_column {cfg.label_column!r} holds {feature.dtype}; it must hold class names or integer ids")
# From here on the rows hold two columns, text and label (a class id).
train_rows, eval_rows = (r.select_columns([cfg.text_column, cfg.label_column]).rename_columns(
    {c: n for c, n in ((cfg.text_column, "text"), (cfg.label_column, "label")) if c != n}) for r in (train_rows, eval_rows))
if not isinstance(feature, ClassLabel):  # strings become ids, ids stay ids
    train_rows, eval_rows = (r.cast_column("label", ClassLabel(names=names)) for r in (train_rows, eval_rows))
if len(set(train_rows["label"])) < 2:
    fail(f"all {cfg.train_size} training rows drawn have the label {names[train_rows[0]['label']]!r}: a classifier needs "
         f"at least two classes; check --label_column, or draw more rows (--train_size)")
LABELS = [dict(pair.split("=", 1) for pair in cfg.label_names).get(n, n) for n in names]
if main:
    source = repr(eval_split) if eval_split != cfg.train_split else f"{eval_split!r} too, without overlap"
    if eval_split != cfg.eval_split:
        also = " or 'validation'" if eval_split != "validation" else ""
        source += f" (there is no {cfg.eval_split!r}{also} split)"
    print(f"data: {cfg.train_size} rows from {cfg.train_split!r} for training, {cfg.eval_size} from {source} for "
          f"evaluation; {len(LABELS)} classes: {', '.join(LABELS)}")

# -- where it runs: a CUDA GPU, else Apple's GPU (MPS), else the CPU ------------------------------
import torch
from accelerate import PartialState

device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
state = PartialState(cpu=device == "cpu")  # rank 0 joins the others here; alone, this does nothing
main = state.is_main_process  # the same, as the launcher numbered the processes

# -- 2. tokenize once, with the fast tokenizer; padding happens per batch ---------------------------
from transformers import AutoTokenizer

try:
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name, trust_remote_code=cfg.trust_remote_code)
except (OSError, ValueError) as e:
    fail(not_found("model", cfg.model_name, "--model_name") if not os.path.isdir(cfg.model_name)
         else f"model {cfg.model_name!r} has no usable tokenizer: {str(e).splitlines()[0]}")


def tokenize(batch):
    encoded = tokenizer(batch["text"], truncation=True, max_length=cfg.max_length)
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]  # for group_by_length
    return encoded


train_ds = train_rows.map(tokenize, batched=True, remove_columns=["text"], desc="tokenize train")
eval_ds = eval_rows.map(tokenize, batched=True, remove_columns=["text"], desc="tokenize eval")

# -- 3. the model, wrapped in LoRA ------------------------------------------------------------------
import peft
import transformers
from peft import LoraConfig, TaskType, get_peft_model
from transformers import AutoConfig, AutoModelForSequenceClassification

# A local base model is recorded by absolute path, so the adapter loads from any working directory.
base_name = os.path.abspath(cfg.model_name) if os.path.isdir(cfg.model_name) else cfg.model_name
transformers.set_seed(cfg.seed)  # the new head and the LoRA matrices start from random values: same seed, same start
try:
    config = AutoConfig.from_pretrained(base_name, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                        label2id={l: i for i, l in enumerate(LABELS)}, trust_remote_code=cfg.trust_remote_code)
    for key in ("attention_dropout", "attention_probs_dropout_prob"):  # DistilBERT's name, BERT's name
        if hasattr(config, key):
            setattr(config, key, cfg.attention_dropout)
    # A saved head with another number of classes (a model tuned for 2, data with 4) is replaced by a fresh one.
    model, loading = AutoModelForSequenceClassification.from_pretrained(
        base_name, config=config, ignore_mismatched_sizes=True, output_loading_info=True, trust_remote_code=cfg.trust_remote_code)
except (OSError, ValueError) as e:
    fail(not_found("model", cfg.model_name, "--model_name") if not os.path.isdir(cfg.model_name)
         else f"model {cfg.model_name!r} cannot be loaded: {str(e).splitlines()[0]}")

linear_names = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
missing = [t for t in cfg.target_modules if t not in linear_names]
if missing:
    fail(f"--target_modules {' '.join(missing)} match nothing in {cfg.model_name!r}; its linear layers are: {' '.join(linear_names)}")
# The classification head is new, so it trains in full and is saved with the adapter:
# for DistilBERT that is pre_classifier and classifier, for BERT classifier.
head = [n for n, m in model.named_children() if n != model.base_model_prefix and any(True for _ in m.parameters())]
model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                         lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules,
                                         modules_to_save=list(head)))  # a copy: peft appends to it
trainable, total = model.get_nb_trainable_parameters()
if main:
    saved = sorted({saved_shape[0] for _, saved_shape, _ in loading["mismatched_keys"]})
    print(f"model: LoRA on {', '.join(cfg.target_modules)} + head {', '.join(head)}: "
          f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
          + (f"; a fresh head of {len(LABELS)} outputs replaces the saved one of {saved[0]}" if saved else ""))
    state.wait_for_everyone()  # the others may now read the data and the model

# -- 4. train, evaluating and saving a checkpoint at each epoch end ---------------------------------
import numpy as np
from accelerate.utils import broadcast_object_list
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments


def matmul_gflops(dtype, n=512, seconds=0.05):
    """How fast this CPU multiplies n x n matrices in dtype: one untimed product, then as many as fit in `seconds`."""
    a = torch.randn(n, n).to(dtype)
    a @ a
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        a @ a
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


precision, speed = cfg.mixed_precision, None
if precision == "auto" and device == "cuda":
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
elif precision == "auto" and device == "mps":
    precision = "no"  # fp32: autocast on Apple's GPU is not measured here (no Mac)
elif precision == "auto":
    # bf16 pays only where the CPU multiplies bf16 faster than fp32 (AMX, some AVX512-BF16 chips); elsewhere it is
    # slower, by 2x to 50x on the machines we tried. So measure, on rank 0, and give every process the same answer.
    speed = [{"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)} if main else None]
    broadcast_object_list(speed)
    speed = speed[0]
    precision = "bf16" if speed["bf16"] > 1.2 * speed["fp32"] else "no"  # 1.2: past the noise of a 50 ms timing
why = ("" if speed is None else f" (matmul {speed['bf16']:.3g} vs {speed['fp32']:.3g} GFLOP/s in fp32)" if precision == "bf16"
       else f" (matmul {speed['fp32']:.3g} vs {speed['bf16']:.3g} GFLOP/s in bf16)")
precision_text = ("fp32" if precision == "no" else precision) + why


def class_scores(confusion):
    """Per-class precision, recall and F1 from a confusion matrix (rows true, columns predicted)."""
    confusion = np.asarray(confusion)
    hits = np.diag(confusion)
    precision_, recall = hits / np.maximum(confusion.sum(0), 1), hits / np.maximum(confusion.sum(1), 1)
    return precision_, recall, 2 * precision_ * recall / np.maximum(precision_ + recall, 1e-12)


def compute_metrics(pred):
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    np.add.at(confusion, (pred.label_ids, np.argmax(pred.predictions, axis=-1)), 1)
    precision_, recall, f1 = class_scores(confusion)
    scores = {"accuracy": np.trace(confusion) / confusion.sum(), "macro_precision": precision_.mean(),
              "macro_recall": recall.mean(), "macro_f1": f1.mean(), "confusion": confusion.tolist()}
    if len(LABELS) == 2:  # two classes: label 1 is the positive one
        (tn, fp), (fn, tp) = confusion.tolist()
        scores |= {"precision": precision_[1], "recall": recall[1], "f1": f1[1], "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    return scores


steps_per_epoch = -(-cfg.train_size // cfg.batch_size)
args = TrainingArguments(
    output_dir=out,
    learning_rate=cfg.learning_rate,
    per_device_train_batch_size=cfg.batch_size,
    per_device_eval_batch_size=cfg.eval_batch_size or (4 if device == "cpu" else 64),
    num_train_epochs=cfg.num_epochs,
    eval_strategy="epoch",
    save_strategy="epoch",
    logging_strategy="steps",
    logging_steps=max(1, steps_per_epoch // 25),  # about 25 points per epoch on the loss curve
    seed=cfg.seed,
    bf16=precision == "bf16",
    fp16=precision == "fp16",
    train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    report_to="none",
    use_cpu=device == "cpu",
    dataloader_pin_memory=device == "cuda",
)
trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                  compute_metrics=compute_metrics)

if cfg.overwrite_output_dir and main and os.path.isdir(out):
    shutil.rmtree(out)  # asked for: the old run goes now, so no old checkpoint mixes with the new ones
resume_from = os.path.join(out, checkpoints[-1]) if cfg.resume else None
if main:
    print(f"training on {args.device} in {precision_text}, {args.world_size} process(es): "
          f"{cfg.train_size} train / {cfg.eval_size} eval rows, {cfg.num_epochs} epoch(s)"
          + (f", resuming from {resume_from}" if resume_from else ""))
# SIGTERM (a scheduler, `kill`) stops the run like Ctrl-C does: a message and the last whole checkpoint.
signal.signal(signal.SIGTERM, signal.default_int_handler)
start = time.time()
try:
    result = trainer.train(resume_from_checkpoint=resume_from)
except KeyboardInterrupt:
    if main:
        print(f"\ninterrupted; run again with --resume (and the same flags) to continue from the last checkpoint in {out}",
              file=sys.stderr)
    sys.exit(130)
wall = time.time() - start


def leave():
    """End a launched process without the interpreter's teardown. There, now and then, a native thread still running
    aborts the process ("terminate called without an active exception", SIGABRT; torch 2.13, gloo, 2 processes on a
    busy 2-core machine: 2 runs in 24, one of them after destroy_process_group), and the launcher fails a finished run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if not main:
    leave()  # its work is done; rank 0 writes the results

# -- 5. write the results; each appears whole or not at all ----------------------------------------
history = trainer.state.log_history
evals = [h for h in history if "eval_accuracy" in h]
losses = [h for h in history if "loss" in h]
final = evals[-1]


def write_atomically(path, write):
    """Write beside the target, then rename: a kill at any moment leaves the old state or the new, never half."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    remove(tmp)  # left behind by a run killed while writing
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        remove(tmp)


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


confusion = final["eval_confusion"]
metrics = {
    "eval_accuracy": final["eval_accuracy"],
    "eval_macro_precision": final["eval_macro_precision"], "eval_macro_recall": final["eval_macro_recall"],
    "eval_macro_f1": final["eval_macro_f1"],
    **({"eval_precision": final["eval_precision"], "eval_recall": final["eval_recall"], "eval_f1": final["eval_f1"]}
       if len(LABELS) == 2 else {}),
    "per_class": {name: {"precision": p, "recall": r, "f1": f, "support": sum(row)}
                  for name, p, r, f, row in zip(LABELS, *(s.tolist() for s in class_scores(confusion)), confusion)},
    "confusion_matrix": {"labels": LABELS, "rows_true_columns_predicted": confusion},
    "epochs": [{"epoch": round(e["epoch"]), "eval_accuracy": e["eval_accuracy"], "eval_loss": e["eval_loss"],
                "train_loss": float(np.mean([h["loss"] for h in losses if e["epoch"] - 1 < h["epoch"] <= e["epoch"]] or [np.nan]))}
               for e in evals],
    "train_loss": result.training_loss,
    "train_runtime_s": result.metrics["train_runtime"],
    "train_reviews_per_s": result.metrics["train_samples_per_second"],
    "eval_runtime_s": final["eval_runtime"],
    "eval_reviews_per_s": final["eval_samples_per_second"],
    "wall_time_s": wall,
    "device": str(args.device), "processes": args.world_size, "mixed_precision": precision, "matmul_gflops": speed,
    "data": {"train_split": cfg.train_split, "eval_split": eval_split, "labels": LABELS},
    "config": {k: v for k, v in asdict(cfg).items() if k not in ("overwrite_output_dir", "resume")} | {"base_model": base_name},
    "trainable_parameters": trainable, "total_parameters": total,
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
}
score_text = (f"F1 {final['eval_f1']:.4f}" if len(LABELS) == 2 else f"macro F1 {final['eval_macro_f1']:.4f}")
adapter_dir = os.path.join(out, "adapter")
load_code = (f"model = AutoPeftModelForSequenceClassification.from_pretrained(\"{adapter_dir}\", "
             f"num_labels={len(LABELS)}, id2label={dict(enumerate(LABELS))}, ignore_mismatched_sizes=True)")

card = f"""---
base_model: {base_name}
library_name: peft
pipeline_tag: text-classification
---
# LoRA adapter: {os.path.basename(base_name.rstrip('/'))} for text classification ({' / '.join(LABELS)})

- Base model: `{base_name}`
- Data: `{cfg.dataset_name}`, {cfg.train_size} texts from `{cfg.train_split}` and {cfg.eval_size} from `{eval_split}`, drawn with seed {cfg.seed}, truncated to {cfg.max_length} tokens
- LoRA: r={cfg.lora_r}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, target modules {cfg.target_modules}; trained head: {head}
- Training: learning rate {cfg.learning_rate}, batch size {cfg.batch_size}, {cfg.num_epochs} epoch(s), {precision_text} on {args.device}
- Final evaluation accuracy: **{final['eval_accuracy']:.4f}** on {cfg.eval_size} texts ({score_text})

Labels: {', '.join(f'{i} = {name}' for i, name in enumerate(LABELS))} (also in labels.json).

```python
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
{load_code}
tokenizer = AutoTokenizer.from_pretrained("{adapter_dir}")
```
"""


def save_adapter(path):
    model.save_pretrained(path)  # safetensors: LoRA weights and the trained head
    tokenizer.save_pretrained(path)
    with open(os.path.join(path, "README.md"), "w") as f:
        f.write(card)
    with open(os.path.join(path, "labels.json"), "w") as f:  # the base model's config has no label names
        json.dump(dict(enumerate(LABELS)), f)


def save_metrics(path):
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2)


def save_curves(path):
    from matplotlib.figure import Figure  # not pyplot: no screen, no window, nothing global to close
    fig = Figure(figsize=(15, 4.5))
    a, b, c = fig.subplots(1, 3)
    a.plot([h["step"] for h in losses], [h["loss"] for h in losses], marker=".")
    a.set(title="training loss", xlabel="step", ylabel="loss")
    b.plot([e["epoch"] for e in evals], [e["eval_accuracy"] for e in evals], marker="o")
    b.set_xticks([e["epoch"] for e in evals])
    b.set(title="evaluation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    c.imshow(confusion, cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        c.text(j, i, n, ha="center", va="center", color="white" if n > np.max(confusion) / 2 else "black")
    c.set(title=f"confusion matrix, epoch {round(final['epoch'])}", xlabel="predicted", ylabel="true",
          xticks=range(len(LABELS)), yticks=range(len(LABELS)), xticklabels=LABELS, yticklabels=LABELS)
    fig.tight_layout()
    fig.savefig(path, format="png")


write_atomically(os.path.join(out, "training_curves.png"), save_curves)
write_atomically(adapter_dir, save_adapter)
write_atomically(os.path.join(out, "metrics.json"), save_metrics)  # last: its presence marks a finished run

# -- 6. summary ---------------------------------------------------------------------------------------
model.eval()
examples = eval_rows.select(range(min(3, len(eval_rows))))
with torch.no_grad(), torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
    batch = tokenizer(list(examples["text"]), truncation=True, max_length=cfg.max_length, padding=True, return_tensors="pt")
    predicted = model(**batch.to(args.device)).logits.argmax(-1).tolist()
width = max(map(len, LABELS))
print(f"\n{'=' * 72}\ndone in {wall / 60:.1f} min on {args.device}: accuracy {final['eval_accuracy']:.4f} "
      f"({score_text}) on {cfg.eval_size} {eval_split} rows")
for text, true, p in zip(examples["text"], examples["label"], predicted):
    short = " ".join(text.split())
    print(f"  {'ok   ' if p == true else 'wrong'} predicted {LABELS[p]:<{width}} true {LABELS[true]:<{width}} \"{short[:60]}...\"")
print(f"adapter:  {adapter_dir}/\nmetrics:  {out}/metrics.json, {out}/training_curves.png\nload it, with its label names:\n"
      f"  from peft import AutoPeftModelForSequenceClassification\n  {load_code}\n"
      f"or predict: python predict.py {adapter_dir} \"What a wonderful film.\"\n{'=' * 72}")
if state.num_processes > 1:
    leave()
