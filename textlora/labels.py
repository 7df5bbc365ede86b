"""Labels: what a data set's label values are, which class id (or 0/1 per label, or number) each one becomes, and how
a person reads them. Decided once from the training data and saved with the adapter (training.json's label_codec),
so that predict.py reads a file's labels with the ids train.py used."""
import math

from . import Refused

SINGLE, MULTI, REGRESSION = "single_label_classification", "multi_label_classification", "regression"
PROBLEM_NAMES = {SINGLE: "one class per text", MULTI: "several labels per text", REGRESSION: "a number per text"}
AS_THEY_ARE = "none"  # LABEL_NAMES none: the data's own names are shown


def key(value):
    """A label value as one string, so that a cell means the same class whichever reader or file it came from: 1,
    1.0 and "1" are "1"; True, "true" and "TRUE" are "true"; None, NaN and a blank are no label (None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return None if not math.isfinite(value) else str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return key(number) if math.isfinite(number) else text


class Codec:
    """problem: one class, several labels or a number per text; columns: the label column(s); kind: how the data
    holds its labels (classlabel, string, integer, boolean, binary, list, columns, number); values: the data's own
    values in class-id order (JSON values); names: how they are shown."""

    def __init__(self, problem, columns, kind, values, names, item_kind=None):
        self.problem, self.columns, self.kind, self.values, self.names = problem, list(columns), kind, values, names
        self.item_kind = item_kind  # for lists: classlabel (items are ids or names) or plain
        self.by_key = {key(v): i for i, v in enumerate(values)}
        self.by_name = {n: i for i, n in enumerate(names)}

    def to_json(self):
        return {"problem_type": self.problem, "columns": self.columns, "kind": self.kind, "values": self.values,
                "names": self.names, "item_kind": self.item_kind}

    @classmethod
    def from_json(cls, d):
        return cls(d["problem_type"], d["columns"], d["kind"], d["values"], d["names"], d.get("item_kind"))

    def class_id(self, value, classlabel=False):
        """A value as its class id: one of the data's own values, else a shown name; None where it is no label.
        A ClassLabel's integers are its ids already; no other integer is ever read as an id."""
        if classlabel and isinstance(value, float) and value.is_integer():  # 0.0: pandas' ids, in a column with blanks
            value = int(value)
        if classlabel and isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(self.values):
                return value
            if value < 0:  # ClassLabel's "no label"
                return None
            raise ValueError(f"label {value!r} is not a class id of this adapter (0-{len(self.values) - 1})")
        k = key(value)
        if k is None:
            return None
        if k in self.by_key:
            return self.by_key[k]
        if isinstance(value, str) and value.strip() in self.by_name:
            return self.by_name[value.strip()]
        raise ValueError(f"label {value!r} is no class of this adapter ({', '.join(self.shown_classes())})")

    def shown_classes(self):
        return [n if key(v) == n else f"{n} ({v})" for v, n in zip(self.values, self.names)] \
            if self.problem != REGRESSION else self.names

    def encode(self, cells):
        """The label the loss takes, from the label cells of one row (one per column): a class id, 0/1 per label,
        or a number; None where the row has no label. ValueError names a value that is no label of this codec."""
        if self.problem == REGRESSION:
            k = key(cells[0])
            if k is None:
                return None
            if isinstance(cells[0], bool) or k in ("true", "false"):
                raise ValueError(f"label {cells[0]!r} is not a number")
            try:
                number = float(k)
            except ValueError:
                raise ValueError(f"label {cells[0]!r} is not a number") from None
            if not abs(number) <= 3.4028234663852886e38:  # float32's largest: beyond it the loss's number is infinite
                raise ValueError(f"label {cells[0]!r} is beyond the range of float32 numbers, which the model uses")
            return number
        if self.kind == "columns":
            keys = [key(c) for c in cells]
            if None in keys:
                return None
            if bad := next((c for c, k in zip(cells, keys) if k not in ("0", "1", "true", "false")), None):
                raise ValueError(f"label {bad!r} is not 0 or 1 (does the text have the label?)")
            return [float(k in ("1", "true")) for k in keys]
        if self.problem == MULTI:
            items = cells[0]
            if items is None:
                return None
            if not isinstance(items, (list, tuple)):
                raise ValueError(f"label {items!r} is not a list of labels")
            ids = [self.class_id(v, self.item_kind == "classlabel") for v in items]
            if None in ids:
                return None
            return [float(i in ids) for i in range(len(self.names))]
        return self.class_id(cells[0], self.kind == "classlabel")

    def feature(self):
        """The datasets feature of encode()'s labels in train.py's rows."""
        from datasets import ClassLabel, List, Value
        return {REGRESSION: Value("float32"), MULTI: List(Value("float32"))}.get(self.problem) or \
            ClassLabel(names=self.names)

    def as_array(self, targets):
        """encode()'s labels as the Trainer gets them from train.py's rows: float32 for several labels or a number
        (the loss's type; a number is rounded to it), int64 class ids."""
        import numpy as np
        return np.asarray(targets, dtype=np.int64 if self.problem == SINGLE else np.float32)

    def shown(self, target):
        """A label as a person reads it: the class's name, the names of the labels given (or none), or the number."""
        if self.problem == SINGLE:
            return self.names[target]
        if self.problem == MULTI:
            return ", ".join(name for name, on in zip(self.names, target) if on) or "none"
        return f"{target:.3g}"


def is_number(dtype):
    return dtype.startswith(("float", "double", "int", "uint", "bool", "halffloat"))


def from_data(features, columns, distinct, problem_type, label_names):
    """The codec the training data calls for, and in words the kind chosen, why, and the flag that chooses another.
    features: the label columns' datasets features; distinct(column): its distinct values (a list's items one by
    one) over the splits drawn from; problem_type: PROBLEM_TYPE; label_names: LABEL_NAMES as data=shown pairs."""
    from datasets import ClassLabel, List, Sequence, Value
    listed = isinstance(features[0], (List, Sequence))
    inner = features[0].feature if listed else features[0]
    flags = [isinstance(f, Value) and is_number(f.dtype) for f in features]
    spelled = " ".join(columns)
    if len(columns) > 1 and not all(flags):
        raise Refused(f"--label_column {spelled}: several label columns each hold 0 or 1 (does the text have that "
                      f"label?); {columns[flags.index(False)]!r} holds {features[flags.index(False)]}")
    if listed and problem_type == "single_label":
        raise Refused(f"--label_column {columns[0]!r} holds lists: several labels per text; drop --problem_type "
                      f"single_label")
    if problem_type == "multi_label" and not listed and len(columns) == 1:
        raise Refused(f"--problem_type multi_label needs a column of lists of labels, or several 0/1 columns; "
                      f"--label_column {columns[0]!r} holds one value per text")
    if len(columns) > 1 and problem_type in ("single_label", "regression"):
        raise Refused(f"--label_column: several columns ({', '.join(columns)}) are several labels per text; drop "
                      f"--problem_type {problem_type}")
    if listed and problem_type == "regression":
        raise Refused(f"--problem_type regression needs one column of numbers; --label_column {spelled} holds lists")
    if type(inner).__name__ == "Json":  # datasets' type for a JSON field whose values are of several types
        raise Refused(f"--label_column {spelled!r} holds values of several types (numbers in some rows and text in "
                      f"others, say); make them one type")
    classlabel = isinstance(inner, ClassLabel)
    dtype = "classlabel" if classlabel else inner.dtype if isinstance(inner, Value) else str(inner)

    if len(columns) > 1:
        for c in columns:
            if not {key(v) for v in distinct(c)} - {None} <= {"0", "1", "true", "false"}:
                raise Refused(f"--label_column {c!r} holds {sorted(distinct(c), key=str)[:5]}: with several label "
                              f"columns each holds 0 or 1 (does the text have that label?)")
        codec = Codec(MULTI, columns, "columns", list(columns), list(columns))
        why = "several 0/1 columns, one label each"
        return renamed(codec, label_names), why
    if listed:
        values = inner.names if classlabel else [v for v in sorted(distinct(columns[0]), key=sort_key)
                                                 if key(v) is not None]
        same(values, spelled)
        codec = Codec(MULTI, columns, "list", values, [str(v) if classlabel else key(v) for v in values],
                      "classlabel" if classlabel else "plain")
        return renamed(codec, label_names), "lists of labels: several labels per text"
    if classlabel:
        if problem_type == "regression":
            raise Refused(f"--problem_type regression needs one column of numbers; --label_column {spelled} holds "
                          f"class names ({', '.join(inner.names)})")
        codec = Codec(SINGLE, columns, "classlabel", list(inner.names), list(inner.names))
        return renamed(codec, label_names), "the data's ClassLabel names"
    if not (is_number(dtype) or dtype.endswith("string")):
        raise Refused(f"--label_column {spelled!r} holds {dtype}; it must hold class names, integer ids, true/false, "
                      f"numbers, a list of labels, or several 0/1 columns")
    values = sorted(distinct(columns[0]), key=sort_key)
    values = [v for v in values if key(v) is not None]
    same(values, spelled)
    floats = dtype.startswith(("float", "double", "halffloat"))
    whole = floats and all(float(v).is_integer() for v in values)
    only_01 = {key(v) for v in values} <= {"0", "1"}
    if problem_type == "regression" or (problem_type == "auto" and floats and not only_01):
        if not is_number(dtype) or dtype == "bool":
            raise Refused(f"--problem_type regression needs one column of numbers; --label_column {spelled} holds "
                          f"{dtype}")
        other = "; --problem_type single_label for classes" if whole else ""
        why = (f"numbers: a number per text{other}" if problem_type == "auto"
               else "--problem_type regression")
        return Codec(REGRESSION, columns, "number", [columns[0]], [columns[0]]), why
    if floats and not whole:
        raise Refused(f"--label_column {spelled!r} holds numbers that are not whole ({values[0]!r}, ...): classes "
                      f"need names or whole numbers; --problem_type regression for a number per text")
    kind = ("boolean" if dtype == "bool" else "binary" if floats else "integer" if is_number(dtype) else "string")
    why = {"boolean": "true/false: two classes",
           "binary": "floats holding only 0 and 1: two classes; --problem_type regression for a number per text",
           "integer": "whole numbers, as they are: one class each; --problem_type regression for a number per text",
           "string": "the data's own names, in sorted order"}[kind]
    if floats:
        values = [int(v) for v in values]
    codec = Codec(SINGLE, columns, kind, values, [key(v) for v in values])
    return renamed(codec, label_names), why


def same(values, column):
    """Two of the data's values that key() reads as one ("007" and "7", "True" and "true") would be one class."""
    seen = {}
    for v in values:
        if (k := key(v)) in seen:
            raise Refused(f"--label_column {column!r} holds both {seen[k]!r} and {v!r}, which read as the same label "
                          f"in a file; make them one value")
        seen[k] = v


def sort_key(value):
    """Numbers in numeric order, then everything else as text."""
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def renamed(codec, label_names):
    """The codec with LABEL_NAMES applied (data=shown, matched to the data's values as key() spells them); none: as
    they are. A shown name that is another class's value would make a file's labels ambiguous, so it is refused."""
    if label_names == [AS_THEY_ARE] or codec.problem == REGRESSION:
        return codec
    shown = {key(data): name for data, name in (pair.split("=", 1) for pair in label_names)}
    names = [shown.get(key(v), n) for v, n in zip(codec.values, codec.names)]
    for i, name in enumerate(names):
        if (j := codec.by_key.get(key(name), i)) != i:
            raise Refused(f"--label_names shows {codec.values[i]!r} as {name!r}, which is the data's value of another "
                          f"class ({codec.values[j]!r}): a file's labels would be ambiguous; choose another name")
        if names.count(name) > 1:
            raise Refused(f"--label_names shows two classes as {name!r}; give each its own name")
    return Codec(codec.problem, codec.columns, codec.kind, codec.values, names, codec.item_kind)
