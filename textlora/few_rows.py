"""Few training rows: an epoch over fewer rows than MIN_EPOCH_ROWS passes over them several times, so that a few dozen
labelled rows get about the optimiser steps of the recipe's 1,000 (one epoch at batch 4: 250 steps), where one pass
over 32 rows is 8 steps of a new random head, and the model stays near chance (bench/few_rows.py). The one rule
(the run, each trial of a search and what the reports say of it all call passes()); it depends on the settings
alone, so a resume and best_settings.json make the same epochs.

Before those epochs, where the head reads one class of several and the architecture can read the mean of the tokens
(textlora/pooling.py), a contrastive stage as SetFit's (Tunstall et al. 2022): the LoRA matrices are trained for the
mean of a text's tokens to lie near those of its class and far from the others' (cosine similarity, 1 for a pair of
one class, 0 for two), so that the few rows the head learns from are already apart. The passes alone leave a head on
[CLS] near chance on IMDB with a few dozen rows; the stage and the mean come near SetFit's accuracy on the same
backbone (bench/README.md)."""

MOST_ROWS = 10_000_000  # an epoch's order is an index per row seen, built before the first step
PAIRS_PER_ROW = 40  # as SetFit's num_iterations=20 draws them: one pair of the row's class and one of another, 20 times
PAIR_BATCH = 16  # pairs a step, SetFit's
# of the run's TrainingArguments, those the stage keeps: its model is the base model under a pair's loss, which the
# rest (checkpointing of activations, label smoothing, NEFTune, evaluation, schedules on a score) would break
KEPT = ("output_dir", "learning_rate", "seed", "bf16", "fp16", "use_cpu", "dataloader_pin_memory", "weight_decay",
        "max_grad_norm", "optim", "adam_beta1", "adam_beta2", "adam_epsilon", "gradient_accumulation_steps")


def stage_arguments(args):
    """The stage's TrainingArguments: one epoch over the pairs, already in their order, nothing saved or evaluated (a
    checkpoint of the epochs after it holds what it trained)."""
    from transformers import TrainingArguments
    return TrainingArguments(**{k: getattr(args, k) for k in KEPT}, num_train_epochs=1,
                             per_device_train_batch_size=PAIR_BATCH, eval_strategy="no", save_strategy="no",
                             logging_strategy="no", train_sampling_strategy="sequential", report_to="none",
                             remove_unused_columns=False)


def passes(cfg):
    """How many times each epoch passes over the training rows: once from MIN_EPOCH_ROWS rows on (or with 0, or
    where --max_steps decides how long), else as many times as reach MIN_EPOCH_ROWS rows (32 rows of 1,000: 32).
    Counted in texts: long texts read in windows repeat their windows."""
    if not cfg.min_epoch_rows or cfg.train_size >= cfg.min_epoch_rows or (cfg.trainer.get("max_steps") or -1) > 0:
        return 1
    return -(-cfg.min_epoch_rows // cfg.train_size)


def repeated(rows, cfg):
    """The tokenized training rows as one epoch sees them: passes(cfg) orders of them one after the other, each a
    shuffle (batches of similar lengths with GROUP_BY_LENGTH, by transformers' own grouping) drawn from one generator
    seeded by --data_seed or --seed, which the Trainer then takes in that order (sampling() says so). Copies shuffled
    as one set would meet in a batch: a third of the batches of 4 from 16 rows, and nearly all grouped by length,
    since a row's copies share its length; here only a batch that spans two passes can hold a row twice. Every epoch
    of the run takes the same order."""
    import numpy as np
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices
    k = passes(cfg)
    if k == 1:
        return rows
    batch = cfg.batch_size * (cfg.trainer.get("gradient_accumulation_steps") or 1)
    seed = cfg.trainer.get("data_seed")
    generator = torch.Generator().manual_seed(cfg.seed if seed is None else seed)
    lengths = rows["length"][:]  # read once: a column indexed row by row reads row by row
    order = [np.asarray(get_length_grouped_indices(lengths, batch, generator=generator) if cfg.group_by_length
                        else torch.randperm(len(rows), generator=generator).numpy(), dtype=np.int64)
             for _ in range(k)]
    return rows.select(np.concatenate(order))


def sampling(cfg):
    """The Trainer's train_sampling_strategy: the order repeated() made, or the Trainer's own."""
    return "sequential" if passes(cfg) > 1 else "group_by_length" if cfg.group_by_length else "random"


def text(cfg):
    """In words, for the data line and metrics.json; empty with one pass."""
    k = passes(cfg)
    return (f"under --min_epoch_rows {cfg.min_epoch_rows}: {k} passes over them an epoch, {k * cfg.train_size} rows"
            if k > 1 else "")


def contrastive_pairs(cfg, config):
    """How many pairs the contrastive stage trains on (0: no stage, the head reads what its architecture reads): with
    several passes an epoch, one class of several per text and an architecture that can read the mean; PAIRS_PER_ROW
    a row, at most MIN_EPOCH_ROWS; none with CONTRASTIVE_STAGE off, or in a search (each trial would need its own:
    its best_settings.json says off)."""
    from .labels import SINGLE
    from .pooling import can_mean_pool
    if not cfg.contrastive_stage or cfg.search_trials or passes(cfg) == 1 or config.problem_type != SINGLE \
            or not can_mean_pool(config):
        return 0
    return min(cfg.min_epoch_rows, PAIRS_PER_ROW * cfg.train_size)


def pairs(labels, count, seed):
    """count pairs of row positions and 1.0 (one class) or 0.0 (two), as SetFit draws them: rounds over the rows,
    each row with a row of its own class (itself where it is its class's only row) and one of another, drawn from a
    seeded generator, shuffled and cut at count. A round is drawn for all rows at once, from the rows sorted by class:
    a row's own class is a block of them, the others the rest."""
    import numpy as np
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    n = len(labels)
    by_class = np.argsort(labels, kind="stable")  # the rows of each class together
    classes, start, size = np.unique(labels[by_class], return_index=True, return_counts=True)
    c = np.searchsorted(classes, labels)  # each row's class, as its block
    rank = np.empty(n, dtype=np.int64)
    rank[by_class] = np.arange(n)  # each row's place in the sorted rows
    drawn, rows = [], np.arange(n)
    while sum(len(d) for d in drawn) < count:
        # another row of its block: a draw among size - 1, past its own place (itself only when alone)
        k = rng.integers(0, np.maximum(size[c] - 1, 1))
        k = np.where((size[c] > 1) & (start[c] + k >= rank), k + 1, k)
        drawn.append(np.stack([rows, by_class[start[c] + k], np.ones(n)], 1))
        if len(classes) > 1:  # a row of the other blocks: a draw among n - size, the block skipped
            k = rng.integers(0, n - size[c])
            drawn.append(np.stack([rows, by_class[np.where(k < start[c], k, k + size[c])], np.zeros(n)], 1))
    drawn = np.concatenate(drawn)[rng.permutation(sum(len(d) for d in drawn))[:count]]
    return [(int(i), int(j), float(same)) for i, j, same in drawn]


def contrastive_stage(model, rows, cfg, count, args, pad):
    """Train the model's LoRA matrices on count pairs of the training rows (the head is not trained here): the
    Trainer's loop at args (stage_arguments), each text read as the head reads it, the mean of its tokens (the model
    is mean_pooled already: train.py's lora_model). pad: the run's collator."""
    import torch
    import transformers

    from . import pooling
    texts = rows.select_columns([c for c in rows.column_names if c not in ("label", "text_id", "tokens", "length")])
    drawn = pairs(rows["label"][:], count, cfg.seed)

    class Pairs(torch.nn.Module):  # what the Trainer trains: the base model (its LoRA matrices) under a pair's loss
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, first, second, labels):
            u, v = (self.base(**side)[0][:, 0].float() for side in (first, second))  # the mean (pooling.mean_pooled)
            return {"loss": torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(u, v), labels)}

    def collate(batch):
        # plain dicts: nn.DataParallel splits a dict, and copies a BatchEncoding whole onto each GPU
        return {"first": dict(pad([texts[i] for i, *_ in batch])), "second": dict(pad([texts[j] for _, j, _ in batch])),
                "labels": torch.tensor([same for *_, same in batch])}

    transformers.Trainer(model=Pairs(pooling.base_of(model)), args=args, train_dataset=drawn,
                         data_collator=collate).train()


def stage_text(cfg, pairs):
    """The contrastive stage of contrastive_pairs() pairs in words, for the training line and the card."""
    return (f"{pairs} pairs of the {cfg.train_size} training rows (of one class or two), {-(-pairs // PAIR_BATCH)} "
            f"steps of {PAIR_BATCH} on the LoRA matrices; the head reads the mean of the tokens") if pairs else ""
