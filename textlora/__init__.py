"""The plumbing beside train.py and predict.py, one concern a module:

- labels: a label value becomes a class id (or 0/1 per label, or a number) in one place, recorded with the adapter;
- tables: a .csv, .jsonl or .parquet file is read in one place, so a cell means the same value in both scripts;
- inference: the model runs on texts in one place: tokenized rows in, logits and what they say out;
- hub: whether the Hugging Face Hub answers, so that both scripts go offline within seconds when it does not.
"""


class Refused(Exception):
    """Bad input, said in one line: the script that catches it prints the message and exits with status 2."""
