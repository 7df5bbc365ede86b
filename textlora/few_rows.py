"""Few training rows: an epoch over fewer rows than MIN_EPOCH_ROWS passes over them several times, so that a few dozen
labelled rows get enough optimiser steps, where one pass over 32 rows is 8 steps of a new random head, and the model
stays near chance (bench/few_rows.py). The one rule is passes() (the run, each trial of a search and what the
reports say of it all call it); it depends on the settings and the model's config alone, so a resume and
best_settings.json make the same epochs.

Before those epochs, where the head reads one class of several and the architecture can read the mean of the tokens
(textlora/pooling.py), a contrastive stage as SetFit's (Tunstall et al. 2022): the LoRA matrices are trained for the
mean of a text's tokens to lie near those of its class and far from the others' (cosine similarity, 1 for a pair of
one class, 0 for two). SetFit draws two pairs a row and reads both texts of each; here every pair of the rows of a
step counts (a step of 16 rows is 120 pairs, each text read once), which reads each text a quarter as often for the
same steps. Then the head starts as a logistic regression on the mean (linear probing, then fine-tuning: Kumar et
al. 2022), so that the epochs after the stage only adjust it and need fewer passes. bench/README.md has what each part
does on IMDB and AG News against SetFit."""

MOST_ROWS = 10_000_000  # an epoch's order is an index per row seen, built before the first step
STAGE_ROUNDS = 20  # the stage reads each row this often (SetFit's num_iterations), at most 2 * MIN_EPOCH_ROWS texts
STAGE_ROWS = 16  # rows a step of the stage: all their pairs are its loss
# after the stage the head starts from a logistic regression: an epoch passes over the rows until it saw this many
# a class (its weights to each class are what the epochs adjust)
EPOCH_ROWS_AFTER_STAGE = 128
NOT_TEXT = ("label", "text_id", "tokens", "length")  # the columns of a tokenized row that the model does not read
# in run.json: a --resume of a run begun by another recipe is refused
RECIPE = "all pairs of a step, the head from a logistic regression on the mean, 128 rows a class an epoch"
# of the run's TrainingArguments, those the stage keeps: its model is the base model under a pair's loss, which the
# rest (checkpointing of activations, label smoothing, NEFTune, evaluation, schedules on a score) would break
KEPT = ("output_dir", "learning_rate", "seed", "bf16", "fp16", "use_cpu", "dataloader_pin_memory", "weight_decay",
        "max_grad_norm", "optim", "adam_beta1", "adam_beta2", "adam_epsilon")  # a step of rows is already whole


def stage_arguments(args):
    """The stage's TrainingArguments, and those that read the head's features after it: one epoch over the pairs,
    already in their order, nothing saved, evaluated or logged (a checkpoint of the epochs after it holds what it
    trained). An item is a step's rows; a tenth of the steps warm up (SetFit's schedule too)."""
    from transformers import TrainingArguments
    return TrainingArguments(**{k: getattr(args, k) for k in KEPT}, num_train_epochs=1, warmup_steps=0.1,
                             per_device_train_batch_size=1, per_device_eval_batch_size=args.per_device_eval_batch_size,
                             eval_strategy="no", save_strategy="no",
                             logging_strategy="no", train_sampling_strategy="sequential", report_to="none",
                             remove_unused_columns=False)


def few(cfg):
    """Whether the training rows are few: fewer than MIN_EPOCH_ROWS (not 0), and no --max_steps deciding how long."""
    return bool(cfg.min_epoch_rows) and cfg.train_size < cfg.min_epoch_rows \
        and not (cfg.trainer.get("max_steps") or -1) > 0


def passes(cfg, config):
    """How many times each epoch passes over the training rows: once unless they are few(); else as many times as
    reach MIN_EPOCH_ROWS rows (32 rows of 1,000: 32), or after a contrastive stage EPOCH_ROWS_AFTER_STAGE a class,
    at most MIN_EPOCH_ROWS (32 rows of 2 classes, 256 rows: 8). Counted in texts: long texts read in windows repeat
    their windows."""
    if not few(cfg):
        return 1
    rows = min(cfg.min_epoch_rows, EPOCH_ROWS_AFTER_STAGE * config.num_labels) if stage_runs(cfg, config) \
        else cfg.min_epoch_rows
    return -(-rows // cfg.train_size)


def repeated(rows, cfg, k):
    """The tokenized training rows as one epoch sees them: k (passes()) orders of them one after the other, each a
    shuffle (batches of similar lengths with GROUP_BY_LENGTH, by transformers' own grouping) drawn from one generator
    seeded by --data_seed or --seed, which the Trainer then takes in that order (sampling() says so). Copies shuffled
    as one set would meet in a batch: a third of the batches of 4 from 16 rows, and nearly all grouped by length,
    since a row's copies share its length; here only a batch that spans two passes can hold a row twice. Every epoch
    of the run takes the same order."""
    import numpy as np
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices
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


def sampling(cfg, k):
    """The Trainer's train_sampling_strategy for k passes: the order repeated() made, or the Trainer's own."""
    return "sequential" if k > 1 else "group_by_length" if cfg.group_by_length else "random"


def text(cfg, k):
    """k passes in words, for the data line and metrics.json; empty with one pass."""
    return (f"under --min_epoch_rows {cfg.min_epoch_rows}: {k} passes over them an epoch, {k * cfg.train_size} rows"
            if k > 1 else "")


def stage_runs(cfg, config):
    """Whether a contrastive stage comes before the epochs (and the head reads the mean): with few() rows, one class
    of several per text and an architecture that can read the mean; not with CONTRASTIVE_STAGE off, nor in a search
    (each trial would need its own: its best_settings.json says off)."""
    from .labels import SINGLE
    from .pooling import can_mean_pool
    return bool(cfg.contrastive_stage) and not cfg.search_trials and few(cfg) and config.problem_type == SINGLE \
        and can_mean_pool(config)


def stage_rounds(cfg, config):
    """How many times the stage reads each training row (0: no stage): STAGE_ROUNDS, fewer where that would read more
    than 2 * MIN_EPOCH_ROWS texts (500 rows: 4)."""
    return min(STAGE_ROUNDS, -(-2 * cfg.min_epoch_rows // cfg.train_size)) if stage_runs(cfg, config) else 0


def batches(labels, rounds, seed):
    """The stage's steps: each round a seeded shuffle of the rows cut into steps of at most STAGE_ROWS, of sizes that
    differ by one at most (17 rows: 9 and 8, not 16 and a row with no pair), as arrays of row positions."""
    import numpy as np
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(rounds):
        order = rng.permutation(len(labels))
        steps += np.array_split(order, -(-len(order) // STAGE_ROWS))
    return steps


def pair_loss(embeddings, labels):
    """SetFit's loss, every pair of the step: the squared distance of each pair's cosine similarity to 1 (one class)
    or 0 (two), the mean over the pairs of one class plus the mean over those of two (a step of 4 classes holds
    three pairs of two classes for each of one; SetFit draws them half and half)."""
    import torch
    u = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    same = labels[:, None] == labels[None, :]
    error = (u @ u.T - same.float()) ** 2
    other = ~torch.eye(len(labels), dtype=torch.bool, device=u.device)  # a text with itself is no pair
    # + 0 * the sum: a step with no pair still has a loss with the graph (backward, and DDP's reduction, need it)
    return sum(error[kind].mean() for kind in (same & other, ~same) if kind.any()) + 0 * error.sum()


def contrastive_stage(model, rows, cfg, rounds, args, pad):
    """Train the model's LoRA matrices (not the head) for `rounds` reads of each training row: the Trainer's loop at
    args (stage_arguments), each text read as the head reads it, the mean of its tokens (the model is mean_pooled
    already: train.py's lora_model). pad: the run's collator."""
    import numpy as np
    import torch
    import transformers

    texts = rows.select_columns([c for c in rows.column_names if c not in NOT_TEXT])
    labels = np.asarray(rows["label"][:])

    def collate(steps):  # one step's rows (nn.DataParallel asks for one a GPU, and splits them again)
        at = np.concatenate(steps)
        # a plain dict: nn.DataParallel splits a dict, and copies a BatchEncoding whole onto each GPU
        return {**pad([texts[int(i)] for i in at]), "labels": torch.as_tensor(labels[at])}

    # every process (and GPU of nn.DataParallel) takes its share of the steps: each takes `rounds` rounds, so that
    # the optimiser makes as many steps as on one
    shares = args.world_size * max(args.n_gpu, 1)
    transformers.Trainer(model=means_of(model), args=args, data_collator=collate,
                         train_dataset=batches(labels, rounds * shares, cfg.seed)).train()


def means_of(model):
    """The base model as the stage trains it and head_from_features reads it: a text's mean of its tokens (the model
    is mean_pooled: pooling.mean_pooled), as logits, or with the rows' labels the pairs' loss on them."""
    import torch

    from . import pooling

    class Means(torch.nn.Module):
        accepts_loss_kwargs = False  # **not_text would tell the Trainer it takes num_items_in_batch, and it does not

        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **not_text):  # text_id
            given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
            mean = self.base(input_ids, **{k: v for k, v in given.items() if v is not None})[0][:, 0]
            return {"logits": mean} if labels is None else {"loss": pair_loss(mean, labels)}

    return Means(pooling.base_of(model))


# heads whose activation between their two layers is tanh, near-linear around 0 (ReLU and GELU are, above 0), and
# DeBERTa's where its config says tanh: tests/test_pooling.py names each architecture's activation by hand
TANH_HEADS = ("roberta", "xlm-roberta", "mpnet")


def near_linear_at(config):
    """The input at which the head's activation is near-linear, the bias its layer before the last gets: 0 for tanh,
    1 for ReLU (which drops what is below 0) and GELU."""
    tanh = config.model_type in TANH_HEADS or config.model_type == "deberta-v2" and getattr(
        config, "pooler_hidden_act", None) == "tanh"
    return 0.0 if tanh else 1.0


def head_from_features(model, rows, args, pad, class_weights=None):
    """The head started as a logistic regression on the mean of each training row's tokens, as SetFit's head starts.
    Where the head passes the mean through one layer of its own size before its last (DistilBERT's pre_classifier
    and ReLU, RoBERTa's dense and tanh, ELECTRA's and DeBERTa's GELU), that layer becomes s * I plus near_linear_at(),
    s = 1 / twice the largest coordinate of the rows' means: the activation passes each coordinate, near-linearly
    (a window, or an evaluation row, twice as far out too), where a random layer mixes them and ReLU drops half. The
    last layer (its weights to the classes) is then logistic_head() on what it reads of the training rows, a text's
    windows averaged as its logits are. Both are read through a Trainer of their own at args (stage_arguments:
    nothing logged, no tracker's run), whose predict gathers every row on every process, so that every process sets
    the same head. Returns how the head started: "random" where the rows hold one class or what the head reads is
    not finite (the head left as it was)."""
    import numpy as np
    import torch
    import transformers

    from . import inference, pooling
    head = [(name, m) for name, m in model.named_modules() if "modules_to_save" in name and isinstance(
        m, torch.nn.Linear)]
    last = [(name, m) for name, m in head if m.out_features == model.config.num_labels]
    labels = np.asarray(rows["label"][:])[np.unique(inference.column(rows, "text_id"), return_index=True)[1]]
    if not last or len(np.unique(labels)) < 2:
        return "random"
    name, layer = last[-1]
    inner = [m for _, m in head if m is not layer and m.in_features == m.out_features]
    kept = [{k: v.clone() for k, v in m.state_dict().items()} for m in inner]
    if len(inner) == 1:
        largest = float(np.abs(inference.logits_of(transformers.Trainer(model=means_of(model), data_collator=pad,
                                                                        args=args), rows)).max())
        if not np.isfinite(largest):
            return "random"
        if largest > 0:  # all means 0 (no model gives them): the layer as it was
            with torch.no_grad():
                inner[0].weight.copy_(torch.eye(inner[0].in_features) / (2 * largest))
                inner[0].bias.fill_(near_linear_at(pooling.base_of(model).config))
    parent, _, attribute = name.rpartition(".")
    reader = transformers.Trainer(model=model, data_collator=pad, args=args)
    setattr(model.get_submodule(parent), attribute, torch.nn.Identity())
    try:
        features = inference.logits_of(reader, rows).astype(np.float64)
    finally:
        setattr(model.get_submodule(parent), attribute, layer)
    if not np.isfinite(features).all():
        for m, state in zip(inner, kept):
            m.load_state_dict(state)
        return "random"
    weight, bias = logistic_head(features, labels, layer.out_features, class_weights)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return "logistic regression"


def logistic_head(features, labels, classes, class_weights=None):
    """A linear layer's weights and bias to `classes` from features: scikit-learn's logistic regression, weighted as
    the loss is, on the features centred and scaled to a mean length of 1 (the length of SetFit's embeddings), both
    folded into the layer, which reads the features as they come. Rows that differ by rounding alone are scaled as
    if they spread by a thousandth of their length, not blown up. A class no row holds gets no weights and a bias
    below the others' by log(rows): rarer than one row in them at their centre, yet a start that training can move."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    centre = features.mean(0)
    spread = float(np.linalg.norm(features - centre, axis=1).mean())
    scale = 1 / max(spread, 1e-3 * float(np.linalg.norm(features, axis=1).mean()), 1e-12)
    weights = None if class_weights is None else {int(c): class_weights[c] for c in np.unique(labels)}
    fitted = LogisticRegression(max_iter=1000, class_weight=weights).fit((features - centre) * scale, labels)
    weight = np.zeros((classes, features.shape[1]))
    bias = np.zeros(classes)
    if len(fitted.classes_) == 2:  # one line for two classes: half of it to each, the same softmax
        weight[fitted.classes_] = np.stack([-fitted.coef_[0], fitted.coef_[0]]) / 2
        bias[fitted.classes_] = np.array([-fitted.intercept_[0], fitted.intercept_[0]]) / 2
    else:
        weight[fitted.classes_], bias[fitted.classes_] = fitted.coef_, fitted.intercept_
    absent = np.setdiff1d(np.arange(classes), fitted.classes_)
    bias[absent] = bias[fitted.classes_].min() - np.log(len(labels))
    weight *= scale
    return weight, bias - weight @ centre


def stage_text(cfg, rounds, head_start=None):
    """The contrastive stage of `rounds` reads of each row in words, for the training line and (with how the head
    started) the card."""
    rows = f"the windows of the {cfg.train_size} training rows each" if cfg.long_texts == "windows" else \
        f"each of the {cfg.train_size} training rows"
    return (f"{rows} read {rounds} times, in steps of up to "
            f"{STAGE_ROWS} rows and all their pairs (of one class or two), on the LoRA matrices; the head reads the "
            f"mean of the tokens" + (f" and started from a {head_start} on it" if head_start == "logistic regression"
                                     else ", its start random" if head_start else "")) if rounds else ""
