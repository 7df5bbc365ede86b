"""The same text in more than one place among the rows drawn: evaluation (and validation) rows whose text is also a
training row's, which inflate the score reported on them; repeats within the training rows; one text given different
labels. Texts are compared up to case and whitespace; a pair of texts is one text."""


def key(texts):
    """What two texts share when they are the same up to case and whitespace; a pair's two texts kept apart."""
    return "\x1f".join(" ".join(str(t).split()).casefold() for t in texts)


def keys(rows):
    columns = [c for c in ("text", "text_pair") if c in rows.column_names]
    return [key(texts) for texts in zip(*(rows[c] for c in columns))]


def hashable(label):
    return tuple(label) if isinstance(label, list) else label


def count(rows):
    """{"counts": what metrics.json records, "eval_rows": the positions (in the drawn order) of the evaluation rows
    whose text is a training row's}. rows: train, eval and validation (or None), as text and label."""
    train = keys(rows["train"])
    seen = set(train)
    found, counts = {}, {}
    for name in ("eval", "validation"):
        if rows.get(name) is not None:
            found[name] = [i for i, k in enumerate(keys(rows[name])) if k in seen]
            counts[f"{name}_rows_duplicating_a_training_row"] = len(found[name])
    counts["training_rows_duplicating_another"] = len(train) - len(seen)
    given = {}  # each text's labels, over every row drawn
    for name, r in rows.items():
        if r is not None:
            for k, label in zip(train if name == "train" else keys(r), r["label"]):
                given.setdefault(k, set()).add(hashable(label))
    counts["duplicated_texts_with_different_labels"] = sum(len(labels) > 1 for labels in given.values())
    return {"counts": counts, "eval_rows": found.get("eval", [])}


def text(counts):
    """For the data line: what was found, or nothing where nothing was."""
    c = counts
    said = [f"{n} of the {what} rows {'is' if n == 1 else 'are'} also training rows (case and spacing aside)"
            for what, n in (("evaluation", c.get("eval_rows_duplicating_a_training_row", 0)),
                            ("validation", c.get("validation_rows_duplicating_a_training_row", 0))) if n]
    if n := c["training_rows_duplicating_another"]:
        said.append(f"{n} training {'row repeats' if n == 1 else 'rows repeat'} another")
    if n := c["duplicated_texts_with_different_labels"]:
        said.append(f"{n} {'text has' if n == 1 else 'texts have'} different labels in different rows")
    return "; ".join(said)


def scores_without(scorer, calibrated, positions, fixed_threshold):
    """The evaluation scores on the rows whose text no training row has, scored as the headline is (with several
    labels, at the thresholds chosen and the temperature they were chosen at): the scorer's last prediction (a text
    each, in the order drawn), positions: the drawn positions of the rows left out."""
    import numpy as np
    from transformers import EvalPrediction

    from .calibration import thresholds_of
    from .scores import Scores
    logits, labels = scorer.last.predictions, scorer.last.label_ids
    keep = np.ones(len(labels), dtype=bool)
    keep[positions] = False
    if not keep.any():
        return {"rows": 0, "left_out": len(positions)}
    threshold = thresholds_of(calibrated, fixed_threshold, scorer.labels)
    said = Scores(scorer.problem, scorer.labels, threshold)(EvalPrediction(
        predictions=logits[keep] / (calibrated or {}).get("temperature", 1.0), label_ids=labels[keep]))
    return {"rows": int(keep.sum()), "left_out": len(positions), **said}
