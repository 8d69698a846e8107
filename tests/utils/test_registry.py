"""Registries: decorator registration, duplicates, one build function, strict keys."""

import pytest

from ppgan.utils.errors import ConfigError
from ppgan.utils.registry import Registry, build_from_config


@pytest.fixture
def reg():
    registry = Registry("toy")

    @registry.register()
    class Conv:
        def __init__(self, channels, kernel=3):
            self.channels, self.kernel = channels, kernel

    @registry.register("flexible")
    class Flexible:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    return registry


def test_build_by_name_with_defaults(reg):
    obj = build_from_config({"name": "Conv", "channels": 8}, reg, kernel=5)
    assert (obj.channels, obj.kernel) == (8, 5)
    obj = build_from_config({"name": "Conv", "channels": 8, "kernel": 1}, reg, kernel=5)
    assert obj.kernel == 1


def test_alias_and_kwargs_classes(reg):
    assert build_from_config({"name": "flexible", "anything": 1}, reg).kwargs == {"anything": 1}
    assert "flexible" in reg and reg.names() == ["Conv", "flexible"]


def test_duplicate_name_is_an_error(reg):
    with pytest.raises(KeyError, match="already registered"):
        @reg.register("Conv")
        class Other:
            pass


def test_unknown_name_lists_registered(reg):
    with pytest.raises(ConfigError) as err:
        build_from_config({"name": "Convv"}, reg, where="model.generator")
    assert "Conv, flexible" in str(err.value) and "'Conv'" in str(err.value)


def test_unknown_key_names_closest(reg):
    with pytest.raises(ConfigError) as err:
        build_from_config({"name": "Conv", "channels": 4, "kernal": 3}, reg, where="model.generator")
    message = str(err.value)
    assert "kernal" in message and "'kernel'" in message and "model.generator" in message


def test_missing_name_key(reg):
    with pytest.raises(ConfigError, match="needs a 'name:' key"):
        build_from_config({"channels": 4}, reg)


def test_config_is_not_mutated(reg):
    cfg = {"name": "Conv", "channels": 4}
    build_from_config(cfg, reg)
    assert cfg == {"name": "Conv", "channels": 4}
