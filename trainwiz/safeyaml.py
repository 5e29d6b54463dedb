"""YAML from outside, read with ``yaml.SafeLoader`` and bounded.

``yaml.safe_load`` already refuses Python objects, but not size: an 849-byte file of nested
aliases ("billion laughs") stands for billions of values, and every walk over the result (the
validator, a dump, a line-number pass) expands them. So a document is composed once, refused
when the text is larger than ``max_bytes`` or when it stands for more than ``MAX_NODES`` nodes
once its aliases are expanded, and only then constructed (from the same node graph).
"""

from __future__ import annotations

from typing import Any

from trainwiz.errors import TrainwizError

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000  # a profile has about 50; an accelerate config about 40


class YamlRefused(TrainwizError):
    """The text was not parsed: too large, or too many values once aliases are expanded."""


def expanded_size(node, limit: int = MAX_NODES) -> int:
    """How many nodes ``node`` stands for with every alias expanded (stops counting past
    ``limit``). Shared nodes are counted once per use, each node's own size computed once."""
    import yaml

    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in active:  # a recursive alias: infinite once expanded
            return limit + 1
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        active.discard(key)
        memo[key] = total
        return total

    return size(node)


def duplicate_key(node) -> tuple[str, int, int] | None:
    """The first key given twice in one mapping, with both (1-based) lines, or None."""
    import yaml

    seen_nodes: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            lines: dict[str, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if k.value in lines:
                        return k.value, lines[k.value], line
                    lines[k.value] = line
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return None


def compose(text: str, source: str, *, max_bytes: int = MAX_BYTES):
    """The YAML node graph of ``text`` (or None for an empty document), checked against the
    bounds. Raises YamlRefused; YAML syntax errors propagate as ``yaml.YAMLError``."""
    import yaml

    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "replace"))
    if size > max_bytes:
        raise YamlRefused(f"{source}: {size:,} bytes; allowed: at most {max_bytes // 1024} KiB "
                          "(not read)")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            n = expanded_size(node)
            if n > MAX_NODES:
                raise YamlRefused(f"{source}: its aliases (*name) expand to more than "
                                  f"{MAX_NODES:,} values; allowed: at most {MAX_NODES:,} "
                                  "(not read)")
            twice = duplicate_key(node)
            if twice:  # safe_load keeps the last silently: the user meant one of them
                key, first, second = twice
                raise YamlRefused(f"{source}:{second}: key {key!r} is given twice (lines "
                                  f"{first} and {second}); write it once (not read)")
        return node, loader
    except BaseException:
        loader.dispose()
        raise


def load(text: str, source: str, *, max_bytes: int = MAX_BYTES) -> tuple[Any, Any]:
    """``(data, node)``: the document as ``yaml.safe_load`` gives it, and its node graph (for
    line numbers). Raises YamlRefused, or ``yaml.YAMLError`` for a syntax error."""
    node, loader = compose(text, source, max_bytes=max_bytes)
    try:
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node
