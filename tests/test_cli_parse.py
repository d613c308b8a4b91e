"""The CLI's shared option parsers (nasattn.cli.common)."""

import pytest

from nasattn.cli.common import parse_seeds
from nasattn.config import ConfigError


def test_parse_seeds():
    assert parse_seeds(None) is None
    assert parse_seeds("3, 1,2") == [3, 1, 2]
    with pytest.raises(ConfigError, match=r"--seeds 'a,b': expected integers separated by commas, e.g. 0,1$"):
        parse_seeds("a,b", "0,1")
    with pytest.raises(ConfigError, match="give at least one seed"):
        parse_seeds(" , ")
