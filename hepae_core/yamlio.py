"""The one YAML loader of the project: job configs, space files and site profiles.

* Safe loading only: no python tags, no arbitrary objects.
* YAML 1.2 core-schema scalars, as a reader expects them: ``1e-3`` is a float (YAML 1.1,
  pyyaml's default, makes it a string), ``20:00`` stays a string (1.1 reads base-60
  numbers), ``yes``/``no``/``on``/``off`` stay strings (1.1 reads booleans), ``0755`` is
  the integer 755 and ``2026-01-01`` a string.
* A key given twice in one mapping is refused with both lines (pyyaml keeps the last one).
* Nesting deeper than :data:`MAX_DEPTH` is refused (one line, not a RecursionError).
* Errors carry ``file:line``; :func:`parse` also returns the line of every key and list
  item, so later checks (the space file's axes, a config's settings) can point at them.

This module imports neither torch nor numpy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hepae_core.errors import UserError

Lines = dict[tuple[Any, ...], int]

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class Loader(yaml.SafeLoader):
    """pyyaml's SafeLoader with the YAML 1.2 core schema's implicit scalars."""


# Drop YAML 1.1's resolvers for these tags (base-60, yes/no, dates, 1e-3 as a string) and
# add the YAML 1.2 core schema's (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_bool(loader: Loader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


def _construct_int(loader: Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: a leading zero is not octal


def _construct_float(loader: Loader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


Loader.add_constructor(_BOOL, _construct_bool)
Loader.add_constructor(_INT, _construct_int)
Loader.add_constructor(_FLOAT, _construct_float)


def _record_lines(
    node: yaml.Node,
    path: tuple[Any, ...],
    out: Lines,
    source: str,
    error: type[UserError],
    walked: set[int],
) -> None:
    """Record the line of every mapping key and sequence item; refuse duplicate keys."""
    if isinstance(node, yaml.CollectionNode):
        if id(node) in walked:  # an alias of a node already walked (maybe recursive)
            return
        walked.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                raise error(
                    message=f"key given twice (first at line {seen[key]}); keep one",
                    source=f"{source}:{line}",
                    key=str(key),
                )
            seen[key] = line
            out[(*path, key)] = line
            _record_lines(value_node, (*path, key), out, source, error, walked)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), out, source, error, walked)


#: Deepest nesting of mappings and lists accepted: far more than any config, space file or
#: profile needs, and shallow enough that no later walk of the data runs out of stack.
MAX_DEPTH = 64


def _depth_problem(node: yaml.Node) -> int | None:
    """The line where ``node`` nests deeper than :data:`MAX_DEPTH`, else None (no recursion)."""
    stack: list[tuple[yaml.Node, int]] = [(node, 1)]
    seen: set[int] = set()
    while stack:
        current, depth = stack.pop()
        if not isinstance(current, yaml.CollectionNode) or id(current) in seen:
            continue
        seen.add(id(current))
        if depth > MAX_DEPTH:
            return current.start_mark.line + 1
        children = (
            [v for pair in current.value for v in pair]
            if isinstance(current, yaml.MappingNode)
            else list(current.value)
        )
        stack.extend((child, depth + 1) for child in children)
    return None


def parse(text: str, source: str, error: type[UserError] = UserError) -> tuple[Any, Lines]:
    """Parse YAML text; return the data and the line of every key and list item.

    Parameters
    ----------
    text
        The YAML document.
    source
        Its file name, for messages (``source:line``).
    error
        The :class:`~hepae_core.errors.UserError` subclass to raise (ConfigError,
        GridsearchError...), so each caller's command line handles it as its own.

    Raises
    ------
    error
        For invalid YAML, a duplicated key, or a tag safe loading refuses.
    """
    loader = None
    try:
        loader = Loader(text)  # refuses control characters (ESC...) already
        node = loader.get_single_node()
        deep = _depth_problem(node) if node is not None else None
        if deep is not None:
            raise error(
                message=f"nests mappings and lists more than {MAX_DEPTH} deep; "
                "flatten the document",
                source=f"{source}:{deep}",
            )
        lines: Lines = {}
        if node is not None:
            _record_lines(node, (), lines, source, error, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None:
            problem += f" ({context} at line {cmark.line + 1})"
        raise error(message=f"is not valid YAML: {problem}; fix the syntax", source=where) from None
    except RecursionError:  # the composer recurses once per level of nesting
        raise error(
            message=f"nests mappings and lists too deeply (more than {MAX_DEPTH} levels); "
            "flatten the document",
            source=source,
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def read_text(path: str | Path, error: type[UserError] = UserError) -> str:
    """The UTF-8 text of a file, or one clear error (missing, a directory, not text)."""
    path = Path(path)
    src = str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(message="file not found", source=src) from None
    except IsADirectoryError:
        raise error(message="is a directory, not a YAML file", source=src) from None
    except UnicodeDecodeError as exc:
        raise error(
            message=f"is not a text file (byte {exc.start} is not UTF-8)", source=src
        ) from None
    except OSError as exc:
        raise error(message=f"cannot be read: {exc.strerror or exc}", source=src) from None


def load(path: str | Path, error: type[UserError] = UserError) -> tuple[Any, Lines, str]:
    """Read and parse a YAML file: ``(data, lines, text)``."""
    text = read_text(path, error)
    data, lines = parse(text, str(path), error)
    return data, lines, text


def where(source: str, lines: Lines, *path: Any) -> str:
    """``source:line`` of the deepest recorded prefix of ``path`` (``source`` when none)."""
    for n in range(len(path), 0, -1):
        line = lines.get(tuple(path[:n]))
        if line is not None:
            return f"{source}:{line}"
    return source


class Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string either YAML 1.1 or :class:`Loader` would read
    as something else (``'1e-3'``, ``'yes'``), so any reader gets the string back."""


for _first, _resolvers in Loader.yaml_implicit_resolvers.items():
    for _tag, _rx in _resolvers:
        Dumper.add_implicit_resolver(_tag, _rx, [_first])


def dump(data: Any, **kwargs: Any) -> str:
    """YAML text of plain data (safe), readable back by :func:`parse` unchanged."""
    return yaml.dump(data, Dumper=Dumper, **kwargs)
