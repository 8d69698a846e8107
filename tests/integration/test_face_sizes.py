"""Faces larger than 96 px end to end: a 192 px synthetic corpus, its datasets, a few training
steps, the training CLI, the predictor and the exported program on the resulting checkpoint,
and the LSE scorer, none of them told the size except through the config."""

import importlib.util
import os

import numpy as np
import paddle
import pytest

from ppgan.data import contract
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset
from ppgan.models import Wav2LipModel
from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.solver import build_optimizers
from ppgan.utils.cli import run_main
from ppgan.utils.errors import ConfigError
from ppgan.utils.weights import save_weights_file
from tests.apps.test_predictor import astronaut, make_speech, write_image
from tests import REPO_ROOT

SIZE = 192
WIDTH = 0.0625  # every channel count at its floor of 4-32: the extra stages cost little
REPO = str(REPO_ROOT)


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 192 px synthetic corpus (2 speakers x 2 clips of 30-36 frames), made by the CLI."""
    out = tmp_path_factory.mktemp("synthetic192") / "corpus"
    with pytest.raises(SystemExit) as exit_info:
        run_main(load_tool("make_synthetic_data").main,
                 ["--out", str(out), "--speakers", "2", "--clips", "2", "--seed", "2", "--quiet",
                  "--min-frames", "30", "--max-frames", "36", "--img-size", str(SIZE)])
    assert exit_info.value.code == 0
    return out


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory):
    """A random 192 px expert saved as a flat weights file (no config inside)."""
    paddle.seed(1)
    path = tmp_path_factory.mktemp("expert192") / "syncnet.pdparams"
    save_weights_file(SyncNetColor(WIDTH, SIZE).state_dict(), str(path))
    return str(path)


def stack(samples):
    return {key: np.stack([sample[key] for sample in samples]) for key in samples[0]}


def test_the_corpus_and_datasets_are_at_the_face_size(corpus):
    clip = next(line.strip() for line in open(corpus / "train.txt") if line.strip())
    frame = __import__("cv2").imread(str(corpus / clip / "0.jpg"))
    assert frame.shape == (SIZE, SIZE, 3)
    expert_sample = SyncNetDataset(str(corpus), "train", img_size=SIZE, is_train=False)[0]
    assert expert_sample["face"].shape == contract.expert_face_shape(SIZE) == (15, SIZE // 2, SIZE)
    sample = Wav2LipDataset(str(corpus), "train", img_size=SIZE, is_train=False)[0]
    assert sample["x"].shape == (6, 5, SIZE, SIZE) and sample["y"].shape == (3, 5, SIZE, SIZE)
    assert not sample["x"][:3, :, SIZE // 2:].any()  # the target's lower half is masked


def test_a_few_training_steps_at_192_lower_the_loss(corpus, expert_file):
    paddle.seed(0)
    model = Wav2LipModel(generator={"name": "Wav2Lip", "width_mult": WIDTH, "img_size": SIZE},
                         discriminator={"name": "SyncNetColor", "width_mult": WIDTH, "img_size": SIZE},
                         syncnet_weights=expert_file, syncnet_wt=0.05, syncnet_wt_target=0.05)
    optimizers = build_optimizers({"optimizer_G": {"name": "Adam", "net_names": ["netG"]}},
                                  model.trained_nets(), 1e-2, model.optimizer_keys)
    model.train()
    dataset = Wav2LipDataset(str(corpus), "train", img_size=SIZE, is_train=False)
    batch = stack([dataset[0], dataset[len(dataset) // 2]])
    netG = model.net("netG")
    extra = {"face_encoder_blocks.1.0.conv_block.0.weight", "face_decoder_blocks.7.0.conv_block.0.weight"}
    before = {k: v.numpy().copy() for k, v in netG.state_dict().items() if k in extra}
    losses = []
    for _ in range(6):
        model.setup_input(batch)
        losses.append(model.train_iter(optimizers)["l1_loss"])
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.97 * losses[0] and losses[-1] == min(losses), losses
    for key in extra:  # the 192 stages learn too: gradients reach them through the skips
        assert not np.array_equal(before[key], netG.state_dict()[key].numpy()), key


def test_networks_of_different_face_sizes_do_not_make_a_model(tmp_path, expert_file):
    path = tmp_path / "syncnet96.pdparams"
    save_weights_file(SyncNetColor(WIDTH).state_dict(), str(path))
    with pytest.raises(ConfigError, match="model.discriminator.img_size is 96 but model.generator.img_size is 192"):
        Wav2LipModel(generator={"name": "Wav2Lip", "width_mult": WIDTH, "img_size": SIZE},
                     discriminator={"name": "SyncNetColor", "width_mult": WIDTH},
                     syncnet_weights=str(path))
    from ppgan.models import Wav2LipModelHq
    with pytest.raises(ConfigError, match="model.discriminator_hq.img_size is 96 but model.generator.img_size is 192"):
        Wav2LipModelHq(generator={"name": "Wav2Lip", "width_mult": WIDTH, "img_size": SIZE},
                       discriminator_sync={"name": "SyncNetColor", "width_mult": WIDTH, "img_size": SIZE},
                       discriminator_hq={"name": "Wav2LipDiscQual", "width_mult": WIDTH},
                       syncnet_weights=expert_file)


def test_flat_weights_tell_their_face_size_and_width():
    from ppgan.apps.generator_loader import generator_width
    from ppgan.models.probe import syncnet_img_size, wav2lip_img_size

    for size in (96, 192, 288, 576):
        generator = {k: v.numpy() for k, v in Wav2Lip(0.25, size).state_dict().items()}
        expert = {k: v.numpy() for k, v in SyncNetColor(0.25, size).state_dict().items()}
        assert wav2lip_img_size(generator) == size and syncnet_img_size(expert) == size
        assert generator_width(generator) == 0.25
        assert wav2lip_img_size(expert) is None and syncnet_img_size(generator) is None


def test_cli_trains_at_192_then_the_predictor_runs_the_checkpoint_with_no_size_flag(
        corpus, expert_file, tmp_path, capsys):
    import yaml

    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor
    from ppgan.utils.video import probe_video, write_video

    config = tmp_path / "wav2lip_192_demo.yaml"  # the demo recipe at 192, as configs/wav2lip_192.yaml does it
    config.write_text(yaml.safe_dump({
        "_base_": os.path.join(REPO, "configs", "demo", "wav2lip.yaml"),
        "model": {"generator": {"img_size": SIZE, "width_mult": WIDTH},
                  "discriminator": {"img_size": SIZE, "width_mult": WIDTH}},
        "dataset": {"train": {"img_size": SIZE}, "test": {"img_size": SIZE}}}))
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_main(load_tool("main").main,
                 ["-c", str(config), "--output-dir", str(run), "-o",
                  f"dataset.train.dataroot={corpus}", f"dataset.test.dataroot={corpus}",
                  f"model.syncnet_weights={expert_file}", "total_iters=2", "validate.interval=0",
                  "snapshot_config.interval=2", "enable_visualdl=false", "dataset.train.batch_size=2"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    checkpoint = run / "iter_2_checkpoint.pdparams"
    assert checkpoint.is_file()

    predictor = Wav2LipPredictor(checkpoint_path=str(checkpoint), engine="dynamic", progress=False)
    assert predictor.img_size == SIZE

    speech = make_speech(tmp_path / "speech.wav", 0.4)
    photo = write_image(tmp_path / "face.png", astronaut(256))
    wav2lip = load_tool("wav2lip")
    for face, engine in ((photo, "dynamic"), (None, "static")):
        if face is None:  # a short video of the photo drifting sideways; the exported program at 192
            frames = [np.roll(astronaut(256), shift, axis=1) for shift in range(0, 10, 2)]
            face = str(tmp_path / "face.mp4")
            write_video(face, frames, 25)
        out = tmp_path / f"out_{engine}.mp4"
        with pytest.raises(SystemExit) as exit_info:
            run_main(wav2lip.main, ["--face", face, "--audio", speech, "--checkpoint_path", str(checkpoint),
                                    "--outfile", str(out), "--engine", engine, "--box", "40", "232", "24", "216"])
        assert exit_info.value.code == 0, capsys.readouterr().err
        info = probe_video(out)
        assert (info.width, info.height) == (256, 256) and info.has_audio and info.num_frames == 10


def test_exported_program_at_192_matches_the_network(tmp_path):
    from ppgan.apps.generator_loader import load_generator
    from ppgan.inference.generator import StaticGenerator, export_generator

    paddle.seed(3)
    net = Wav2Lip(WIDTH, SIZE)
    net.eval()
    weights = tmp_path / "g192.pdparams"
    save_weights_file(net.state_dict(), str(weights))  # flat: the size comes from the shapes
    export_generator(net, str(tmp_path / "g192"))
    program = StaticGenerator(str(tmp_path / "g192"), threads=1)
    assert program.img_size == SIZE
    rng = np.random.default_rng(0)
    mels = rng.uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32)
    faces = rng.random((2, 6, SIZE, SIZE), dtype=np.float32)
    with paddle.no_grad():
        expected = net(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
    np.testing.assert_allclose(program(mels, faces), expected, atol=2e-4)
    with pytest.raises(ValueError, match=f"faces \\(N,6,{SIZE},{SIZE}\\)"):
        program(mels, faces[:, :, :96, :96])
    loaded = load_generator(str(weights), engine="dynamic")
    assert loaded.img_size == SIZE
    np.testing.assert_allclose(loaded(mels, faces), expected, atol=1e-6)


def test_lse_scorer_reads_a_192_expert_from_its_weights(corpus, expert_file):
    from ppgan.apps.evaluate import load_faces
    from ppgan.models.lse_scorers import build_expert_scorer

    scorer = build_expert_scorer(weights=expert_file, engine="dynamic")
    assert scorer.face_size == SIZE
    clip = next(line.strip() for line in open(corpus / "test.txt") if line.strip())
    crops, wav, fps = load_faces(str(corpus / clip), scorer)
    windows = scorer.face_windows(crops, 0, 2)
    assert windows.shape == (2,) + contract.expert_face_shape(SIZE)
    embedded = scorer.video_features(crops, 2)
    assert embedded.shape == (2, 32) and np.isfinite(embedded).all()
