"""Weights files: safe reading, selecting a net, strict loading, atomic saving, bad input."""

import os
import pickle
import zipfile

import numpy as np
import paddle
import pytest

from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.utils.config import AttrDict
from ppgan.apps.convert_weights import convert_checkpoint
from ppgan.utils.errors import WeightsError
from ppgan.utils.weights import (CHECKPOINT_FORMAT, load_weights, read_weights_file,
                                 save_weights_file, select_state_dict)

SMALL = 0.25


@pytest.fixture(scope="module")
def generator():
    paddle.seed(3)
    return Wav2Lip(SMALL)


def assert_same_state(net_a, net_b):
    a, b = net_a.state_dict(), net_b.state_dict()
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


def test_paddlegan_flat_pdparams_loads(tmp_path, generator):
    path = str(tmp_path / "wav2lip_hq.pdparams")
    paddle.save(generator.state_dict(), path)  # what PaddleGAN releases: a flat generator dict
    state = read_weights_file(path)
    assert set(state) == set(generator.state_dict())
    assert all(isinstance(v, np.ndarray) for v in state.values())
    fresh = Wav2Lip(SMALL)
    report = load_weights(fresh, path)
    assert report.ok and report.loaded == 302
    assert_same_state(generator, fresh)


def test_paddlegan_dict_of_nets_selects_by_name(tmp_path, generator):
    expert = SyncNetColor(SMALL)
    path = str(tmp_path / "iter_3000_weight.pdparams")
    paddle.save({"netG": generator.state_dict(), "netD": expert.state_dict()}, path)
    fresh = Wav2Lip(SMALL)
    load_weights(fresh, path)  # default: netG
    assert_same_state(generator, fresh)
    fresh_expert = SyncNetColor(SMALL)
    load_weights(fresh_expert, path, net_name="netD")
    assert_same_state(expert, fresh_expert)
    with pytest.raises(WeightsError, match=r"no network 'netDH'.*netG, netD"):
        load_weights(fresh, path, net_name="netDH")
    with pytest.raises(WeightsError, match="several networks"):
        select_state_dict({"netA": {"w": np.zeros(1)}, "netB": {"w": np.zeros(1)}}, path="x.pdparams")


def test_own_checkpoint_round_trip_also_loads_with_paddle(tmp_path, generator):
    optimizer = paddle.optimizer.Adam(parameters=generator.parameters())
    checkpoint = {
        "format": CHECKPOINT_FORMAT, "version": 1, "iteration": np.int64(7),
        "nets": {"netG": generator.state_dict(), "netD": SyncNetColor(SMALL).state_dict()},
        "optimizers": {"optimizer_G": optimizer.state_dict()},
        "config": AttrDict({"model": {"generator": {"name": "Wav2Lip", "width_mult": SMALL}}}),
    }
    path = str(tmp_path / "ckpt" / "iter_7.pdparams")
    save_weights_file(checkpoint, path)
    assert os.listdir(tmp_path / "ckpt") == ["iter_7.pdparams"]  # no temp file left behind
    back = read_weights_file(path)
    assert back["iteration"] == 7 and back["config"]["model"]["generator"]["width_mult"] == SMALL
    fresh = Wav2Lip(SMALL)
    load_weights(fresh, path, net_name="netG")
    assert_same_state(generator, fresh)
    by_paddle = paddle.load(path)  # PaddleGAN users can read our files with plain Paddle
    key = "output_block.1.weight"
    np.testing.assert_array_equal(by_paddle["nets"]["netG"][key].numpy(),
                                  generator.state_dict()[key].numpy())


def test_save_refuses_objects_it_could_not_read_back(tmp_path):
    path = tmp_path / "bad.pdparams"
    with pytest.raises(TypeError, match=r"checkpoint\.extra"):
        save_weights_file({"w": np.zeros(2), "extra": object()}, str(path))
    assert not path.exists() and os.listdir(tmp_path) == []


def test_strict_loading_lists_missing_unexpected_and_shapes(tmp_path, generator):
    state = {k: v.numpy() for k, v in generator.state_dict().items()}
    missing = dict(state)
    del missing["output_block.1.bias"]
    with pytest.raises(WeightsError, match=r"1 missing \(output_block\.1\.bias\)"):
        load_weights(Wav2Lip(SMALL), missing)
    extra = dict(state, **{"extra.weight": np.zeros(3, "float32")})
    with pytest.raises(WeightsError, match=r"1 unexpected \(extra\.weight\)"):
        load_weights(Wav2Lip(SMALL), extra)
    reshaped = dict(state, **{"output_block.1.bias": np.zeros(4, "float32")})
    with pytest.raises(WeightsError, match=r"output_block\.1\.bias \[4\] in file vs \[3\]"):
        load_weights(Wav2Lip(SMALL), reshaped)
    # non-strict: loads what fits and reports the rest
    net = Wav2Lip(SMALL)
    report = load_weights(net, missing, strict=False)
    assert report.missing == ["output_block.1.bias"] and report.loaded == 301
    np.testing.assert_array_equal(net.state_dict()["output_block.1.weight"].numpy(),
                                  state["output_block.1.weight"])


def test_file_for_another_architecture_or_width(tmp_path):
    expert_path = str(tmp_path / "syncnet.pdparams")
    paddle.save(SyncNetColor(SMALL).state_dict(), expert_path)
    with pytest.raises(WeightsError) as err:
        load_weights(Wav2Lip(SMALL), expert_path)
    message = str(err.value)
    assert "syncnet.pdparams" in message and "Wav2Lip" in message
    assert "another architecture" in message and "186 entries in the file, 302 expected" in message
    wide_path = str(tmp_path / "wide.pdparams")
    paddle.save(Wav2Lip(0.5).state_dict(), wide_path)
    with pytest.raises(WeightsError, match="another architecture or width"):
        load_weights(Wav2Lip(SMALL), wide_path)


def test_torch_names_get_a_conversion_hint():
    state = {"conv.weight": np.zeros((1, 1, 1, 1), "float32"),
             "bn.running_mean": np.zeros(1, "float32")}
    with pytest.raises(WeightsError, match="convert it with tools/convert_weights.py"):
        load_weights(paddle.nn.Conv2D(1, 1, 1), state)


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"just some text\n", "is not a weights file"),
    (b"\xff\xd8\xff\xe0JFIF-like bytes", "is not a weights file"),
    (pickle.dumps([1, 2, 3], protocol=4), "holds no network state dict"),
])
def test_not_a_checkpoint(tmp_path, content, expected):
    path = tmp_path / "thing.pdparams"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=expected) as err:
        load_weights(Wav2Lip(SMALL), str(path))
    assert "thing.pdparams" in str(err.value)


def test_truncated_files(tmp_path, generator):
    full = tmp_path / "full.pdparams"
    paddle.save(generator.state_dict(), str(full))
    data = full.read_bytes()
    for cut in (len(data) // 3, len(data) - 7):
        path = tmp_path / f"cut{cut}.pdparams"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=f"cut{cut}.pdparams is corrupt or truncated"):
            read_weights_file(str(path))
    zipped = tmp_path / "model.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": 1}, protocol=2))
    (tmp_path / "cut.pth").write_bytes(zipped.read_bytes()[:40])
    with pytest.raises(WeightsError, match="cut.pth is corrupt or truncated"):
        read_weights_file(str(tmp_path / "cut.pth"))
    with pytest.raises(WeightsError, match="not found"):
        read_weights_file(str(tmp_path / "absent.pdparams"))


# ------------------------------------------------------------------ malicious pickles

class _WritesMarker:
    """Unpickling this calls builtins.open(marker, "w"), which creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_files(tmp_path, payload_cls):
    marker = str(tmp_path / "PWNED")
    state = {"audio_encoder.0.conv_block.0.weight": np.zeros((4, 1, 3, 3), "float32"),
             "payload": payload_cls(marker)}
    pdparams = tmp_path / "evil.pdparams"
    pdparams.write_bytes(pickle.dumps(state, protocol=4))
    pth = tmp_path / "evil.pth"  # the PyTorch zip layout, built by hand: no torch needed
    with zipfile.ZipFile(pth, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"state_dict": state}, protocol=2))
        archive.writestr("evil/version", "3\n")
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
                       + pickle.dumps(1001, protocol=2) + pickle.dumps({}, protocol=2)
                       + pickle.dumps({"state_dict": state}, protocol=2))
    return marker, [str(pdparams), str(pth), str(legacy)]


@pytest.mark.parametrize("payload_cls", [_WritesMarker, _RunsShell])
def test_malicious_pickles_are_refused_and_never_run(tmp_path, payload_cls):
    marker, paths = _malicious_files(tmp_path, payload_cls)
    for path in paths:
        with pytest.raises(WeightsError, match="refusing to load .*may be malicious") as err:
            load_weights(Wav2Lip(SMALL), path)
        assert os.path.basename(path) in str(err.value)
        with pytest.raises(WeightsError, match="refusing to load"):
            convert_checkpoint(path, "wav2lip")
    assert not os.path.exists(marker)
    # control: the payload is live, plain pickle would have run it
    with open(paths[0], "rb") as stream:
        pickle.load(stream)
    assert os.path.exists(marker)


def test_object_arrays_and_foreign_classes_are_refused(tmp_path):
    path = tmp_path / "objects.pdparams"
    path.write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=4))
    with pytest.raises(WeightsError, match="array of Python objects"):
        read_weights_file(str(path))
    path.write_bytes(pickle.dumps({"cfg": AttrDict(a=1)}, protocol=4))
    with pytest.raises(WeightsError, match=r"global ppgan\.utils\.config\.AttrDict"):
        read_weights_file(str(path))
