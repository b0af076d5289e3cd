"""Reading YAML config text safely: plain data only, no key written twice, bounded size and expansion.

``yaml.safe_load`` builds only plain data, but it keeps the last of two equal keys without a word (two
``train:`` sections: the first one's values vanish), and an alias bomb ("billion laughs": a few lines
whose nested aliases expand to 10⁹ values) is small in memory yet endless to walk or print. Here both
are errors, checked before any value is used or formatted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1_000_000
"""Largest config file read (1 MB; the shipped configs are about 2 kB)."""
MAX_YAML_VALUES = 100_000
"""Most values (scalars, lists, mappings) a config may hold once its aliases are expanded."""


class YamlRefused(Exception):
    """YAML text refused: a key written twice, too many values, or a recursive alias."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key written twice in one mapping (``<<`` merges may still be
    overridden: that is what they are for)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                at = f"lines {first} and {line}" if first != line else f"line {line}"
                raise YamlRefused(
                    f"key {_short(key)} is written twice ({at}); keep one (its values would silently "
                    "replace the other's)"
                )
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


KeyLines = dict[tuple[str, ...], int]
"""Line (from 1) of each string key of nested mappings, by its path: ``{("train", "epochs"): 3}``."""


def parse_yaml(text: str, lines: KeyLines | None = None) -> Any:
    """Parse YAML text into plain data (``yaml.safe_load`` rules), filling ``lines`` when given.

    Raises:
        YamlRefused: a key written twice in one mapping (the message gives both lines), more than
            ``MAX_YAML_VALUES`` values after expanding aliases, an alias that contains itself, or
            nesting deeper than Python's recursion limit.
        yaml.YAMLError: malformed YAML.
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and lines is not None:
            _key_lines(node, lines)
        value = None if node is None else loader.construct_document(node)
        count_values(value)
    except RecursionError:  # e.g. [[[[...]]]] thousands deep: PyYAML's composer recurses per level
        raise YamlRefused("nested too deeply for a config") from None
    finally:
        loader.dispose()
    return value


def read_yaml(path: Path, lines: KeyLines | None = None) -> Any:
    """Read and parse a YAML file of at most ``MAX_YAML_BYTES`` (``lines``: as for ``parse_yaml``).

    Raises:
        YamlRefused: the file is larger, or ``parse_yaml`` refused it.
        OSError, UnicodeDecodeError, yaml.YAMLError: as reading and parsing raise them.
    """
    with open(path, "rb") as f:  # bounded read: also safe on /dev/zero or a FIFO
        data = f.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise YamlRefused(f"larger than {MAX_YAML_BYTES:,} bytes, not a config file")
    return parse_yaml(data.decode("utf-8"), lines)


def _key_lines(root: yaml.Node, lines: KeyLines, max_depth: int = 8) -> None:
    """Record the line of each string key of nested mappings under ``root``; a mapping reached again
    through an alias keeps its first path (so an alias bomb costs one visit per distinct node)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, yaml.MappingNode) or id(node) in seen or len(path) >= max_depth:
            continue
        seen.add(id(node))
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str":
                lines.setdefault((*path, key_node.value), key_node.start_mark.line + 1)
                stack.append((value_node, (*path, key_node.value)))


def count_values(value: Any, limit: int = MAX_YAML_VALUES) -> int:
    """How many values ``value`` holds with aliases expanded (shared objects counted each time they are
    reached), computed in time linear in the distinct objects.

    Raises:
        YamlRefused: more than ``limit`` values, or a container that contains itself.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        ident = id(node)
        if ident in sizes:
            return sizes[ident]
        if ident in active:
            raise YamlRefused("an alias refers to a value that contains it (a recursive structure)")
        active.add(ident)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise YamlRefused(
                    f"expands to more than {limit:,} values (an alias bomb?); a config is far smaller"
                )
        active.discard(ident)
        sizes[ident] = total
        return total

    return size(value)


def _short(value: Any, limit: int = 40) -> str:
    text = (
        repr(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."
