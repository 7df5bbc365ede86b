"""The plumbing beside train.py and predict.py, one concern a module:

- settings: train.py's settings as flags (and a settings file), their checks, the run folder, --resume;
- data: the data set loaded, checked and drawn; the labels as targets; loss weights;
- few_rows: how many times an epoch passes over few training rows (MIN_EPOCH_ROWS), in what order, and the
  contrastive stage on pairs of them before the epochs;
- pooling: the head reading the mean of a text's tokens (the few-row recipe), for train.py, predict.py, the card;
- search: the settings chosen by Optuna trials on the validation rows (SEARCH_TRIALS), kept in SQLite for a resume;
- labels: a label value becomes a class id (or 0/1 per label, or a number) in one place, recorded with the adapter;
- tables: a .csv, .tsv, .jsonl or .parquet file is read in one place, so a cell means the same value in both scripts;
- inputs: what predict.py labels (arguments, standard input, a .txt or a table), read a chunk at a time and checked;
- labelling: predict.py's model as training evaluated it, its labelling loop (every process its share), output, scores;
- inference: the model runs on texts in one place: tokenized rows in (a long text's windows), a text's logits out;
- duplicates: the same text in several rows drawn (evaluation rows that are training rows, repeats, two labels);
- label_issues: rows whose label looks wrong, by cleanlab on out-of-sample probabilities, for both scripts;
- models: a base model's limits and needs (LoRA targets, a padding token, its longest input);
- machine: the device, the processes under a launcher, the precision, Ctrl-C and SIGTERM;
- scores: the scores of a prediction (scikit-learn, scipy);
- reports: metrics.json, the model card, the curves, the lines printed and the summary;
- files: kill-safe writes, and whether a folder can be written;
- hub: whether the Hugging Face Hub answers, so that both scripts go offline within seconds when it does not.
"""


class Refused(Exception):
    """Bad input, said in one line: the script that catches it prints the message and exits with status 2."""


def fail(message):
    """Refuse bad input: one line, said by the script (train.py: error: ...), before anything is written."""
    raise Refused(message)
