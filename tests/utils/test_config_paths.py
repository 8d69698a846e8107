"""ppgan.utils.config_paths: the one rule for every path a config names (dataroot, filelist,
syncnet_weights): absolute as given; anchored keys in their anchor, the others in the working
directory; then beside the config (its folder and two parents)."""

import os

import pytest

from ppgan.utils.config_paths import PATH_KEYS, config_folders, path_candidates, resolve_config_path
from ppgan.utils.errors import ConfigError, DataError, WeightsError


@pytest.fixture
def project(tmp_path, monkeypatch):
    """<tmp>/project/configs/demo (the config's folder) and an unrelated working directory."""
    config_dir = tmp_path / "project" / "configs" / "demo"
    config_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path / "project", str(config_dir), elsewhere


def test_config_folders_are_the_folder_and_two_parents(project):
    root, config_dir, _ = project
    assert config_folders(config_dir) == [config_dir, str(root / "configs"), str(root)]
    assert config_folders(None) == [] and config_folders("") == []


def test_absolute_paths_are_used_as_given(project, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert resolve_config_path(str(corpus), "dataroot", project[1]) == str(corpus)
    assert path_candidates(str(corpus / "x.txt"), "filelist", project[1], anchor=str(corpus)) == \
        [str(corpus / "x.txt"), str(corpus / "x.txt.txt")]


def test_unanchored_keys_prefer_the_working_directory_then_the_config_and_its_parents(project):
    root, config_dir, cwd = project
    (root / "data" / "corpus").mkdir(parents=True)
    # Only beside the config's grandparent (the project root): found there.
    assert resolve_config_path("data/corpus", "dataroot", config_dir) == str(root / "data" / "corpus")
    (cwd / "data" / "corpus").mkdir(parents=True)
    # The working directory comes first.
    assert resolve_config_path("data/corpus", "dataroot", config_dir) == str(cwd / "data" / "corpus")
    (root / "expert.pdparams").write_bytes(b"x")
    assert resolve_config_path("expert.pdparams", "syncnet_weights", config_dir) == str(root / "expert.pdparams")
    # A folder is not a weights file, nor a file a corpus.
    (cwd / "expert.pdparams").mkdir()
    assert resolve_config_path("expert.pdparams", "syncnet_weights", config_dir) == str(root / "expert.pdparams")


def test_filelists_are_looked_for_in_the_corpus_then_beside_the_config_never_the_cwd(project, tmp_path):
    root, config_dir, cwd = project
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (cwd / "train.txt").write_text("stray/list\n")
    (root / "filelists").mkdir()
    (root / "filelists" / "train.txt").write_text("speaker/clip\n")
    with pytest.raises(DataError, match="dataset.filelist: filelist not found: train"):
        resolve_config_path("train", "filelist", None, anchor=str(corpus))  # the CWD's list is not taken
    assert resolve_config_path("filelists/train.txt", "filelist", config_dir, anchor=str(corpus)) == \
        str(root / "filelists" / "train.txt")
    (corpus / "train.txt").write_text("speaker/clip\n")
    assert resolve_config_path("train", "filelist", config_dir, anchor=str(corpus)) == str(corpus / "train.txt")
    assert resolve_config_path("train.txt", "filelist", config_dir, anchor=str(corpus)) == str(corpus / "train.txt")


def test_missing_and_empty_paths_fail_naming_the_key_and_every_place_looked_in(project):
    _, config_dir, cwd = project
    with pytest.raises(DataError, match="dataset.dataroot: corpus folder not found") as missing:
        resolve_config_path("nowhere", "dataroot", config_dir)
    for folder in [str(cwd)] + config_folders(config_dir):
        assert os.path.join(folder, "nowhere") in str(missing.value)
    with pytest.raises(WeightsError, match="model.syncnet_weights: expert weights file not found"):
        resolve_config_path("absent.pdparams", "syncnet_weights", config_dir)
    for key in PATH_KEYS:
        with pytest.raises(ConfigError, match=f"{PATH_KEYS[key].where} is not set"):
            resolve_config_path("", key, config_dir)
    with pytest.raises(KeyError):
        resolve_config_path("x", "output_dir", config_dir)  # not a looked-up path key
