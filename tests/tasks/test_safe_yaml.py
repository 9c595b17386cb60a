"""YAML read as data: aliases counted after expansion, repeated keys refused."""

import pytest

from tasks.errors import ConfigError
from tasks.safe_yaml import load_yaml


def test_plain_documents_and_modest_aliases_load() -> None:
    data = load_yaml("base: &b {rate: 0.2}\ncopy: *b\nlist: [1, 2]\n", "t.yaml")
    assert data == {"base": {"rate": 0.2}, "copy": {"rate": 0.2}, "list": [1, 2]}


def test_a_nested_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join(["*a" if i == 1 else f"*a{i - 1}"] * 10) + "]"
              for i in range(1, 9)]  # fmt: skip
    with pytest.raises(ConfigError, match="expands to more than"):
        load_yaml("\n".join(lines), "bomb.yaml")


def test_repeated_keys_are_refused_with_their_line() -> None:
    with pytest.raises(ConfigError, match=r"'rate' appears twice \(line 3\)"):
        load_yaml("sampling:\n  rate: 0.1\n  rate: 1.0\n", "dup.yaml")


def test_invalid_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml("a: [unclosed", "bad.yaml")
