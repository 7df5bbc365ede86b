"""Fine-tune a text classifier with LoRA: DistilBERT on IMDB movie reviews.

    python train.py                                   # the defaults below
    python train.py --train_size 200 --eval_size 200  # any constant, as a flag in lower case
    torchrun --nproc_per_node=2 train.py              # several processes (DDP), same flags

Reads the constants below, loads a seeded subset of the data, wraps the model in a LoRA adapter,
trains it with the transformers Trainer and writes OUTPUT_DIR:
    checkpoint-*/           one per epoch (what --resume continues from)
    adapter/                adapter weights (safetensors), adapter_config.json, tokenizer, labels.json, README.md
    metrics.json            final and per-epoch accuracy and loss, timings, device, versions
    training_curves.png     training loss per step, evaluation accuracy per epoch
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
EVAL_SPLIT = "test"
TRAIN_SIZE = 1000                       # reviews drawn at random from TRAIN_SPLIT
EVAL_SIZE = 1000                        # reviews drawn at random from EVAL_SPLIT
SEED = 42
MAX_LENGTH = 512                        # tokens; longer reviews are truncated
LABELS = ["Negative", "Positive"]       # label 0, label 1
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
MIXED_PRECISION = "auto"                # auto: bf16 on a GPU that has it (else fp16) or a CPU with AMX, else fp32; or bf16, fp16, no
ATTENTION_DROPOUT = 0.0                 # DistilBERT's own is 0.1, which forces the slow attention kernel in training
GROUP_BY_LENGTH = True                  # batches of similar length pad less (--no_group_by_length: random batches)
EVAL_BATCH_SIZE = None                  # None: 64 on a GPU; 4 on a CPU, where larger batches ran slower (bench/)
# -----------------------------------------------------------------------------


@dataclass
class Config:
    model_name: str = field(default=MODEL_NAME, metadata={"help": "Hub name or local folder"})
    dataset_name: str = field(default=DATASET_NAME, metadata={"help": "Hub name, local folder, or .parquet/.csv/.jsonl file"})
    train_split: str = TRAIN_SPLIT
    eval_split: str = EVAL_SPLIT
    train_size: int = TRAIN_SIZE
    eval_size: int = EVAL_SIZE
    seed: int = SEED
    max_length: int = MAX_LENGTH
    lora_r: int = LORA_R
    lora_alpha: int = LORA_ALPHA
    lora_dropout: float = LORA_DROPOUT
    target_modules: list[str] = field(default_factory=lambda: list(TARGET_MODULES))
    learning_rate: float = LEARNING_RATE
    batch_size: int = BATCH_SIZE
    num_epochs: int = NUM_EPOCHS
    output_dir: str = OUTPUT_DIR
    overwrite_output_dir: bool = field(default=False, metadata={"help": "replace a finished run in output_dir"})
    resume: bool = field(default=False, metadata={"help": "continue the run in output_dir from its last checkpoint"})
    mixed_precision: str = field(default=MIXED_PRECISION, metadata={"choices": ["auto", "bf16", "fp16", "no"]})
    attention_dropout: float = ATTENTION_DROPOUT
    group_by_length: bool = GROUP_BY_LENGTH
    eval_batch_size: int | None = EVAL_BATCH_SIZE
    trust_remote_code: bool = field(default=False, metadata={"help": "run Python code shipped with a Hub model"})


RANK = int(os.environ.get("RANK", "0"))  # torchrun and accelerate set it; rank 0 alone prints and writes results


def fail(message):
    """Bad input: one line on stderr and exit status 2, before anything is written."""
    if RANK == 0:
        print(f"train.py: error: {message}", file=sys.stderr)
    sys.exit(2)


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

import numpy as np
import peft
import torch
import transformers
from datasets import load_dataset
from peft import LoraConfig, TaskType, get_peft_model
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, Trainer, TrainingArguments)

cfg = HfArgumentParser(Config).parse_args_into_dataclasses()[0]
offline = os.environ.get("HF_HUB_OFFLINE") == "1"


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

out = cfg.output_dir
checkpoints = sorted((d for d in (os.listdir(out) if os.path.isdir(out) else []) if d.startswith("checkpoint-")
                      and os.path.exists(os.path.join(out, d, "trainer_state.json"))),  # written last: the checkpoint is whole
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

# -- 1. data: a seeded random subset of each split ------------------------------------------------
try:
    if os.path.isfile(cfg.dataset_name):
        kind = {".jsonl": "json"}.get(os.path.splitext(cfg.dataset_name)[1], os.path.splitext(cfg.dataset_name)[1][1:])
        data = load_dataset(kind, data_files=cfg.dataset_name)
    else:
        data = load_dataset(cfg.dataset_name)
except Exception as e:  # datasets raises a different type for each way a name can be wrong
    fail(not_found("dataset", cfg.dataset_name, "--dataset_name") if not os.path.exists(cfg.dataset_name)
         else f"dataset {cfg.dataset_name!r} cannot be read: {str(e).splitlines()[0]}")

if os.path.isfile(cfg.dataset_name):
    # One file is one table: train and eval reviews are drawn from it without overlap.
    rows = data["train"].shuffle(seed=cfg.seed)
    if cfg.train_size + cfg.eval_size > len(rows):
        fail(f"--train_size + --eval_size = {cfg.train_size + cfg.eval_size}, but {cfg.dataset_name!r} has {len(rows)} rows")
    train_rows, eval_rows = rows.select(range(cfg.train_size)), rows.select(range(cfg.train_size, cfg.train_size + cfg.eval_size))
else:
    subsets = []
    for split, size, flag in ((cfg.train_split, cfg.train_size, "--train_size"), (cfg.eval_split, cfg.eval_size, "--eval_size")):
        if split not in data:
            fail(f"dataset {cfg.dataset_name!r} has no split {split!r} (it has {', '.join(data)})")
        if size > len(data[split]):
            fail(f"{flag} {size} is larger than the {split!r} split, which has {len(data[split])} reviews")
        subsets.append(data[split].shuffle(seed=cfg.seed).select(range(size)))
    train_rows, eval_rows = subsets
for column in ("text", "label"):
    if column not in train_rows.column_names:
        fail(f"dataset {cfg.dataset_name!r} has no {column!r} column (it has {', '.join(train_rows.column_names)})")
bad = sorted((set(train_rows["label"]) | set(eval_rows["label"])) - {0, 1})
if bad:
    fail(f"labels must be 0 ({LABELS[0]}) or 1 ({LABELS[1]}); dataset {cfg.dataset_name!r} also has {bad[:5]}")

# -- 2. tokenize once, with the fast tokenizer; padding happens per batch ---------------------------
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
# A local base model is recorded by absolute path, so the adapter loads from any working directory.
base_name = os.path.abspath(cfg.model_name) if os.path.isdir(cfg.model_name) else cfg.model_name
transformers.set_seed(cfg.seed)  # the new head and the LoRA matrices start from random values: same seed, same start
try:
    config = AutoConfig.from_pretrained(base_name, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                        label2id={l: i for i, l in enumerate(LABELS)}, trust_remote_code=cfg.trust_remote_code)
    for key in ("attention_dropout", "attention_probs_dropout_prob"):  # DistilBERT's name, BERT's name
        if hasattr(config, key):
            setattr(config, key, cfg.attention_dropout)
    model = AutoModelForSequenceClassification.from_pretrained(base_name, config=config, trust_remote_code=cfg.trust_remote_code)
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
if RANK == 0:
    print(f"LoRA on {', '.join(cfg.target_modules)} + head {', '.join(head)}: "
          f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")

# -- 4. train, evaluating and saving a checkpoint at each epoch end ---------------------------------
cuda = torch.cuda.is_available()
precision = cfg.mixed_precision
if precision == "auto":
    if cuda:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:  # without AMX tiles, bf16 matrix products run at half the fp32 speed, even with AVX512-BF16 (bench/)
        precision = "bf16" if torch.cpu._is_amx_tile_supported() else "no"


def compute_metrics(pred):
    predicted, true = np.argmax(pred.predictions, axis=-1), pred.label_ids
    tp, fp = int(((predicted == 1) & (true == 1)).sum()), int(((predicted == 1) & (true == 0)).sum())
    tn, fn = int(((predicted == 0) & (true == 0)).sum()), int(((predicted == 0) & (true == 1)).sum())
    precision_, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"accuracy": (tp + tn) / len(true), "precision": precision_, "recall": recall,
            "f1": 2 * precision_ * recall / max(precision_ + recall, 1e-12), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


steps_per_epoch = -(-cfg.train_size // cfg.batch_size)
args = TrainingArguments(
    output_dir=out,
    learning_rate=cfg.learning_rate,
    per_device_train_batch_size=cfg.batch_size,
    per_device_eval_batch_size=cfg.eval_batch_size or (64 if cuda else 4),
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
    use_cpu=not cuda,
    dataloader_pin_memory=cuda,
)
trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                  compute_metrics=compute_metrics)

if cfg.overwrite_output_dir and RANK == 0 and os.path.isdir(out):
    shutil.rmtree(out)  # asked for: the old run goes now, so no old checkpoint mixes with the new ones
resume_from = os.path.join(out, checkpoints[-1]) if cfg.resume else None
if RANK == 0:
    print(f"training on {args.device} ({precision if precision != 'no' else 'fp32'}), {args.world_size} process(es): "
          f"{cfg.train_size} train / {cfg.eval_size} eval reviews, {cfg.num_epochs} epoch(s)"
          + (f", resuming from {resume_from}" if resume_from else ""))
# SIGTERM (a scheduler, `kill`) stops the run like Ctrl-C does: a message and the last whole checkpoint.
signal.signal(signal.SIGTERM, signal.default_int_handler)
start = time.time()
try:
    result = trainer.train(resume_from_checkpoint=resume_from)
except KeyboardInterrupt:
    if RANK == 0:
        print(f"\ninterrupted; run again with --resume (and the same flags) to continue from the last checkpoint in {out}",
              file=sys.stderr)
    sys.exit(130)
wall = time.time() - start
if not trainer.is_world_process_zero():
    sys.exit(0)

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


metrics = {
    "eval_accuracy": final["eval_accuracy"],
    "eval_precision": final["eval_precision"], "eval_recall": final["eval_recall"], "eval_f1": final["eval_f1"],
    "confusion_matrix": {"labels": LABELS, "rows_true_columns_predicted":
                         [[final["eval_tn"], final["eval_fp"]], [final["eval_fn"], final["eval_tp"]]]},
    "epochs": [{"epoch": round(e["epoch"]), "eval_accuracy": e["eval_accuracy"], "eval_loss": e["eval_loss"],
                "train_loss": float(np.mean([h["loss"] for h in losses if e["epoch"] - 1 < h["epoch"] <= e["epoch"]] or [np.nan]))}
               for e in evals],
    "train_loss": result.training_loss,
    "train_runtime_s": result.metrics["train_runtime"],
    "train_reviews_per_s": result.metrics["train_samples_per_second"],
    "eval_runtime_s": final["eval_runtime"],
    "eval_reviews_per_s": final["eval_samples_per_second"],
    "wall_time_s": wall,
    "device": str(args.device), "processes": args.world_size, "mixed_precision": precision,
    "config": {k: v for k, v in asdict(cfg).items() if k not in ("overwrite_output_dir", "resume")} | {"base_model": base_name},
    "trainable_parameters": trainable, "total_parameters": total,
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
}

card = f"""---
base_model: {base_name}
library_name: peft
pipeline_tag: text-classification
---
# LoRA adapter: {os.path.basename(base_name.rstrip('/'))} for sentiment ({LABELS[0]} / {LABELS[1]})

- Base model: `{base_name}`
- Data: `{cfg.dataset_name}`, {cfg.train_size} reviews from `{cfg.train_split}` and {cfg.eval_size} from `{cfg.eval_split}`, drawn with seed {cfg.seed}, truncated to {cfg.max_length} tokens
- LoRA: r={cfg.lora_r}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, target modules {cfg.target_modules}; trained head: {head}
- Training: learning rate {cfg.learning_rate}, batch size {cfg.batch_size}, {cfg.num_epochs} epoch(s), {precision if precision != 'no' else 'fp32'} on {args.device}
- Final evaluation accuracy: **{final['eval_accuracy']:.4f}** on {cfg.eval_size} reviews (F1 {final['eval_f1']:.4f})

Labels: 0 = {LABELS[0]}, 1 = {LABELS[1]}.

```python
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
model = AutoPeftModelForSequenceClassification.from_pretrained("{os.path.join(out, 'adapter')}")
tokenizer = AutoTokenizer.from_pretrained("{os.path.join(out, 'adapter')}")
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
    import matplotlib
    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([h["step"] for h in losses], [h["loss"] for h in losses], marker=".")
    a.set(title="training loss", xlabel="step", ylabel="loss")
    b.plot([e["epoch"] for e in evals], [e["eval_accuracy"] for e in evals], marker="o")
    b.set_xticks([e["epoch"] for e in evals])
    b.set(title="evaluation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


adapter_dir = os.path.join(out, "adapter")
write_atomically(os.path.join(out, "training_curves.png"), save_curves)
write_atomically(adapter_dir, save_adapter)
write_atomically(os.path.join(out, "metrics.json"), save_metrics)  # last: its presence marks a finished run

# -- 6. summary ---------------------------------------------------------------------------------------
model.eval()
examples = eval_rows.select(range(min(3, len(eval_rows))))
with torch.no_grad(), torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
    batch = tokenizer(list(examples["text"]), truncation=True, max_length=cfg.max_length, padding=True, return_tensors="pt")
    predicted = model(**batch.to(args.device)).logits.argmax(-1).tolist()
print(f"\n{'=' * 72}\ndone in {wall / 60:.1f} min on {args.device}: accuracy {final['eval_accuracy']:.4f} "
      f"(F1 {final['eval_f1']:.4f}) on {cfg.eval_size} {cfg.eval_split} reviews")
for text, true, p in zip(examples["text"], examples["label"], predicted):
    short = " ".join(text.split())
    print(f"  {'ok   ' if p == true else 'wrong'} predicted {LABELS[p]:<8} true {LABELS[true]:<8} \"{short[:60]}...\"")
print(f"adapter:  {adapter_dir}/\nmetrics:  {out}/metrics.json, {out}/training_curves.png\nload it:\n"
      f"  from peft import AutoPeftModelForSequenceClassification\n"
      f"  model = AutoPeftModelForSequenceClassification.from_pretrained(\"{adapter_dir}\")\n"
      f"or predict: python predict.py {adapter_dir} \"What a wonderful film.\"\n{'=' * 72}")
