"""Scores: what train.py reports of a prediction, for each kind of problem, from scikit-learn and scipy."""
from .labels import MULTI, REGRESSION, SINGLE

# The scores of each, its headline (BEST_METRIC's auto) first; f1, precision and recall are label 1's, for two classes.
SCORES = {SINGLE: ("accuracy", "macro_f1", "macro_precision", "macro_recall", "f1", "precision", "recall", "loss"),
          MULTI: ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "macro_precision", "macro_recall",
                  "exact_match", "loss"),
          REGRESSION: ("rmse", "mae", "r2", "pearson", "spearman", "loss")}
LOWER_IS_BETTER = ("loss", "rmse", "mae")


class Scores:
    """compute_metrics for the Trainer: the scalar scores of a prediction (all that trackers take). It keeps the last
    prediction, whose full report (per class and the confusion matrix, or per label) is that of the kept adapter on
    the evaluation rows."""

    def __init__(self, problem, labels, threshold):
        self.problem, self.labels, self.threshold, self.last = problem, labels, threshold, None
        self.text_ids = None  # while the Trainer scores tokenized rows: the text each row is (a window of)

    def __call__(self, prediction):
        if self.text_ids is not None:  # one prediction a text, in the texts' order (textlora/inference.py)
            from transformers import EvalPrediction

            from .inference import first_of_each, per_text
            prediction = EvalPrediction(predictions=per_text(prediction.predictions, self.text_ids),
                                        label_ids=first_of_each(prediction.label_ids, self.text_ids))
        self.last = prediction
        if self.problem == SINGLE:
            return class_scores(*self.classes(), len(self.labels))
        if self.problem == MULTI:
            return label_scores(*self.tags())
        return number_scores(*self.numbers())

    def classes(self):
        from .inference import decided
        return self.last.label_ids.astype(int), decided(self.last.predictions, SINGLE, None)

    def tags(self):
        """True and predicted labels, 0/1 per text and label: a label is predicted where its probability passes the
        threshold."""
        from .inference import decided  # here, not at the top: inference imports transformers, scores is light
        return self.last.label_ids > 0.5, decided(self.last.predictions, MULTI, self.threshold)

    def numbers(self):
        return self.last.label_ids.reshape(-1).astype(float), self.last.predictions.reshape(-1).astype(float)

    def report(self):
        if self.problem == SINGLE:
            true, predicted = self.classes()
            return {"per_class": per_class(true, predicted, self.labels),
                    "confusion_matrix": {"labels": self.labels, "rows_true_columns_predicted":
                                         confusion(true, predicted, len(self.labels)).tolist()}}
        if self.problem == MULTI:
            return {"per_label": per_label(*self.tags(), self.labels), "threshold": self.threshold}
        return {}


def confusion(true, predicted, n):
    """Counts of (true class, predicted class): rows true, columns predicted."""
    from sklearn.metrics import confusion_matrix
    return confusion_matrix(true, predicted, labels=list(range(n)))


def class_scores(true, predicted, n):
    """One class per text: accuracy and macro precision, recall and F1; with two classes also class 1's."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    classes = list(range(n))
    precision, recall, f1, _ = precision_recall_fscore_support(true, predicted, labels=classes, average="macro",
                                                               zero_division=0)
    result = {"accuracy": float(accuracy_score(true, predicted)), "macro_precision": float(precision),
              "macro_recall": float(recall), "macro_f1": float(f1)}
    if n == 2:
        (tn, fp), (fn, tp) = confusion(true, predicted, 2).tolist()
        precision, recall, f1, _ = precision_recall_fscore_support(true, predicted, labels=classes, pos_label=1,
                                                                   average="binary", zero_division=0)
        result |= {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                   "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    return result


def per_class(true, predicted, labels):
    from sklearn.metrics import precision_recall_fscore_support
    return by_name(labels, *precision_recall_fscore_support(true, predicted, labels=list(range(len(labels))),
                                                            zero_division=0))


def label_scores(true, predicted):
    """Several labels per text (0/1 per text and label): micro scores (every text-label pair counts once), macro (the
    mean over labels), and the share of texts whose labels are all exactly right."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    result = {}
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(true, predicted, average=average, zero_division=0)
        result |= {f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)}
    return {"micro_f1": result["micro_f1"], "macro_f1": result["macro_f1"], **result,
            "exact_match": float(accuracy_score(true, predicted))}  # subset accuracy, for 0/1 per label


def per_label(true, predicted, labels):
    from sklearn.metrics import precision_recall_fscore_support
    return by_name(labels, *precision_recall_fscore_support(true, predicted, zero_division=0))


def number_scores(true, predicted):
    """A number per text: root mean squared and mean absolute error, R² (1: all the variance explained, 0: no better
    than the mean; 1 or 0 when every true value is the same), and the Pearson and Spearman (rank) correlations (0
    where either side is constant, and so has none)."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    varied = np.ptp(true) > 0 and np.ptp(predicted) > 0
    return {"rmse": float(np.sqrt(mean_squared_error(true, predicted))),
            "mae": float(mean_absolute_error(true, predicted)), "r2": float(r2_score(true, predicted)),
            "pearson": float(pearsonr(true, predicted).statistic) if varied else 0.0,
            "spearman": float(spearmanr(true, predicted).statistic) if varied else 0.0}


def by_name(labels, precision, recall, f1, support):
    """Per-class (or per-label) scores as metrics.json shows them: by name."""
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)} for name, p, r, f, s
            in zip(labels, precision, recall, f1, support)}
