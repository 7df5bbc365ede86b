"""Data: the data set loaded (a Hub name, a folder or one file, through textlora/tables.py), checked, and drawn
into seeded subsets; its labels made into the targets the loss takes (through textlora/labels.py); loss weights."""
import os

from . import Refused, fail
from .labels import MULTI, PROBLEM_NAMES, REGRESSION, SINGLE, from_data
from .scores import SCORES
from .settings import not_found


def load_or_fail(what, name, flag, problem, load):
    """load(), or one line: the name is not there, or what the library said of it (its first line)."""
    try:
        return load()
    except Exception as e:  # the libraries raise a different type for each way a name can be wrong
        fail(not_found(what, name, flag) if not os.path.exists(name)
             else f"{what} {name!r} {problem}: {str(e).splitlines()[0]}")


def check_data(data, cfg, subsets):
    """Refuse missing splits and columns, empty rows and subsets larger than their split, naming what is there."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if cfg.train_split not in data:
        fail(f"dataset {cfg.dataset_name!r} has no split {cfg.train_split!r} (it has {', '.join(data)})")
    splits = dict.fromkeys(split for split, _ in subsets.values() if split)
    for split in splits:
        columns = data[split].column_names
        for column, flag in [*((c, "--text_column") for c in cfg.text_column),
                             *((c, "--label_column") for c in cfg.label_column)]:
            if column not in columns:
                fail(f"dataset {cfg.dataset_name!r} has no {column!r} column (it has {', '.join(columns)}); set {flag}")
        table = data[split].with_format("arrow")
        empty = pc.is_null(table[cfg.label_column[0]])
        for column in cfg.label_column:
            label, kind, feature = table[column], str(table[column].type), data[split].features[column]
            if kind.startswith(("list", "large_list")):  # a list holding a null, a blank or a -1 id
                bad = set(pc.filter(pc.list_parent_indices(label), pc.fill_null(missing(
                    pc.list_flatten(label), getattr(feature, "feature", None)), True)).to_pylist())
                empty = pc.or_kleene(empty, pa.array([i in bad for i in range(len(label))]))
            empty = pc.or_kleene(empty, pc.is_null(label) if kind.startswith(("list", "large_list"))
                                 else missing(label, feature))
        for column in cfg.text_column:
            text = table[column]
            if not str(text.type).endswith("string"):
                fail(f"--text_column {column!r} holds {text.type}, not text")
            empty = pc.or_kleene(empty, pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_trim_whitespace(text), "")))
        if bad := pc.sum(empty).as_py():
            fail(f"{bad} rows of split {split!r} have empty or missing text or label; "
                 f"the first is row {pc.index(empty, True).as_py()} (counting from 0)")
    for split in splits:  # subsets drawn from one split share its rows
        flags = [(f"--{name}_size", size) for name, (s, size) in subsets.items() if s == split]
        if (total := sum(size for _, size in flags)) > len(data[split]):
            fail(f"{flags[0][0]} {total} is larger than the {split!r} split, which has {len(data[split])} rows"
                 if len(flags) == 1 else f"{' + '.join(f for f, _ in flags)} = {total}, but split {split!r} of "
                 f"{cfg.dataset_name!r} has {len(data[split])} rows")


def missing(values, feature):
    """Which values are no label: null, blank, not a finite number, or ClassLabel's -1 (as in SST-2's test split)."""
    import pyarrow.compute as pc
    from datasets import ClassLabel
    kind = str(values.type)
    return pc.or_kleene(pc.is_null(values), (
        pc.equal(pc.utf8_trim_whitespace(values), "") if kind.endswith("string")
        else pc.less(values, 0) if isinstance(feature, ClassLabel)
        else pc.invert(pc.is_finite(values)) if kind.startswith(("float", "double", "halffloat"))
        else pc.is_null(values)))


def draw(data, subsets, seed):
    """Seeded random rows for each subset, and each row's position in its split. Subsets drawn from one split are
    consecutive slices of one shuffle of it, in the order given (training first), so no row is in two of them."""
    import numpy as np
    order, taken, drawn, positions = {}, {}, {}, {}
    for name, (split, size) in subsets.items():
        if split is None:
            drawn[name] = positions[name] = None
            continue
        if split not in order:
            # datasets' own shuffle(seed=seed) draws this permutation; drawn here to know where each row came from
            order[split], taken[split] = np.random.default_rng(seed).permutation(len(data[split])), 0
        positions[name] = order[split][taken[split]:taken[split] + size]
        drawn[name] = data[split].select(positions[name])
        taken[split] += size
    return drawn, positions


def as_text_and_target(rows, data, cfg, subsets):
    """The drawn rows as text and label, the label codec (textlora/labels.py: the kind of problem, the data's values,
    their ids and shown names), and in words why that kind was chosen."""
    import pyarrow.compute as pc
    from datasets import List, Sequence
    splits = dict.fromkeys(split for split, _ in subsets.values() if split)  # every split's values: the same names
    from datasets import ClassLabel, Value
    columns = cfg.label_column
    features = [rows["train"].features[c] for c in columns]
    listed = isinstance(features[0], (List, Sequence))
    if listed and not isinstance(features[0].feature, (Value, ClassLabel)):  # lists of lists, or of objects
        fail(f"--label_column {columns[0]!r} holds lists of {features[0].feature}; several labels per text are a list "
             f"of names or ids per text")

    def distinct(column):  # over the splits drawn from, a list's items counted one by one
        parts = [data[s].data.column(column) for s in splits]
        return list(set().union(*(pc.unique(pc.list_flatten(c) if listed else c).to_pylist() for c in parts)))

    try:
        codec, why = from_data(features, columns, distinct, cfg.problem_type, cfg.label_names)
    except Refused as e:
        fail(str(e))

    def encoded(cells):
        try:
            return codec.encode(cells)
        except ValueError as e:
            fail(f"--label_column {' '.join(columns)}: {e}")

    # written to a column of another name first where a text column is called label
    to = "__target__" if "label" in cfg.text_column else "label"

    def target(batch):  # the label as the model's loss takes it
        return {to: [encoded(cells) for cells in zip(*(batch[c] for c in columns))]}

    for name, r in rows.items():
        if r is not None:
            features = r.select_columns(cfg.text_column).features.copy()
            features[to] = codec.feature()  # float32, or class ids: predict.py's codec.as_array() alike
            r = r.map(target, batched=True, remove_columns=[c for c in r.column_names if c not in cfg.text_column],
                      features=features, desc=f"labels {name}")
            r = r.rename_columns(dict(zip(cfg.text_column, text_columns(cfg))))
            rows[name] = r.rename_column(to, "label") if to != "label" else r
    if codec.problem == SINGLE and len(set(rows["train"]["label"])) < 2:
        fail(f"all {cfg.train_size} training rows drawn have the label {codec.names[rows['train'][0]['label']]!r}: "
             f"a classifier needs at least two classes; check --label_column, or draw more rows (--train_size)")
    return rows, codec, why


def best_metric(cfg, problem, labels):
    """BEST_METRIC for this problem: auto is its headline score; one of another problem's scores is refused."""
    if cfg.best_metric == "auto":
        return SCORES[problem][0]
    if cfg.best_metric in ("precision", "recall", "f1") and problem == SINGLE and len(labels) != 2:
        fail(f"--best_metric {cfg.best_metric} is label 1's score, for two classes; with {len(labels)} use macro_"
             f"{cfg.best_metric}")
    if cfg.best_metric not in SCORES[problem]:
        fail(f"--best_metric {cfg.best_metric!r} is not a score of {PROBLEM_NAMES[problem]}; choose one of "
             f"{', '.join(SCORES[problem])}")
    return cfg.best_metric


def text_columns(cfg):
    """What the text columns are called once drawn: text, and text_pair for the second of a pair."""
    return ["text", "text_pair"][:len(cfg.text_column)]


def loss_weights(cfg, train_rows, labels, problem):
    """CLASS_WEIGHTS as one number per class, or per label with several labels per text (the weight of its positive
    rows). balanced: by the inverse of a class's share of the drawn training rows (a class with a tenth of the rows
    weighs ten times more), or a label's negative rows over its positive ones. None when every class weighs the same."""
    import numpy as np
    if not cfg.class_weights:
        return None
    if problem == REGRESSION:
        fail("--class_weights weigh classes or labels; a number per text (regression) has none")
    if cfg.class_weights == ["balanced"]:
        if problem == MULTI:
            positives = np.array(train_rows["label"]).sum(0)
            return ((len(train_rows) - positives) / np.maximum(positives, 1)).tolist()
        counts = np.bincount(train_rows["label"], minlength=len(labels))
        return (len(train_rows) / (len(labels) * np.maximum(counts, 1))).tolist()
    if len(cfg.class_weights) != len(labels):
        fail(f"--class_weights has {len(cfg.class_weights)} numbers for {len(labels)} "
             f"{'labels' if problem == MULTI else 'classes'} ({', '.join(labels)})")
    return [float(w) for w in cfg.class_weights]


def weighted_loss(weights, problem):
    """The loss with a weight per class (cross-entropy) or per label's positive rows (binary cross-entropy), for the
    Trainer's compute_loss_func."""
    import torch
    weight = torch.tensor(weights)  # built once, not at every step; .to() is free when the logits are on the CPU

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        if problem == MULTI:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(),
                                                                        pos_weight=weight.to(logits.device))
        return torch.nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device))
    return loss


def digest(rows):
    """A fingerprint of the drawn rows' texts and labels: the same name can hold other data by the time of a resume."""
    import hashlib
    h = hashlib.sha256()
    for name, r in rows.items():
        if r is not None:
            h.update(name.encode())
            for column in r.column_names:
                for chunk in r.with_format("arrow").data.column(column).chunks:
                    h.update(str(chunk.to_pylist()).encode())
    return h.hexdigest()


def validation_size(cfg, keep_best, left, own):
    """VALIDATION_SIZE, or where it is None: to choose the epoch kept by, 500 rows, or as many as the other subsets
    leave (all of the data's own validation split, own), but none drawn from the training split where that leaves
    under 100 (too few rows to hold some back: the last epoch is kept, and said); with one epoch, where they only
    calibrate, half as many as the evaluation rows, from 100 to 500, so that from 200 evaluation rows on calibrating
    costs at most half of evaluating. Below 100 rows the fitted temperature scatters (bench/calibration_rows.py)."""
    if cfg.validation_size is not None:
        return cfg.validation_size
    if keep_best:
        return min(500, max(left, 0)) if own or left >= 100 else 0
    return min(500, max(100, cfg.eval_size // 2))


def load(cfg, keep_best):
    """The data set, read by textlora/tables.py, and the subsets to draw: {name: (split, size)} for train, eval and
    validation (None: no validation rows, one epoch). Checked before any row is drawn."""
    from . import tables
    dataset = load_or_fail("dataset", cfg.dataset_name, "--dataset_name", "cannot be read",
                           lambda: tables.read(cfg.dataset_name, cfg.text_column + cfg.label_column))
    eval_split = next((s for s in (cfg.eval_split, "validation") if s in dataset), cfg.train_split)
    validation_split = "validation" if "validation" in dataset and eval_split != "validation" \
        and len(dataset["validation"]) else cfg.train_split
    if cfg.train_split not in dataset:
        check_data(dataset, cfg, {})  # says which splits there are
    # a validation split of the data's own may be smaller than VALIDATION_SIZE: all of it is used then. With one
    # epoch the validation rows only calibrate the probabilities: drawn from what the other subsets leave, so that
    # they never change the training or evaluation rows (none left: no calibration)
    left = len(dataset[validation_split]) - sum(size for split, size in ((cfg.train_split, cfg.train_size),
                                                                         (eval_split, cfg.eval_size))
                                                if split == validation_split)
    wanted = validation_size(cfg, keep_best, left, validation_split != cfg.train_split)
    if keep_best and not wanted and cfg.early_stopping_patience:
        fail(f"--early_stopping_patience needs validation rows to stop on, and {cfg.dataset_name!r} leaves too few "
             f"({max(left, 0)}) beside the training and evaluation rows; give --validation_size, or drop the patience")
    if not wanted and cfg.search_trials:
        fail(f"--search_trials scores each trial on validation rows, and {cfg.dataset_name!r} leaves too few "
             f"({max(left, 0)}) beside the training and evaluation rows; give --validation_size, or no search")
    size = wanted if keep_best and validation_split == cfg.train_split else max(0, min(wanted, left))
    subsets = {"train": (cfg.train_split, cfg.train_size), "eval": (eval_split, cfg.eval_size),
               "validation": (validation_split, size) if size else (None, 0)}
    check_data(dataset, cfg, subsets)
    return dataset, subsets
