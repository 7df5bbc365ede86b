"""Inference: the one way the model runs on texts, for train.py's evaluation, its summary and predict.py alike.
Tokenized rows go in sorted by length (batches pad little), through the Trainer's prediction loop (its collator,
batch size and precision), and come out as logits in the rows' order; the head computes in fp32 in every precision."""
import contextlib
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

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        rows = self.eval_dataset if eval_dataset is None else eval_dataset
        if isinstance(rows, str):  # the name of one of several: the Trainer's way of evaluating each
            rows = self.eval_dataset[rows]
        if isinstance(rows, dict):  # the Trainer evaluates each by name, through this method again
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        with texts_of(self.compute_metrics, rows):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        with texts_of(self.compute_metrics, test_dataset):
            return super().predict(test_dataset, ignore_keys, metric_key_prefix)

    def _get_eval_sampler(self, eval_dataset):
        from torch.utils.data import SequentialSampler
        if self.args.world_size <= 1 and eval_dataset is not None:
            return SequentialSampler(eval_dataset)
        return None  # several processes: accelerate gives each its share, in order, as without grouping


def tokenized(rows, tokenize, tokenizer, max_length, long_texts, stride, name):
    """Rows of text (and label) as tokens, by train.py's tokenize: with windows, a long text's several rows. The label
    keeps its type (class ids, or float32 for the loss)."""
    label = rows.features.get("label")
    out = rows.map(tokenize, batched=True, with_indices=True, remove_columns=rows.column_names, desc=f"tokenize {name}",
                   fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "long_texts": long_texts,
                              "stride": stride})
    return out.cast_column("label", label) if label is not None else out


def per_text(values, text_ids):
    """Each text's logits from its windows' (one window: its own), in the order of the texts' ids: their mean, a rule
    that keeps every window's say (bench/README.md, "Long texts")."""
    import numpy as np
    values = np.asarray(values)
    ids, group = np.unique(np.asarray(text_ids), return_inverse=True)
    if len(ids) == len(values):  # a window a text: only the order changes
        return values[np.argsort(np.asarray(text_ids), kind="stable")]
    sums = np.zeros((len(ids), *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, group, values)
    return (sums / np.bincount(group).reshape(-1, *[1] * (values.ndim - 1))).astype(values.dtype)


def long_texts(rows, max_length):
    """How many of the tokenized rows' texts are longer than max_length tokens, of how many (a pair counts once)."""
    import numpy as np
    ids, first = np.unique(column(rows, "text_id"), return_index=True)
    return {"longer": int((column(rows, "tokens")[first] > max_length).sum()), "texts": len(ids),
            "rows": len(rows)}


def texts(rows, ids):
    """The tokenized rows (windows) of the texts of these ids."""
    import numpy as np
    return rows.select(np.flatnonzero(np.isin(column(rows, "text_id"), list(ids))))


def column(rows, name):
    """A column of a datasets table as a numpy array, in the rows' order (a selection's indices applied), through
    arrow: datasets' numpy format and its Column read a row at a time, seconds per 100,000 rows."""
    return rows.select_columns([name]).with_format("arrow")[:][name].to_numpy()


def first_of_each(values, text_ids):
    """A text's label, from its first window's (every window has its text's)."""
    import numpy as np
    ids = np.asarray(text_ids)
    _, first = np.unique(ids, return_index=True)
    return np.asarray(values)[first]


@contextlib.contextmanager
def texts_of(scorer, rows):
    """While rows are scored, the scorer (scores.Scores) knows which text each of them is a window of."""
    if not hasattr(scorer, "text_ids") or "text_id" not in getattr(rows, "column_names", ()):
        yield
        return
    scorer.text_ids = column(rows, "text_id")
    try:
        yield
    finally:
        scorer.text_ids = None


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
    """The model's logits for tokenized rows, a text's windows as one, in the order of the texts' ids (the rows'
    order), in float32."""
    import numpy as np
    ordered, order = by_length(rows.remove_columns([c for c in ("label",) if c in rows.column_names]))
    predicted = np.asarray(trainer.predict(ordered).predictions, dtype=np.float32)
    return per_text(predicted, column(rows, "text_id")[order])


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
