"""The classical baseline beside every score: TF-IDF of word 1-2-grams and a logistic regression (one class per
text; one per label for several labels; a ridge regression for a number), scikit-learn with its default settings,
fitted on the same training rows and scored on the same evaluation rows with the same scores. A second text column
of a pair gets features of its own."""
from .labels import MULTI, REGRESSION, SINGLE

NAMES = {SINGLE: "TF-IDF + logistic regression", MULTI: "TF-IDF + a logistic regression per label",
         REGRESSION: "TF-IDF + ridge regression"}


def features(train_rows, eval_rows):
    """TF-IDF of word 1-2-grams of each text column, fitted on the training rows."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    columns = [c for c in ("text", "text_pair") if c in train_rows.column_names]
    fitted = [TfidfVectorizer(ngram_range=(1, 2)).fit(train_rows[c]) for c in columns]
    return (hstack([v.transform(train_rows[c]) for v, c in zip(fitted, columns)]).tocsr(),
            hstack([v.transform(eval_rows[c]) for v, c in zip(fitted, columns)]).tocsr())


def fit_and_predict(train_rows, eval_rows, problem, n_labels):
    """The baseline's predictions on the evaluation rows, as the adapter's logits are read: log-probabilities per
    class, log-odds per label, or the number."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    x_train, x_eval = features(train_rows, eval_rows)
    y = np.asarray(train_rows["label"])
    if problem == REGRESSION:
        return Ridge().fit(x_train, y).predict(x_eval)[:, None]
    if problem == MULTI:
        return OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(x_train, y > 0.5).decision_function(x_eval)
    model = LogisticRegression(max_iter=1000).fit(x_train, y)
    logits = np.full((x_eval.shape[0], n_labels), -np.inf)  # a class absent from the training rows is never chosen
    logits[:, model.classes_] = model.predict_log_proba(x_eval)
    return logits


def score(train_rows, eval_rows, problem, labels, threshold):
    """The baseline's scores on the evaluation rows (as scores.Scores gives the adapter's), its name and seconds."""
    import time

    import numpy as np
    from transformers import EvalPrediction

    from .scores import Scores
    start = time.time()
    predicted = fit_and_predict(train_rows, eval_rows, problem, len(labels))
    said = Scores(problem, labels, threshold)(EvalPrediction(predictions=predicted,
                                                             label_ids=np.asarray(eval_rows["label"])))
    return {"model": NAMES[problem], **said, "seconds": time.time() - start}
