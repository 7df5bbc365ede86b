"""What predict.py labels: texts as arguments, standard input, a .txt file (one text a line) or a table read with
train.py's reader (textlora/tables.py), CHUNK rows at a time; each row's texts and labels checked, as train.py checks
its data, and the labels read with the adapter's codec (textlora/labels.py)."""
import io
import itertools
import os
import sys

from . import Refused, tables

CHUNK = 2048  # rows read, labelled and written at a time: memory does not grow with the number of rows


class Input:
    """Where the texts come from: arguments, standard input, a .txt file (one text a line) or a table, read with
    train.py's reader (textlora/tables.py). chunks() gives CHUNK rows at a time as a pyarrow table."""

    def __init__(self, cfg, text_columns, label_columns, na_classes=()):
        self.cfg, self.text_columns = cfg, text_columns
        self.kind = "arguments" if cfg.texts else os.path.splitext(cfg.file)[1].lower() if cfg.file else "stdin"
        self.table = self.kind in tables.FILES
        self.rows = None  # how many, where known before labelling
        if self.table:
            import datasets
            datasets.disable_progress_bars()
            try:
                self.data = tables.read(cfg.file, [*text_columns, *label_columns], values=na_classes)["train"]
            except Exception as e:  # pyarrow, pandas and datasets each raise their own type for a bad file
                raise Refused(f"cannot read {cfg.file!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                    from None
            self.columns, self.rows = self.data.column_names, len(self.data)
            if mixed := [c for c in label_columns if type(self.data.features.get(c)).__name__ == "Json"]:
                raise Refused(f"{cfg.file!r}: column {mixed[0]!r} holds labels of several types (numbers in some "
                              f"rows and text in others, say); make them one type")
            # a CSV's label cells are parsed to be scored (as train.py parses them) and written back as they were:
            # the same reader, with only the text columns parsed, gives the rows to write
            self.written = tables.read(cfg.file, text_columns)["train"] \
                if self.kind in tables.SEPARATED and set(label_columns) & set(self.columns) else self.data
            # a JSONL field of several types (a number here, text there): datasets keeps it as JSON text
            self.json_columns = [c for c, f in self.written.features.items() if type(f).__name__ == "Json"]
            self.schema = self.written.features.arrow_schema.remove_metadata()
        else:
            import pyarrow as pa
            self.columns, self.json_columns = list(text_columns), []
            self.schema = pa.schema([(c, pa.string()) for c in text_columns])

    def check_columns(self, cfg, codec):
        """The columns named are there and none is one the output adds. Returns the label columns and whether the
        rows are scored (a table that has them, unless --no_score)."""
        if cfg.label_column and not self.table:
            raise Refused("--label_column needs a table (.csv, .tsv, .jsonl or .parquet); lines of text have no "
                          "label column")
        for column in (*self.text_columns, *(cfg.label_column or [])):
            if self.table and column not in self.columns:
                raise Refused(f"{cfg.file!r} has no column {column!r} (it has {', '.join(map(str, self.columns))}); "
                              f"set {'--label_column' if column in (cfg.label_column or []) else '--text_column'}")
        label_columns = cfg.label_column or codec.columns
        if len(label_columns) != len(codec.columns):
            raise Refused(f"--label_column: this adapter's labels are in {len(codec.columns)} column(s) "
                          f"({' '.join(codec.columns)}); give as many")
        if clash := [c for c in output_columns(codec) if c in self.columns]:
            raise Refused(f"the input already has a column {clash[0]!r}, which the output adds; rename it")
        return label_columns, self.table and not cfg.no_score and all(c in self.columns for c in label_columns)

    def check_rows(self, label_columns, codec, scored):
        """Every row read once before the model loads: its texts, and where it is scored its label (standard
        input, read once, is checked as it is labelled)."""
        import pyarrow as pa
        if self.table:
            first = 1
            for chunk, _ in self.chunks():
                check_texts(chunk, self.text_columns, self.where, first)
                if scored:
                    targets(chunk, label_columns, codec, self.where, first)
                first += len(chunk)
            if self.rows == 0:
                raise Refused(f"{self.cfg.file!r} holds no rows")
        elif self.kind in ("arguments", ".txt"):
            n = 0
            for n, fields in enumerate(self.lines(), 1):
                check_texts(pa.table(dict(zip(self.text_columns, ([f] for f in fields)))), self.text_columns,
                            lambda _, n=n: self.where(n), 1)
            self.rows = n
            if n == 0:
                raise Refused(f"{self.cfg.file!r} holds no rows" if self.cfg.file else "no texts given")

    def counted(self, output):
        """Whether labelling shows a bar and a summary line: a file's rows, or standard input written to --output (a
        few texts as arguments, or lines typed in, answer line by line)."""
        return self.kind != "arguments" and (self.kind != "stdin" or bool(output))

    def lines(self):
        """Each line a text (a pair: two tab-separated fields), split on "\\n" alone (a form feed or a Unicode line
        separator stays in its text)."""
        lines = self.cfg.texts if self.kind == "arguments" else open(self.cfg.file, encoding="utf-8-sig",
                                                                     newline="\n") \
            if self.cfg.file else io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="\n")
        n = 0  # the lines read whole before the bytes that are not UTF-8 (decoded a block at a time: perhaps more)
        try:
            for n, line in enumerate(lines, 1):
                line = line.removesuffix("\n").removesuffix("\r") if self.kind != "arguments" else line
                fields = line.split("\t", 1) if len(self.text_columns) == 2 else [line]
                if len(fields) < len(self.text_columns):
                    raise Refused(f"{self.where(n)} is not a pair: this adapter was trained on pairs of texts "
                                  f"({' and '.join(self.text_columns)}); give two tab-separated fields")
                yield fields
        except UnicodeDecodeError as e:
            raise Refused(f"{repr(self.cfg.file) if self.cfg.file else 'standard input'} is not UTF-8 text "
                          f"({e.reason}, after line {n}); save it as UTF-8") from None

    def where(self, n):
        """Row n (from 1) as messages name it."""
        return f"row {n}" if self.table else f"{'text' if self.kind == 'arguments' else 'line'} {n}"

    def chunks(self):
        """(rows as read for the model and the scores, the same rows as they are written back)."""
        import pyarrow as pa
        if self.table:
            yield from zip(self.data.with_format("arrow").iter(batch_size=CHUNK),
                           self.written.with_format("arrow").iter(batch_size=CHUNK))
            return
        lines = self.lines()
        while chunk := list(itertools.islice(lines, CHUNK)):
            table = pa.table({c: [fields[i] for fields in chunk] for i, c in enumerate(self.text_columns)})
            yield table, table


def check_texts(table, text_columns, where, first):
    """Each row's text(s): a string that is not blank, else one line naming the row."""
    import pyarrow.compute as pc
    for column in text_columns:
        cells = table[column]
        if not str(cells.type).endswith("string") and not pc.all(pc.is_null(cells)).as_py():
            raise Refused(f"column {column!r} holds {cells.type}, not text")
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(cells.cast("string")), ""), True)
        if pc.any(blank).as_py():
            n = first + pc.index(blank, True).as_py()
            named = f" in column {column!r}" if where(n).startswith("row") else ""
            raise Refused(f"{where(n)} has an empty text{named}"
                          f": every row needs one (remove the row or fill it in)")


def targets(table, label_columns, codec, where, first):
    """Each row's label as train.py's loss took it (None: no label, a row only to label); one line for a label that
    is no class of the adapter."""
    cells = [table[c].to_pylist() for c in label_columns]
    result = []
    for n, row in enumerate(zip(*cells), first):
        try:
            result.append(codec.encode(list(row)))
        except ValueError as e:
            raise Refused(f"{where(n)}: {e} (column {' '.join(label_columns)})") from None
    return result


def na_classes(codec):
    """An adapter's classes spelled as pandas spells a missing value (None, NA): in a CSV such a cell is that class
    (the adapter learned it from a JSONL or Parquet file, where it is text); only an empty cell is no label there."""
    from .labels import REGRESSION
    if codec.problem == REGRESSION or codec.kind == "columns":
        return []
    return [str(v) for v in codec.values + codec.names if str(v) in tables.NA_SPELLINGS and str(v)]


def output_columns(codec):
    """The columns predict.py adds to each row: the prediction, and the probabilities where there are classes."""
    from .labels import REGRESSION, SINGLE
    return ["predicted"] + (["probability"] if codec.problem == SINGLE else []) + \
        ([] if codec.problem == REGRESSION else [f"probability_{name}" for name in codec.names])
