"""YAML read as data: bounded after alias expansion, duplicate keys refused.

`yaml.safe_load` never runs code, but a 1 KB document of nested aliases expands to billions of
nodes ("billion laughs"), and a repeated key silently keeps the last value. The document is
composed into its node graph first (aliases are shared nodes, not copies), its expanded size is
counted over that graph without expanding it, and only then is it constructed.
"""

from typing import Any

import yaml

from tasks.errors import ConfigError

MAX_DOCUMENT_BYTES = 1_000_000
#: Scalars, sequences and mappings after every alias is expanded; real job files have a few
#: hundred.
MAX_EXPANDED_NODES = 50_000


def _expanded_size(root: yaml.Node, origin: str) -> int:
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise ConfigError(f"{origin}: a YAML alias refers to itself")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                if (
                    isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"
                ):
                    name = (key_node.tag, key_node.value)
                    if name in seen:
                        line = key_node.start_mark.line + 1
                        raise ConfigError(
                            f"{origin}: key {key_node.value!r} appears twice (line {line}); "
                            "keep one"
                        )
                    seen.add(name)
                total += size(key_node) + size(value_node)
                if total > MAX_EXPANDED_NODES:
                    break
        in_progress.discard(key)
        sizes[key] = total
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"{origin}: the YAML expands to more than {MAX_EXPANDED_NODES:,} values "
                "(aliases counted); a job config is never that large"
            )
        return total

    return size(root)


def load_yaml(text: str, origin: str) -> Any:
    """Parse one YAML document as plain data, or raise a ConfigError saying what is wrong."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"{origin} is larger than {MAX_DOCUMENT_BYTES:,} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    if root is None:
        return None
    _expanded_size(root, origin)
    loader = yaml.SafeLoader(text)
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
