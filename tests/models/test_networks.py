"""The three Wav2Lip networks: published topology and names, shapes, and behaviour at small width."""

import numpy as np
import paddle
import pytest

from ppgan.models import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.discriminators.wav2lip_disc_qual import Wav2LipDiscQual
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.modules.conv import channel_scaler
from ppgan.modules.init import init_weights
from ppgan.utils.errors import ConfigError

SMALL = 0.25

# (class, state-dict entries, trainable parameters, sample of {key: shape}) from the reference tables
PUBLISHED = [
    (Wav2Lip, 302, 36_298_035, {
        "face_encoder_blocks.0.0.conv_block.0.weight": [16, 6, 7, 7],
        "face_encoder_blocks.6.1.conv_block.0.weight": [512, 512, 1, 1],
        "face_encoder_blocks.2.3.conv_block.1._variance": [64],
        "audio_encoder.0.conv_block.0.weight": [32, 1, 3, 3],
        "audio_encoder.9.conv_block.0.weight": [256, 128, 3, 3],
        "audio_encoder.12.conv_block.1._mean": [512],
        "face_decoder_blocks.0.0.conv_block.0.weight": [512, 512, 1, 1],
        "face_decoder_blocks.1.0.conv_block.0.weight": [1024, 512, 3, 3],
        "face_decoder_blocks.2.0.conv_block.0.weight": [1024, 512, 3, 3],
        "face_decoder_blocks.3.0.conv_block.0.weight": [768, 384, 3, 3],
        "face_decoder_blocks.4.0.conv_block.0.weight": [512, 256, 3, 3],
        "face_decoder_blocks.5.0.conv_block.0.weight": [320, 128, 3, 3],
        "face_decoder_blocks.6.0.conv_block.0.weight": [160, 64, 3, 3],
        "face_decoder_blocks.6.0.conv_block.0.bias": [64],
        "output_block.0.conv_block.0.weight": [32, 80, 3, 3],
        "output_block.1.weight": [3, 32, 1, 1],
        "output_block.1.bias": [3],
    }),
    (SyncNetColor, 186, 16_435_072, {
        "face_encoder.0.conv_block.0.weight": [32, 15, 7, 7],
        "face_encoder.1.conv_block.0.weight": [64, 32, 5, 5],
        "face_encoder.16.conv_block.1._variance": [512],
        "audio_encoder.11.conv_block.0.weight": [256, 256, 3, 3],
        "audio_encoder.12.conv_block.0.weight": [512, 256, 3, 3],
        "audio_encoder.13.conv_block.0.weight": [512, 512, 1, 1],
    }),
    (Wav2LipDiscQual, 28, 14_113_793, {
        "face_encoder_blocks.0.0.conv_block.0.weight": [32, 3, 7, 7],
        "face_encoder_blocks.1.0.conv_block.0.weight": [64, 32, 5, 5],
        "face_encoder_blocks.6.1.conv_block.0.bias": [512],
        "binary_pred.0.weight": [1, 512, 1, 1],
        "binary_pred.0.bias": [1],
    }),
]


def trainable_count(net):
    return sum(int(np.prod(p.shape)) for p in net.parameters() if not p.stop_gradient)


@pytest.fixture(scope="module")
def full_size():
    """Published-size networks, each built once (construction takes seconds on CPU)."""
    built = {}

    def get(cls):
        if cls not in built:
            built[cls] = cls()
        return built[cls]
    return get


@pytest.mark.parametrize("cls, entries, params, sample", PUBLISHED, ids=lambda v: getattr(v, "__name__", ""))
def test_published_topology_and_names(cls, entries, params, sample, full_size):
    state = full_size(cls).state_dict()
    assert len(state) == entries
    assert trainable_count(full_size(cls)) == params
    for key, shape in sample.items():
        assert list(state[key].shape) == shape, key
    # Paddle batch norm keeps running statistics as _mean/_variance, never torch's names.
    assert not any("running" in key or "num_batches" in key for key in state)


def test_registered_and_built_from_config():
    assert "Wav2Lip" in GENERATORS
    assert {"SyncNetColor", "Wav2LipDiscQual"} <= set(DISCRIMINATORS.names())
    gen = build_generator({"name": "Wav2Lip", "width_mult": SMALL})
    disc = build_discriminator({"name": "Wav2LipDiscQual", "width_mult": SMALL})
    assert isinstance(gen, Wav2Lip) and isinstance(disc, Wav2LipDiscQual)
    with pytest.raises(ConfigError, match="width_mul"):
        build_generator({"name": "Wav2Lip", "width_mul": SMALL})


def test_width_multiplier_shrinks_every_layer_but_keeps_names(full_size):
    full, small = full_size(Wav2Lip).state_dict(), Wav2Lip(SMALL).state_dict()
    assert list(full) == list(small)
    assert small["face_encoder_blocks.0.0.conv_block.0.weight"].shape == [4, 6, 7, 7]
    assert small["face_decoder_blocks.3.0.conv_block.0.weight"].shape == [128 + 64, 96, 3, 3]
    assert trainable_count(Wav2Lip(SMALL)) < trainable_count(full_size(Wav2Lip)) / 10
    assert channel_scaler(0.01)(64) == 4  # floor: never fewer than 4 channels
    for bad in (0, -1.0, "half", True):
        with pytest.raises(ConfigError, match="width_mult"):
            Wav2Lip(bad)


def rand(*shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).rand(*shape).astype("float32"))


def test_generator_clip_and_frame_inputs_agree():
    paddle.seed(0)
    net = Wav2Lip(SMALL)
    net.eval()
    batch, steps = 2, 3
    audio, faces = rand(batch, steps, 1, 80, 16, seed=1), rand(batch, 6, steps, 96, 96, seed=2)
    with paddle.no_grad():
        clip = net(audio, faces).numpy()
        assert clip.shape == (batch, 3, steps, 96, 96)
        assert 0.0 <= clip.min() and clip.max() <= 1.0
        frame = net(audio[1:2, 2], faces[1:2, :, 2]).numpy()
    np.testing.assert_allclose(clip[1, :, 2], frame[0], atol=1e-5)
    # the audio matters: another mel window changes the output
    with paddle.no_grad():
        other = net(rand(batch, steps, 1, 80, 16, seed=9), faces).numpy()
    assert np.abs(other - clip).max() > 1e-4


def test_full_size_generator_forward_on_one_frame(full_size):
    net = full_size(Wav2Lip)
    net.eval()
    with paddle.no_grad():
        out = net(rand(1, 1, 80, 16), rand(1, 6, 96, 96))
    assert out.shape == [1, 3, 96, 96]


def test_expert_embeddings_are_normalised_and_non_negative():
    net = SyncNetColor(SMALL)
    audio_emb, face_emb = net(rand(3, 1, 80, 16, seed=3), rand(3, 15, 48, 96, seed=4))
    assert audio_emb.shape == [3, 128] and face_emb.shape == [3, 128]
    for emb in (audio_emb.numpy(), face_emb.numpy()):
        assert emb.min() >= 0.0
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cosine = (audio_emb * face_emb).sum(axis=1).numpy()
    assert ((cosine >= 0) & (cosine <= 1 + 1e-6)).all()


def test_quality_discriminator_sees_only_the_lower_half():
    paddle.seed(1)
    net = Wav2LipDiscQual(SMALL)
    net.eval()
    clip = rand(2, 3, 4, 96, 96, seed=5)
    with paddle.no_grad():
        probs = net(clip).numpy()
        assert probs.shape == (8, 1) and ((probs > 0) & (probs < 1)).all()
        # time-major unroll: row t * B + b is frame t of clip b
        np.testing.assert_allclose(probs[3 * 2 + 1], net(clip[1:2, :, 3]).numpy()[0], atol=1e-6)
        upper_changed = clip.numpy().copy()
        upper_changed[:, :, :, :48] = 0.0
        np.testing.assert_allclose(net(paddle.to_tensor(upper_changed)).numpy(), probs, atol=1e-6)
        lower_changed = clip.numpy().copy()
        lower_changed[:, :, :, 48:] = 0.0
        assert np.abs(net(paddle.to_tensor(lower_changed)).numpy() - probs).max() > 1e-6


def test_init_weights_normal_and_kaiming():
    net = init_weights(Wav2Lip(SMALL), "normal", 0.02)
    state = net.state_dict()
    conv = state["face_decoder_blocks.2.0.conv_block.0.weight"].numpy()  # transposed conv
    assert abs(conv.std() - 0.02) < 0.002 and abs(conv.mean()) < 0.002
    assert not state["audio_encoder.3.conv_block.0.bias"].numpy().any()
    bn_scale = state["audio_encoder.3.conv_block.1.weight"].numpy()
    assert abs(bn_scale.mean() - 1.0) < 0.02 and bn_scale.std() > 0
    assert (state["audio_encoder.3.conv_block.1._variance"].numpy() == 1).all()  # stats untouched

    disc = init_weights(Wav2LipDiscQual(SMALL), "kaiming")
    weight = disc.state_dict()["face_encoder_blocks.2.0.conv_block.0.weight"].numpy()
    bound = np.sqrt(6.0 / np.prod(weight.shape[1:]))  # He-uniform, fan-in, ReLU gain
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
    with pytest.raises(ConfigError, match="init_type"):
        init_weights(disc, "xavier")


# ------------------------------------------------------------------------------ face sizes

# img_size -> state-dict entries of (Wav2Lip, SyncNetColor, Wav2LipDiscQual): one stage per factor
# adds 2 conv units on each side of the generator (24 entries), 2 to the expert (12) and 2 convs
# to the critic (4).
SIZES = {96: (302, 186, 28), 192: (326, 198, 32), 288: (326, 198, 32), 384: (350, 210, 36)}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_each_face_size_has_its_key_count_and_output_shapes(size):
    paddle.seed(0)
    gen, expert, critic = Wav2Lip(SMALL, size), SyncNetColor(SMALL, size), Wav2LipDiscQual(SMALL, size)
    assert (len(gen.state_dict()), len(expert.state_dict()), len(critic.state_dict())) == SIZES[size]
    assert gen.img_size == expert.img_size == critic.img_size == size
    for net in (gen, expert, critic):
        net.eval()
    with paddle.no_grad():
        clip = gen(rand(2, 2, 1, 80, 16, seed=1), rand(2, 6, 2, size, size, seed=2))
        audio_emb, face_emb = expert(rand(2, 1, 80, 16, seed=3), rand(2, 15, size // 2, size, seed=4))
        probs = critic(rand(2, 3, 2, size, size, seed=5))
    assert clip.shape == [2, 3, 2, size, size]
    assert audio_emb.shape == face_emb.shape == [2, 128]
    assert probs.shape == [4, 1]


def test_the_96_network_is_the_default_and_larger_sizes_keep_its_blocks(full_size):
    """img_size=96 is the published network; at 192 the published blocks are all still there
    (same shapes), behind one extra encoder block, and followed by one extra decoder block."""
    assert list(Wav2Lip(SMALL, 96).state_dict()) == list(Wav2Lip(SMALL).state_dict())
    small96 = {k: v.shape for k, v in Wav2Lip(SMALL).state_dict().items()}
    small192 = {k: v.shape for k, v in Wav2Lip(SMALL, 192).state_dict().items()}

    def shifted(key):  # encoder block i >= 1 of the 96 network is block i + 1 at 192
        parts = key.split(".")
        if parts[0] == "face_encoder_blocks" and int(parts[1]) >= 1:
            parts[1] = str(int(parts[1]) + 1)
        return ".".join(parts)
    for key, shape in small96.items():
        if key.startswith("output_block.0.conv_block.0.weight"):
            continue  # its input is the extra decoder block's output, not the 96 decoder's
        assert small192[shifted(key)] == shape, key
    # the extra stages: 16 -> 16 channels (x width) at stride 2 and a 2x transposed conv
    assert small192["face_encoder_blocks.1.0.conv_block.0.weight"] == [4, 4, 3, 3]
    assert small192["face_decoder_blocks.7.0.conv_block.0.weight"] == [16 + 4, 8, 3, 3]
    assert Wav2Lip(SMALL, 288).state_dict()["face_encoder_blocks.1.0.conv_block.0.weight"].shape == [4, 4, 5, 5]


def test_the_skip_structure_is_symmetric_at_every_size():
    """Each decoder block's output is concatenated with the encoder skip of its own resolution."""
    for size in (192, 288, 576):
        net = Wav2Lip(SMALL, size)
        net.eval()
        shapes = []
        hooks = [block.register_forward_post_hook(lambda layer, inputs, out: shapes.append(out.shape[-1]))
                 for block in list(net.face_encoder_blocks) + list(net.face_decoder_blocks)]
        with paddle.no_grad():
            net(rand(1, 1, 80, 16), rand(1, 6, size, size))
        for hook in hooks:
            hook.remove()
        blocks = len(net.face_encoder_blocks)
        assert len(net.face_decoder_blocks) == blocks
        encoder, decoder = shapes[:blocks], shapes[blocks:]
        assert encoder[0] == decoder[-1] == size
        assert decoder == encoder[::-1]


def test_a_face_of_another_size_or_a_bad_size_fails_clearly():
    with pytest.raises(ValueError, match="192x192 inputs got 96x96.*img_size"):
        Wav2Lip(SMALL, 192)(rand(1, 1, 80, 16), rand(1, 6, 96, 96))
    with pytest.raises(ValueError, match="96x192 inputs got 48x96"):
        SyncNetColor(SMALL, 192)(rand(1, 1, 80, 16), rand(1, 15, 48, 96))
    with pytest.raises(ValueError, match="Wav2LipDiscQual built for 96x96"):
        Wav2LipDiscQual(SMALL)(rand(1, 3, 192, 192))
    for bad in (100, 480, 0, "192"):
        with pytest.raises(ConfigError, match="img_size"):
            build_generator({"name": "Wav2Lip", "width_mult": SMALL, "img_size": bad})
    assert build_discriminator({"name": "SyncNetColor", "width_mult": SMALL, "img_size": 288}).img_size == 288
