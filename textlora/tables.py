"""Tables: a data set or one .csv/.jsonl/.parquet file read in one place, through datasets, so that a cell means the
same value in train.py and predict.py (a CSV's `007` is 7 and its `NA` or empty cell no value, in both); and the
table predict.py writes, with its columns and types decided from the input's before the first row is labelled."""
import csv
import json
import os

FILES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
# what pandas reads as a missing value by default (pandas.read_csv's na_values documentation)
NA_SPELLINGS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
WRITES = (".csv", ".jsonl", ".parquet")
SEPARATED = {".csv": ",", ".tsv": "\t"}  # read only: a .tsv is tab-separated and unquoted (see read)


def read(name, parsed=(), values=()):
    """load_dataset on a Hub name or a folder; one file is one table, which it calls "train". In one CSV file, the
    columns named in `parsed` (a script's text and label columns) are read by pandas' rules, as datasets reads any
    CSV; every other column as written (an id 007 stays 007: predict.py writes it back). In a CSV, a column whose
    every cell is a JSON list (as predict.py writes several labels per text) is read as lists. `values`: spellings
    that are values there, not missing (an adapter's classes named None or NA): only an empty cell is missing then."""
    from datasets import load_dataset
    if os.path.isfile(name):
        kind = os.path.splitext(name)[1].lower()[1:]
        options = {}
        if kind in ("csv", "tsv"):
            with open(name, encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f, delimiter=SEPARATED["." + kind],
                                    quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
                header = next(reader, [])
                # the libraries' own word for no rows is about their "instructions"; lines, not csv's rows, are read
                # after the header: csv's field limit (128 KiB) is no limit of the file's
                if not any(line.strip() for line in f):
                    raise ValueError("it holds no rows (a header at most)")
            # by position: pandas renames a blank or repeated name (Unnamed: 0, id.1), and a converter keyed by the
            # name as written would then never apply
            kept = [i for i, c in enumerate(header) if c not in parsed]
            options["sep"] = SEPARATED["." + kind]
            if kind == "tsv":  # tab-separated values have no quoting: a " is part of its cell (12" vinyl)
                options["quoting"] = csv.QUOTE_NONE
            if kept or values:  # pandas' own missing-value spellings (NA, null, empty, ...) only where cells are parsed
                options |= {"converters": {i: str for i in kept}, "keep_default_na": False,
                            "na_values": {c: sorted(NA_SPELLINGS - set(values)) for c in header if c in parsed}}
        data = load_dataset({"jsonl": "json", "tsv": "csv"}.get(kind, kind), data_files=name, **options)
    else:
        data = load_dataset(name)
    return lists_in_csv(data) if any(d.info.builder_name == "csv" for d in data.values()) else data


def lists_in_csv(data):
    import pyarrow.compute as pc
    for split in data:
        table = data[split].data.table
        for column in data[split].column_names:
            cells = table[column]
            if not str(cells.type).endswith("string") or cells.null_count == len(cells):
                continue
            trimmed = pc.utf8_trim_whitespace(cells.drop_null())
            if not (pc.all(pc.starts_with(trimmed, "[")).as_py() and pc.all(pc.ends_with(trimmed, "]")).as_py()):
                continue
            try:
                data[split] = data[split].map(lambda b, c=column: {c: [None if v is None else json.loads(v)
                                                                        for v in b[c]]}, batched=True,
                                              desc=f"lists in {column}")
            except (ValueError, TypeError):  # not JSON after all, or items of several types: text, as written
                continue
    return data


class Writer:
    """Rows written beside `path` (.PATH.XXXX.partial) and renamed by close(): the output is whole or not at all.
    schema: the pyarrow schema of every row, known before the first; lists and dicts in a CSV are JSON."""

    def __init__(self, path, schema, json_columns=()):
        import tempfile
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        # a name of its own beside the output (never a file of the user's, such as an earlier PATH.partial)
        handle, self.partial = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial")
        os.close(handle)
        self.path, self.schema, self.json_columns = path, schema, set(json_columns)
        self.suffix = os.path.splitext(path)[1].lower()
        self.file, self.parquet = None, None
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq
            self.parquet = pq.ParquetWriter(self.partial, schema)
        else:
            self.file = open(self.partial, "w", encoding="utf-8", newline="")
            if self.suffix == ".csv":
                self.csv = csv.writer(self.file)
                self.csv.writerow(schema.names)

    def write(self, table):
        """table: a pyarrow table of the schema's columns."""
        if self.parquet:
            self.parquet.write_table(table.select(self.schema.names).cast(self.schema))
            return
        rows = table.select(self.schema.names).to_pylist()
        if self.json_columns:  # cells of several types, which datasets keeps as JSON text: written back as they were
            rows = [{k: json.loads(v) if k in self.json_columns and v is not None else v for k, v in row.items()}
                    for row in rows]
        if self.suffix == ".csv":
            self.csv.writerows([json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                                for v in row.values()] for row in rows)
        else:
            self.file.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)

    def close(self):
        self.discard(keep=True)
        os.replace(self.partial, self.path)

    def discard(self, keep=False):
        for f in (self.parquet, self.file):
            if f:
                f.close()
        self.parquet = self.file = None
        if not keep and os.path.exists(self.partial):
            os.remove(self.partial)
