"""The classical baseline beside every score: TF-IDF of word 1-2-grams and a logistic regression (one class per
text; one per label for several labels; a ridge regression for a number), scikit-learn with its default settings,
fitted on the same training rows and scored on the same evaluation rows with the same scores. A second text column
of a pair gets features of its own."""
from .labels import MULTI, REGRESSION, SINGLE

NAMES = {SINGLE: "TF-IDF + logistic regression", MULTI: "TF-IDF + a logistic regression per label",
         REGRESSION: "TF-IDF + ridge regression"}


def features(train_rows, *other_rows):
    """TF-IDF of word 1-2-grams of each text column, fitted on the training rows; the training rows' and each other
    set's."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    columns = [c for c in ("text", "text_pair") if c in train_rows.column_names]
    fitted = [TfidfVectorizer(ngram_range=(1, 2)).fit(train_rows[c]) for c in columns]
    return [hstack([v.transform(rows[c]) for v, c in zip(fitted, columns)]).tocsr()
            for rows in (train_rows, *other_rows)]


def fit_and_predict(train_rows, rows, problem, n_labels):
    """The baseline's predictions on each set of rows, as the adapter's logits are read: log-probabilities per
    class, log-odds per label, or the number."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    x_train, *xs = features(train_rows, *rows)
    y = np.asarray(train_rows["label"])
    if problem == REGRESSION:
        model = Ridge().fit(x_train, y)
        return [model.predict(x)[:, None] for x in xs]
    if problem == MULTI:
        model = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(x_train, y > 0.5)
        return [model.decision_function(x).reshape(x.shape[0], -1) for x in xs]
    model = LogisticRegression(max_iter=1000).fit(x_train, y)
    predicted = []
    for x in xs:
        logits = np.full((x.shape[0], n_labels), -np.inf)  # a class absent from the training rows is never chosen
        logits[:, model.classes_] = model.predict_log_proba(x)
        predicted.append(logits)
    return predicted


def out_of_fold(train_rows, problem, n_labels, folds):
    """Each training row's prediction by a baseline fitted without it (k-fold, stratified by class where there is
    one class per text), read as fit_and_predict's."""
    import warnings

    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold
    y = np.asarray(train_rows["label"])
    k = min(folds, len(y))
    with warnings.catch_warnings():  # a class with fewer rows than folds is spread as far as it goes, as it should
        warnings.simplefilter("ignore", UserWarning)
        splits = list(StratifiedKFold(k, shuffle=True, random_state=0).split(y, y) if problem == SINGLE and
                      np.bincount(y).max() >= k else KFold(k, shuffle=True, random_state=0).split(y))
    predicted = None
    for fit_on, held in splits:
        (part,) = fit_and_predict(train_rows.select(fit_on), [train_rows.select(held)], problem, n_labels)
        if predicted is None:
            predicted = np.empty((len(y), part.shape[1]), dtype=np.float64)
        predicted[held] = part
    return predicted


def score(train_rows, eval_rows, problem, labels, threshold, validation_rows=None):
    """The baseline's scores on the evaluation rows (as scores.Scores gives the adapter's), its name and seconds.
    Several labels per text: scored at `threshold` (a number for every label), or, given validation_rows, at each
    label's threshold chosen on them by the rule that chose the adapter's (calibration.best_thresholds), so that the
    two are compared like for like."""
    import time

    import numpy as np
    from transformers import EvalPrediction

    from .calibration import best_thresholds, probabilities
    from .scores import Scores
    start = time.time()
    tuned = problem == MULTI and validation_rows is not None and len(validation_rows)
    predicted, *held_out = fit_and_predict(train_rows, [eval_rows, *([validation_rows] if tuned else [])], problem,
                                           len(labels))
    if tuned:
        threshold = best_thresholds(probabilities(held_out[0], problem), np.asarray(validation_rows["label"]))
    said = Scores(problem, labels, threshold)(EvalPrediction(predictions=predicted,
                                                             label_ids=np.asarray(eval_rows["label"])))
    at = {"thresholds": dict(zip(labels, threshold if tuned else [threshold] * len(labels))),
          "thresholds_by": "best F1 on the validation rows" if tuned else f"{threshold} for every label"} \
        if problem == MULTI else {}
    return {"model": NAMES[problem], **said, **at, "seconds": time.time() - start}
