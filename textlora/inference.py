"""Inference: the one way the model runs on texts, for train.py's evaluation, its summary and predict.py alike.
Tokenized rows go in sorted by length (batches pad little), through the Trainer's prediction loop (its collator,
batch size and precision), and come out as logits in the rows' order; the head computes in fp32 in every precision."""
from dataclasses import dataclass

import transformers
from transformers import DataCollatorWithPadding

from .labels import MULTI, REGRESSION


def load_model(name, **kwargs):
    """The base model for sequence classification in fp32, whatever its checkpoint's dtype: transformers 5 loads
    in the saved dtype (bf16 for many decoders), and the new head and LoRA matrices must train in fp32; mixed
    precision is autocast's job."""
    import torch
    from transformers import AutoModelForSequenceClassification
    return AutoModelForSequenceClassification.from_pretrained(name, dtype=torch.float32, **kwargs)


def head_in_fp32(model):
    """The trained head (peft's modules_to_save) computes in fp32 under autocast too: in bf16 a number per text is
    rounded to three significant digits, and class probabilities near a tie flip."""
    import torch
    from peft.utils import ModulesToSaveWrapper
    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper) and not hasattr(module, "bf16_free"):
            def forward(*args, _forward=module.forward, **kwargs):
                args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
                device = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
                with torch.autocast(device, enabled=False):
                    return _forward(*args, **kwargs)
            module.forward, module.bf16_free = forward, True


def fit_to_the_chip(model, device, precision):
    """On a CPU in bf16, two things the fp32 path and GPUs do not need. The frozen linear weights are cast to bf16
    once, not by autocast at every step (it caches no cast of a weight that needs no gradient); the math is the same,
    and the LoRA matrices and the head stay in fp32. And batch lengths are padded to a multiple of 32 (returned): the
    CPU's bf16 kernels keep code and memory for every shape they meet, so without it memory grows with the number of
    distinct lengths, that is with the data (bench/README.md)."""
    import torch
    head_in_fp32(model)
    if device != "cpu" or precision != "bf16":
        return None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
            module.to(torch.bfloat16)
    return 32


@dataclass
class PadWithin(DataCollatorWithPadding):
    """Each batch padded to its longest row, rounded up to `multiple` but never past `limit` (MAX_LENGTH within the
    model's reach): transformers' collator rounds up past a model's positions, where it fails."""
    limit: int = None
    multiple: int = None

    def __call__(self, features):
        longest = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            longest = min(-(-longest // self.multiple) * self.multiple, self.limit or longest)
        self.padding, self.max_length, self.pad_to_multiple_of = "max_length", longest, None
        return super().__call__(features)


class Trainer(transformers.Trainer):
    """transformers' Trainer, evaluating rows in the order given. With group_by_length it would evaluate in random
    groups of lengths too; the rows come sorted by length (by_length), so batches pad little and are the same
    batches in train.py's evaluation and in predict.py."""

    def _get_eval_sampler(self, eval_dataset):
        from torch.utils.data import SequentialSampler
        if self.args.world_size <= 1 and eval_dataset is not None:
            return SequentialSampler(eval_dataset)
        return None  # several processes: accelerate gives each its share, in order, as without grouping


def by_length(rows):
    """The rows sorted by token length, ties by their tokens, and that order: the same rows make the same batches
    in whatever order they come (train.py's drawn order, a file's own)."""
    import numpy as np
    lengths, ids = rows["length"], rows["input_ids"]
    order = np.array(sorted(range(len(rows)), key=lambda i: (lengths[i], ids[i])), dtype=np.int64)
    return rows.select(order), order


def predictor(model, tokenizer, device, precision, batch_size, limit, pad_to):
    """A Trainer that only predicts, with the arguments train.py's evaluation runs with."""
    import tempfile

    from transformers import TrainingArguments
    args = TrainingArguments(output_dir=tempfile.gettempdir(), per_device_eval_batch_size=batch_size,
                             bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu",
                             dataloader_pin_memory=device == "cuda", report_to="none", disable_tqdm=True)
    return Trainer(model=model, args=args, processing_class=tokenizer,
                   data_collator=PadWithin(tokenizer, limit=limit, multiple=pad_to))


def logits_of(trainer, rows):
    """The model's logits for tokenized rows, in the rows' order, in float32."""
    import numpy as np
    ordered, order = by_length(rows.remove_columns([c for c in ("label",) if c in rows.column_names]))
    predicted = np.asarray(trainer.predict(ordered).predictions, dtype=np.float32)
    logits = np.empty_like(predicted)
    logits[order] = predicted
    return logits


def probabilities(logits, problem):
    """Per class (softmax), per label (sigmoid), or the number itself."""
    import numpy as np
    logits = np.asarray(logits, dtype=np.float64)
    if problem == REGRESSION:
        return logits
    if problem == MULTI:
        return 1 / (1 + np.exp(-logits))
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def decided(logits, problem, threshold):
    """What the logits say: a class id per text, 0/1 per text and label, or the number."""
    p = probabilities(logits, problem)
    if problem == REGRESSION:
        return p.reshape(-1)
    if problem == MULTI:
        return p > threshold
    return p.argmax(-1)
