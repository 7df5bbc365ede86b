"""Probabilities that mean what they say: a temperature fitted on held-out rows (neither trained on nor reported),
the expected calibration error and Brier score before and after it, and, with several labels per text, each label's
threshold chosen for its F1 on the same rows."""
from .labels import MULTI, SINGLE

BINS = 15  # equal-width confidence bins of the expected calibration error


def probabilities(logits, problem, temperature=1.0):
    """Softmax (one class per text) or sigmoid (several labels) of logits / temperature."""
    from .inference import probabilities as of
    import numpy as np
    return of(np.asarray(logits, dtype=np.float64) / temperature, problem)


def fit_temperature(logits, labels, problem):
    """The temperature T that minimises the negative log-likelihood of the labels under softmax(logits / T) (or the
    sigmoid, for several labels per text): one number, so no predicted class changes. scipy's bounded search over
    log T, from T = 0.05 to 20."""
    import numpy as np
    from scipy.optimize import minimize_scalar
    from scipy.special import log_expit, log_softmax
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)

    def loss(log_t):
        z = logits / np.exp(log_t)
        if problem == MULTI:
            return -(labels * log_expit(z) + (1 - labels) * log_expit(-z)).mean()
        return -log_softmax(z, axis=-1)[np.arange(len(labels)), labels.astype(int)].mean()
    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def reliability(probabilities, labels, problem):
    """Per equal-width bin of confidence: how many predictions, their mean confidence, the share right. One class
    per text: the top class's probability, right where it is the label; several labels: each text-label pair's
    probability, right where the text has the label."""
    import numpy as np
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if problem == SINGLE:
        confidence, right = p.max(-1), (p.argmax(-1) == y).astype(float)
    else:
        confidence, right = p.reshape(-1), (y.reshape(-1) > 0.5).astype(float)
    bins = np.minimum((confidence * BINS).astype(int), BINS - 1)  # [0, 1/15), ..., [14/15, 1]
    count = np.bincount(bins, minlength=BINS)
    mean = lambda values: np.bincount(bins, weights=values, minlength=BINS) / np.maximum(count, 1)
    return count, mean(confidence), mean(right)


def ece(probabilities, labels, problem):
    """Expected calibration error: the mean gap between confidence and the share right, bin by bin, weighted by the
    bin's share of the predictions."""
    import numpy as np
    count, confidence, right = reliability(probabilities, labels, problem)
    return float((count * np.abs(confidence - right)).sum() / count.sum())


def brier(probabilities, labels, problem):
    """The mean squared gap between the probabilities and what happened (one-hot for one class per text; per
    text-label pair for several labels)."""
    import numpy as np
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if problem == SINGLE:
        return float(((p - np.eye(p.shape[-1])[y.astype(int)]) ** 2).sum(-1).mean())
    return float(((p - y) ** 2).mean())


def best_thresholds(probabilities, labels):
    """Per label, the threshold (a label is given where its probability passes it) with the best F1 on these rows;
    among equal F1s the one nearest 0.5. Candidates: 0.5 and the midpoints between the label's distinct
    probabilities."""
    import numpy as np
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels) > 0.5
    chosen = []
    for j in range(p.shape[1]):
        values = np.unique(p[:, j])
        candidates = np.unique(np.concatenate([[0.5], (values[1:] + values[:-1]) / 2, [values[0] - 1e-9]]))
        given = p[:, j][None, :] > candidates[:, None]
        tp = (given & y[:, j]).sum(1)
        f1 = 2 * tp / np.maximum(given.sum(1) + y[:, j].sum(), 1)
        best = np.flatnonzero(f1 == f1.max())
        chosen.append(float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]]))
    return chosen


def calibrate(validation, evaluation, problem, labels, fixed_threshold):
    """The temperature fitted on the validation rows (logits, labels) and what it does on the evaluation rows; with
    several labels, the thresholds chosen on the validation rows (or the user's THRESHOLD for all)."""
    (v_logits, v_labels), (e_logits, e_labels) = validation, evaluation
    t = fit_temperature(v_logits, v_labels, problem)
    before, after = probabilities(e_logits, problem), probabilities(e_logits, problem, t)
    result = {"temperature": t, "fitted_on_rows": len(v_labels),
              "ece_before": ece(before, e_labels, problem), "ece_after": ece(after, e_labels, problem),
              "brier_before": brier(before, e_labels, problem), "brier_after": brier(after, e_labels, problem),
              "bins": BINS}
    if problem == MULTI:
        chosen = [fixed_threshold] * len(labels) if fixed_threshold is not None else \
            best_thresholds(probabilities(v_logits, problem, t), v_labels)
        result["thresholds"] = dict(zip(labels, chosen))
        result["thresholds_by"] = "THRESHOLD" if fixed_threshold is not None else "best F1 on the validation rows"
    return result


def of_the_run(held_out, validation_rows, scorer, fixed_threshold):
    """After training: the calibration fitted on the validation rows' logits (held_out) and measured on the
    evaluation rows (the scorer's last prediction), and the scorer's report. With several labels, the evaluation
    rows are scored again at the chosen thresholds (those predict.py uses), the scores at 0.5 kept beside them."""
    import numpy as np
    from transformers import EvalPrediction

    from .scores import Scores
    report = scorer.report()
    if held_out is None or not len(held_out):
        return None, report
    problem, last = scorer.problem, scorer.last
    result = calibrate((held_out, np.asarray(validation_rows["label"])), (last.predictions, last.label_ids), problem,
                       scorer.labels, fixed_threshold)
    if problem == MULTI:
        at_half = Scores(problem, scorer.labels, fixed_threshold or 0.5)(last)
        tuned = Scores(problem, scorer.labels, list(result["thresholds"].values()))
        result["scores_at_thresholds"] = tuned(EvalPrediction(predictions=last.predictions / result["temperature"],
                                                              label_ids=last.label_ids))
        result["scores_at_0.5" if fixed_threshold is None else "scores_at_threshold"] = at_half
        report = tuned.report()
    return result, report


def adapter_probabilities(scorer, held_out, calibrated):
    """The adapter's calibrated probabilities of the evaluation rows (the scorer's last prediction, a text's windows as
    one, in the order drawn) and of the validation rows (held_out: their logits); eval_labels: the labels that came
    with the evaluation rows'."""
    problem, t = scorer.problem, (calibrated or {}).get("temperature", 1.0)
    found = {"eval": probabilities(scorer.last.predictions, problem, t), "eval_labels": scorer.last.label_ids}
    if held_out is not None and len(held_out):
        found["validation"] = probabilities(held_out, problem, t)
    return found


def thresholds_of(calibrated, fixed, labels):
    """Several labels: the threshold each label is given past, as predict.py gives it."""
    chosen = (calibrated or {}).get("thresholds")
    return list(chosen.values()) if chosen else [fixed or 0.5] * len(labels)
