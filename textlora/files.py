"""Kill-safe writes: whatever is written appears whole or not at all."""
import json
import os
import shutil


def write_atomically(path, write):
    """Write beside the target, then rename: a kill at any moment leaves the old state or the new, never half."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    remove(tmp)  # left behind by a run killed while writing
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        remove(tmp)


def writable(folder, flag, given):
    """One line unless `folder`, or the nearest folder above it that exists, is a folder this process may write in
    (flag and given: how the user named it)."""
    from . import fail
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        fail(f"{flag} {given!r} cannot be written ({parent!r} is not a writable folder)")


def write_json(path, value):
    write_atomically(path, lambda to: write_text(to, json.dumps(value, indent=2)))


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def remove(path):
    if os.path.islink(path):  # the link goes, never what it points to
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
