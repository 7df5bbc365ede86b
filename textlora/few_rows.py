"""Few training rows: an epoch over fewer rows than MIN_EPOCH_ROWS passes over them several times, so that a few dozen
labelled rows get about the optimiser steps of the recipe's 1,000 (one epoch at batch 4: 250 steps), where one pass
over 32 rows is 8 steps of a new random head, and the model stays near chance (bench/few_rows.py). The one rule
(the run, each trial of a search and what the reports say of it all call passes()); it depends on the settings
alone, so a resume and best_settings.json make the same epochs."""

MOST_ROWS = 10_000_000  # an epoch's order is an index per row seen, built before the first step


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
