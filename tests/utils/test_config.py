"""Config loading: _base_ inheritance, overrides, attribute access, dumps, and errors."""

import textwrap

import pytest
import yaml

from ppgan.utils.config import dump_config, load_config, merge_dicts
from ppgan.utils.errors import ConfigError
from tests import REPO_ROOT

REPO = REPO_ROOT


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def chain(tmp_path):
    """Three levels: configs/child.yaml -> base/mid.yaml -> base/root.yaml (relative paths)."""
    write(tmp_path / "base/root.yaml", """
        total_iters: 100
        model:
          name: Wav2LipModel
          generator: {name: Wav2Lip, width_mult: 1.0}
          lists: [1, 2, 3]
        optimizer: {optimizer_G: {name: Adam, beta1: 0.5}}
    """)
    write(tmp_path / "base/mid.yaml", """
        _base_: root.yaml
        model:
          generator: {width_mult: 0.5}
          lists: [9]
    """)
    return write(tmp_path / "configs/child.yaml", """
        _base_: ../base/mid.yaml
        total_iters: 7
        model:
          syncnet_wt: 0.03
    """)


def test_base_chain_merges_dicts_and_replaces_lists(chain):
    cfg = load_config(chain)
    assert cfg.total_iters == 7
    assert cfg.model.name == "Wav2LipModel"
    assert cfg.model.generator.name == "Wav2Lip"
    assert cfg.model.generator.width_mult == 0.5
    assert cfg.model.lists == [9]
    assert cfg.model.syncnet_wt == 0.03
    assert cfg.optimizer.optimizer_G.beta1 == 0.5
    assert "_base_" not in cfg


def test_several_bases_in_order(tmp_path):
    write(tmp_path / "a.yaml", "x: 1\ny: {p: 1}\n")
    write(tmp_path / "b.yaml", "x: 2\ny: {q: 2}\n")
    cfg = load_config(write(tmp_path / "c.yaml", "_base_: [a.yaml, b.yaml]\n"))
    assert cfg.x == 2 and cfg.y == {"p": 1, "q": 2}


def test_overrides_are_typed_by_yaml(chain):
    cfg = load_config(chain, ["model.generator.width_mult=0.25", "total_iters=12",
                              "model.name=Wav2LipModelHq", "model.lists=[4, 5]",
                              "optimizer.optimizer_G.beta1=1e-1"])
    assert cfg.model.generator.width_mult == 0.25
    assert cfg.total_iters == 12 and isinstance(cfg.total_iters, int)
    assert cfg.model.name == "Wav2LipModelHq"
    assert cfg.model.lists == [4, 5]
    assert cfg.optimizer.optimizer_G.beta1 == pytest.approx(0.1)


def test_override_list_index(chain):
    cfg = load_config(chain, ["model.lists.0=42"])
    assert cfg.model.lists == [42]


def test_unknown_override_key_names_closest(chain):
    with pytest.raises(ConfigError) as err:
        load_config(chain, ["model.generatr.width_mult=2"])
    message = str(err.value)
    assert "model.generatr" in message and "model.generator" in message
    assert "\n" not in message


def test_override_without_equals_fails(chain):
    with pytest.raises(ConfigError, match="key.sub.key=value"):
        load_config(chain, ["total_iters"])


def test_missing_file_and_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = write(tmp_path / "bad.yaml", "model: {name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad.yaml"):
        load_config(bad)
    scalar = write(tmp_path / "scalar.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_base_cycle_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(tmp_path / "a.yaml")


def test_dump_roundtrip(chain, tmp_path):
    cfg = load_config(chain, ["total_iters=3"])
    out = tmp_path / "run" / "config.yaml"
    dump_config(cfg, out)
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(dump_config(cfg))
    assert load_config(out) == cfg


def test_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1}}
    merged = merge_dicts(base, {"a": {"c": 2}})
    assert base == {"a": {"b": 1}} and merged == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize("configs", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")))
def test_shipped_configs_load(configs):
    cfg = load_config(REPO / configs)
    assert "model" in cfg or "_base_" not in cfg


def test_exponent_floats_without_dot_are_floats(tmp_path):
    cfg = load_config(write(tmp_path / "lr.yaml", "lr: 1e-4\nname: e5\n"), ["lr=3E-5"])
    assert cfg.lr == pytest.approx(3e-5) and cfg.name == "e5"
    assert load_config(tmp_path / "lr.yaml").lr == pytest.approx(1e-4)


def test_one_dataroot_key_sets_every_dataset_block(tmp_path):
    path = write(tmp_path / "data.yaml", """
        dataroot: null
        dataset:
          train: {name: Wav2LipDataset, dataroot: data/lrs2, filelist: train}
          test: {name: Wav2LipDataset, dataroot: data/lrs2, filelist: val}
    """)
    unset = load_config(path)
    assert unset.dataset.train.dataroot == unset.dataset.test.dataroot == "data/lrs2"
    shared = load_config(path, ["dataroot=data/my_speaker"])
    assert shared.dataset.train.dataroot == shared.dataset.test.dataroot == "data/my_speaker"
    with pytest.raises(ConfigError, match="no dataset blocks"):
        load_config(write(tmp_path / "none.yaml", "dataroot: somewhere\n"))


def test_finetune_recipes_are_short_differences_from_the_lrs2_recipes():
    finetune = load_config(REPO / "configs/finetune.yaml", ["dataroot=corpus"])
    lrs2 = load_config(REPO / "configs/wav2lip.yaml")
    assert finetune.model.generator == lrs2.model.generator and finetune.optimizer == lrs2.optimizer
    assert finetune.dataset.train.dataroot == finetune.dataset.test.dataroot == "corpus"
    small = load_config(REPO / "configs/finetune_small.yaml")
    assert small.dataset.train.batch_size < finetune.dataset.train.batch_size
    assert small.total_iters < finetune.total_iters and small.dataroot == "data/my_speaker"
    expert = load_config(REPO / "configs/finetune_syncnet.yaml")
    assert expert.model.syncnet.name == "SyncNetColor" and expert.dataset.test.dataroot == expert.dataroot
    for name in ("finetune", "finetune_small", "finetune_syncnet"):
        assert len((REPO / "configs" / f"{name}.yaml").read_text().splitlines()) < 50


@pytest.mark.parametrize("demo, recipe", [("syncnet", "syncnet"), ("wav2lip", "wav2lip"),
                                          ("wav2lip_hq", "wav2lip_hq")])
def test_demo_configs_are_short_differences_from_the_lrs2_recipes(demo, recipe):
    path = REPO / "configs" / "demo" / f"{demo}.yaml"
    text = path.read_text()
    assert f"_base_: ../{recipe}.yaml" in text and len(text.splitlines()) < 60
    small, full = load_config(path), load_config(REPO / "configs" / f"{recipe}.yaml")
    assert small.model.name == full.model.name and small.optimizer.keys() == full.optimizer.keys()
    assert small.total_iters < full.total_iters and small.dataset.train.dataroot == "data/synthetic"
