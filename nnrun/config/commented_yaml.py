"""YAML written line by line, each value with a comment beside or above it: what `nnrun init` writes.

PyYAML writes no comments, and a config a person keeps says why each value is
what it is. Values are written by PyYAML (quoted where YAML needs it, flow
style), so a column named `yes` or `Age (years)` reads back as written.
"""

from __future__ import annotations

import textwrap

import yaml

COMMENT_AT = 44  # the column comments start at, where the value leaves room
WIDTH = 120  # no line longer: a comment that would not fit beside its value goes above it


class CommentedYaml:
    """Lines of YAML with comments, written top to bottom."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str, indent: int = 0) -> None:
        """A comment on lines of its own, wrapped.

        Args:
            text: the comment, without '#'.
            indent: its indentation, in levels of two spaces.
        """
        pad = "  " * indent + "# "
        for line in _clean(text).split("\n"):
            self.lines += textwrap.wrap(line, WIDTH, initial_indent=pad, subsequent_indent=pad) or [pad.rstrip()]

    def key(self, key: str, value: object = None, comment: str = "", indent: int = 0) -> None:
        """`key: value  # comment`, or `key:` opening a block when `value` is None.

        Args:
            key: the key.
            value: the value, written in flow style; None opens a block.
            comment: said beside it.
            indent: its indentation, in levels of two spaces.
        """
        self._add(f"{key}:" + ("" if value is None else f" {flow(value)}"), comment, indent)

    def item(self, value: object, comment: str = "", indent: int = 1) -> None:
        """`- value  # comment`, an item of a block list; a mapping of one key as `- Key: value`.

        Args:
            value: the item, in flow style (`- Dense: {units: 8}`, as Keras layers are written).
            comment: said beside it.
            indent: its indentation, in levels of two spaces.
        """
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            self._add(f"- {flow(key)}: {flow(inner)}", comment, indent)
        else:
            self._add(f"- {flow(value)}", comment, indent)

    def _add(self, text, comment, indent):
        """A line, its comment beside it, or above it where the line would be longer than `WIDTH`."""
        text = "  " * indent + text
        if comment and max(len(text) + 1, COMMENT_AT) + len(comment) + 2 > WIDTH:
            self.comment(comment, indent)
            comment = ""
        self.lines.append(
            f"{text.ljust(COMMENT_AT - 1)} # {_clean(comment).replace(chr(10), ' ')}" if comment else text
        )

    def text(self) -> str:
        """The YAML, ending with a newline."""
        return "\n".join(self.lines) + "\n"


def flow(value: object) -> str:
    """A value as YAML in flow style on one line: `[a, b]`, `{units: 8}`, `'yes'`."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def _clean(text):
    """Comment text without characters that would end a comment line or upset a terminal."""
    return "".join(c if c == "\n" or c.isprintable() else " " for c in text)
