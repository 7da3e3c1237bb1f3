"""`.funcignore`: files of a function's folder that are not sent with its source.

It sits at the folder's root and reads like a `.gitignore` (patterns, `!` to keep, `dir/` for
folders, `#` comments). Python's bytecode caches are never sent, and neither is the file itself.
"""
import tarfile
from pathlib import Path
from typing import Callable

import pathspec

NAME = ".funcignore"
_ALWAYS = ["__pycache__/", NAME]

Filter = Callable[[tarfile.TarInfo], tarfile.TarInfo | None]


def filter_for(folder: Path) -> Filter:
    """A `tarfile.add` filter dropping what `folder`'s .funcignore names (members named from its root)."""
    own = folder / NAME
    lines = own.read_text(encoding="utf-8").splitlines() if own.is_file() else []
    spec = pathspec.GitIgnoreSpec.from_lines([*_ALWAYS, *lines])

    def kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name + "/" if info.isdir() else info.name
        return None if spec.match_file(name) else info  # a folder dropped takes its contents with it

    return kept
