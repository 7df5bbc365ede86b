"""Rows whose given label looks wrong: cleanlab's confident learning (Northcutt et al.) on out-of-sample
probabilities, the rows it finds listed most suspicious first in a CSV. train.py lists its evaluation and validation
rows by the adapter's calibrated probabilities (it trained on none of them) and its training rows by the TF-IDF
baseline's, cross-validated (each row's from a model fitted without it); predict.py a labelled file's rows by the
adapter's. A number per text has no class probabilities to contradict a label: nothing is listed for it."""
from .labels import REGRESSION, SINGLE

FOLDS = 5  # cross-validation of the baseline for the training rows: cleanlab's own default for its estimates
# The training rows cross-validated at most (a seeded sample beyond): five TF-IDF fits grow with the rows, and the
# list is for a person to read, not the whole of a million rows
MOST_TRAINING_ROWS = 20_000
# rows: which of the run's rows (training, evaluation, validation; predict.py: file); split and row: where the row
# is in the user's data (the split's row number from 0; a file's data row from 0, its header not counted)
COLUMNS = ("rows", "split", "row", "text", "text_pair", "given", "suggested", "label_quality", "probabilities_from")
ROWS = {"eval": "evaluation", "validation": "validation", "train": "training"}


def found(true, p, problem):
    """Positions (into true) of the likely wrong labels, most suspicious first, and every row's label quality
    (cleanlab's self-confidence: the probability given to the label given; lower is more suspicious).
    true: class ids, or 0/1 per label; p: the probabilities, per class or per label."""
    import numpy as np
    p = np.asarray(p, dtype=np.float64)
    if problem == SINGLE:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
        true = np.asarray(true, dtype=np.int64)
        p = np.clip(p, 1e-12, None)
        p /= p.sum(1, keepdims=True)  # cleanlab checks that each row sums to 1
        if len(np.unique(true)) < 2:  # confident learning compares classes: with one, it finds nothing, silently
            raise ValueError("the rows hold one class only")
        # n_jobs=1: no worker processes forked from one that holds a model, CUDA and threads
        issues = find_label_issues(true, p, return_indices_ranked_by="self_confidence", n_jobs=1)
        return issues, get_label_quality_scores(true, p)
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores
    given = [np.flatnonzero(np.asarray(t) > 0.5).tolist() for t in true]
    issues = find_label_issues(given, p, return_indices_ranked_by="self_confidence", n_jobs=1)
    return issues, get_label_quality_scores(given, p)


def listed(true, p, problem, codec, thresholds):
    """The likely wrong labels of one set of rows: [(position, given, suggested, label quality)], most suspicious
    first. thresholds: several labels, where each is suggested."""
    import numpy as np
    issues, quality = found(true, p, problem)
    p, true = np.asarray(p), np.asarray(true)
    suggested = p.argmax(-1) if problem == SINGLE else p > np.asarray(thresholds)
    return [(int(i), codec.shown(true[i] if problem == SINGLE else np.asarray(true[i]) > 0.5),
             codec.shown(suggested[i]), float(quality[i])) for i in issues]


def write(path, entries, pairs):
    """label_issues.csv: entries are dicts of COLUMNS (text_pair only for pairs), each set of rows after the other
    (their probabilities come from different models), most suspicious first within it."""
    import csv

    from .files import write_atomically
    columns = [c for c in COLUMNS if c != "text_pair" or pairs]
    order = list(ROWS.values()) + ["file"]
    entries = sorted(entries, key=lambda e: (order.index(e["rows"]), e["label_quality"]))

    def to(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(entries)
    write_atomically(path, to)


def of_the_run(rows, positions, subsets, adapter_p, codec, thresholds, calibrated, path):
    """train.py's: the rows drawn (text and label), each one's position in its split, the adapter's probabilities
    of the evaluation and validation rows in the drawn order; label_issues.csv written to path. Returns what
    metrics.json records."""
    import time

    import numpy as np

    from . import baseline
    from .calibration import probabilities
    from .reports import in_a_line
    start, problem = time.time(), codec.problem
    if problem == REGRESSION:
        return {"listed": None, "why": "a number per text: no class probabilities to contradict a label"}
    if not np.allclose(np.asarray(rows["eval"]["label"], dtype=np.float64),
                       np.asarray(adapter_p["eval_labels"], dtype=np.float64)):  # never the wrong row's probabilities
        raise ValueError("the evaluation rows' predictions came back in another order than the rows")
    adapter = f"the adapter ({'calibrated' if calibrated else 'not calibrated'})"
    sources = {name: (lambda p=adapter_p[name]: p, adapter) for name in ("eval", "validation")
               if rows.get(name) is not None and name in adapter_p}
    train, sampled = rows["train"], len(rows["train"]) > MOST_TRAINING_ROWS
    at = np.sort(np.random.default_rng(0).choice(len(train), MOST_TRAINING_ROWS, replace=False)) if sampled \
        else np.arange(len(train))
    rows = {**rows, "train": train.select(at) if sampled else train}
    positions = {**positions, "train": np.asarray(positions["train"])[at]}
    sources["train"] = (lambda: probabilities(baseline.out_of_fold(rows["train"], problem, len(codec.names), FOLDS),
                                              problem), f"{baseline.NAMES[problem]}, {FOLDS}-fold cross-validated"
                        + (f" on {MOST_TRAINING_ROWS} training rows drawn at random" if sampled else ""))
    entries, counts, failed = [], {}, {}
    columns = [c for c in ("text", "text_pair") if c in rows["train"].column_names]
    for name, (p, source) in sources.items():
        true = np.asarray(rows[name]["label"])
        at = thresholds if name != "train" else [0.5] * len(codec.names)
        try:  # each set on its own: the baseline failing on the training rows leaves the adapter's lists
            found_here = listed(true, p(), problem, codec, at)
        except Exception as e:  # broad on purpose: cleanlab refuses a set too small or of one class its own ways
            failed[name] = in_a_line(e)
            continue
        counts[name] = len(found_here)
        picked = rows[name].select([i for i, *_ in found_here]) if found_here else None
        for k, (i, given, suggested, quality) in enumerate(found_here):
            entries.append({"rows": ROWS[name], "split": subsets[name][0], "row": int(positions[name][i]),
                            **{c: picked[k][c] for c in columns}, "given": given, "suggested": suggested,
                            "label_quality": round(quality, 6), "probabilities_from": source})
    write(path, entries, "text_pair" in columns)
    return {"listed": counts, "not_listed": failed, "rows_looked_at": {name: len(rows[name]) for name in sources},
            "file": path,
            "probabilities_from": {name: source for name, (_, source) in sources.items()},
            "method": "cleanlab.filter.find_label_issues (prune_by_noise_rate), most suspicious first by "
                      "self-confidence", "total": int(np.sum(list(counts.values()))), "seconds": time.time() - start}


def of_a_file(data, positions, true, p, codec, thresholds, text_columns, calibrated, path):
    """predict.py's: a labelled file's rows (data: the table read, positions: where the scored rows are in it),
    their labels and the adapter's probabilities; path (OUTPUT.label_issues.csv) written. Returns the count."""
    found_here = listed(true, p, codec.problem, codec, thresholds)
    picked = data.select([positions[i] for i, *_ in found_here]).select_columns(text_columns) if found_here else None
    entries = [{"rows": "file", "split": "", "row": positions[i],
                **dict(zip(("text", "text_pair"), (picked[k][c] for c in text_columns))), "given": given,
                "suggested": suggested, "label_quality": round(quality, 6),
                "probabilities_from": f"the adapter ({'calibrated' if calibrated else 'not calibrated'})"}
               for k, (i, given, suggested, quality) in enumerate(found_here)]
    write(path, entries, len(text_columns) == 2)
    return len(entries)
