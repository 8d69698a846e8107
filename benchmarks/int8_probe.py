"""Feasibility of int8 post-training quantization for the Wav2Lip generator on CPU: speed and error.

    python -m benchmarks.int8_probe [--width 1.0] [--calibration-batches 20] [--batch 16] \
        [--threads 1] [--bn-calibrate]

A random generator (``paddle.seed(0)``; ``--bn-calibrate`` first sets its BatchNorm running
statistics from train-mode forwards on the synthetic inputs, so activations are O(1) like a trained
net's instead of saturating) is exported and run as the engine runs it (fp32 PIR program,
``StaticRunner``), then rebuilt, quantized with Paddle's ``PostTrainingQuantization`` and run with
oneDNN int8. Prints one JSON object: seconds per batch (median of 5 interleaved runs after a warm-up)
for fp32 PIR, the fp32 legacy program and int8; the int8 speed-up over fp32; the PSNR of int8 and
of the legacy program against the fp32 PIR output; the calibration time.

Why it is built this way (Paddle 3.3.1):
- ``PostTrainingQuantization`` only reads legacy (non-PIR) programs, and ``paddle.jit.save`` writes
  PIR ones. So the script runs itself a second time (``--legacy-worker FOLDER``) with
  ``FLAGS_enable_pir_api=0`` set before paddle is imported; that child builds the same network under
  ``paddle.static.program_guard``, loads the parent's weights into the scope and saves a legacy
  inference model, checked against the PIR output (``psnr_legacy_vs_pir_db``).
- ``F.sigmoid`` refuses legacy ``Variable``s, so the final sigmoid is a legacy op appended by hand.
- The stride-1 transposed conv is the equivalent ``Conv2D`` (as in ``ppgan.inference.rewrite``), so
  it quantizes like the other convs. The stride-2 transposed convs stay fp32: quantizing
  ``conv2d_transpose`` breaks the oneDNN int8 run (an int8 tensor read as float32).
- Measured (width 1.0, batch 16, 1 thread, AVX-512 VNNI): int8 1.9-2.2x faster than fp32, but only
  20-23 dB PSNR on random weights (a random net amplifies small perturbations), ~23 dB with
  ``--bn-calibrate``; width 0.25 gains little (1.1-1.3x) and keeps ~31 dB.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

FACE = 96
QUANTIZED_OPS = ["conv2d", "depthwise_conv2d"]  # not conv2d_transpose: see the module doc
EVAL_SEED, CALIBRATION_SEED, BN_SEED = 1, 2, 3    # disjoint frames for each use
REPEATS = 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_inputs(count, seed):
    """(mels (N,1,80,16) uniform in [-4, 4], faces (N,6,96,96) smooth in [0, 1]), deterministic.

    Faces are 12x12 noise upsampled bilinearly (image-like local correlation, not white noise
    that no real frame resembles), with the target's lower half zeroed as the predictor masks it.
    """
    import cv2

    rng = np.random.RandomState(seed)
    coarse = rng.uniform(0, 1, (12, 12, count * 6)).astype(np.float32)
    smooth = np.stack([cv2.resize(coarse[:, :, i:i + 6], (FACE, FACE), interpolation=cv2.INTER_LINEAR)
                       for i in range(0, count * 6, 6)])               # (N, 96, 96, 6)
    faces = np.ascontiguousarray(smooth.transpose(0, 3, 1, 2))
    faces[:, :3, FACE // 2:] = 0.0
    mels = rng.uniform(-4, 4, (count, 1, 80, 16)).astype(np.float32)
    return mels, faces


def psnr(reference, other):
    """PSNR in dB of ``other`` against ``reference`` (values in [0, 1])."""
    from ppgan.inference.precision import psnr as engine_psnr

    return round(engine_psnr(reference, other), 2)


def random_generator(width, bn_calibrate, batch):
    """The seed-0 random Wav2Lip in eval mode; with ``bn_calibrate`` its BN running statistics are
    those of the synthetic inputs (momentum 0: the last train-mode batch sets them exactly)."""
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip

    paddle.seed(0)
    net = Wav2Lip(width_mult=width)
    if bn_calibrate:
        for layer in net.sublayers():
            if isinstance(layer, paddle.nn.BatchNorm2D):
                layer._momentum = 0.0
        mels, faces = synthetic_inputs(4 * batch, BN_SEED)
        net.train()
        with paddle.no_grad():
            net(paddle.to_tensor(mels), paddle.to_tensor(faces))
    net.eval()
    return net


def legacy_predictor(prefix, threads, int8):
    """A oneDNN ``paddle.inference`` predictor of a legacy ``prefix.pdmodel``: (mels, faces) -> out."""
    import paddle.inference as inference

    config = inference.Config(prefix + ".pdmodel", prefix + ".pdiparams")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.enable_onednn()
    if int8:
        config.enable_onednn_int8()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    output = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(mels, faces):
        for name, array in (("mel", mels), ("faces", faces)):
            handle = predictor.get_input_handle(name)
            handle.reshape(array.shape)
            handle.copy_from_cpu(np.ascontiguousarray(array))
        predictor.run()
        return output.copy_to_cpu()
    return run


def build_legacy_program(width, state):
    """Wav2Lip as a legacy static program, ``state`` loaded into the global scope.

    Returns (test program, [mel, faces] inputs, output variable, the executor that initialised it).
    """
    import paddle
    import paddle.nn as nn
    from paddle.base.layer_helper import LayerHelper
    from ppgan.inference.rewrite import rewritable
    from ppgan.models.generators.wav2lip import Wav2Lip

    class LegacySigmoid(nn.Layer):
        """The sigmoid op appended to the legacy program directly (F.sigmoid wants PIR Values)."""

        def forward(self, x):
            helper = LayerHelper("sigmoid")
            out = helper.create_variable_for_type_inference(x.dtype)
            helper.append_op(type="sigmoid", inputs={"X": x}, outputs={"Out": out})
            return out

    program, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(program, startup):
        net = Wav2Lip(width_mult=width)
        # as_direct_conv's geometry; the flipped weights come with ``state`` (saved after the rewrite)
        for parent in [net, *net.sublayers()]:
            for name, child in list(parent.named_children()):
                if rewritable(child):
                    kernel = [int(k) for k in child._kernel_size]
                    padding = [k - 1 - int(p) for k, p in zip(kernel, child._updated_padding)]
                    parent._sub_layers[name] = nn.Conv2D(child.weight.shape[0], child.weight.shape[1],
                                                         kernel, 1, padding, bias_attr=child.bias is not None)
        blocks = net.output_block._sub_layers
        blocks[list(blocks)[-1]] = LegacySigmoid()
        net.eval()
        inputs = [paddle.static.data("mel", [None, 1, 80, 16], "float32"),
                  paddle.static.data("faces", [None, 6, FACE, FACE], "float32")]
        output = net(*inputs)
    executor = paddle.static.Executor(paddle.CPUPlace())
    executor.run(startup)
    params = net.state_dict()
    if set(params) != set(state):
        raise RuntimeError(f"legacy and dygraph parameters differ: {sorted(set(params) ^ set(state))[:5]}")
    scope = paddle.static.global_scope()
    for key, param in params.items():
        scope.find_var(param.name).get_tensor().set(state[key], paddle.CPUPlace())
    return program.clone(for_test=True), inputs, output, executor


def int8_convolutions(prefix, executor):
    """"I of N": how many of the saved quantized program's N convolutions (transposed ones
    included) take a dequantized, i.e. int8, filter."""
    import paddle

    program, _, _ = paddle.static.load_inference_model(prefix, executor)
    ops = program.global_block().ops
    dequantized = {name for op in ops if op.type == "dequantize_linear" for name in op.output_arg_names}
    int8 = sum(1 for op in ops if op.type in QUANTIZED_OPS and op.input("Filter")[0] in dequantized)
    return f"{int8} of {sum(1 for op in ops if op.type in QUANTIZED_OPS + ['conv2d_transpose'])}"


def legacy_worker(args):
    """The child (``FLAGS_enable_pir_api=0``): legacy fp32 model, its check, PTQ; ``legacy.json``."""
    import paddle
    from paddle.static.quantization import PostTrainingQuantization

    folder = args.legacy_worker
    state = dict(np.load(os.path.join(folder, "state.npz")))
    data = np.load(os.path.join(folder, "eval.npz"))
    paddle.enable_static()
    program, inputs, output, executor = build_legacy_program(args.width, state)
    legacy_out, = executor.run(program, feed={"mel": data["mels"], "faces": data["faces"]}, fetch_list=[output])
    paddle.static.save_inference_model(os.path.join(folder, "fp32", "model"), inputs, [output], executor,
                                       program=program)
    mels, faces = synthetic_inputs(args.calibration_batches * args.batch, CALIBRATION_SEED)

    def batches():
        for start in range(0, len(mels), args.batch):
            yield {"mel": mels[start:start + args.batch], "faces": faces[start:start + args.batch]}

    began = time.perf_counter()
    ptq = PostTrainingQuantization(
        executor=executor, model_dir=os.path.join(folder, "fp32"), model_filename="model.pdmodel",
        params_filename="model.pdiparams", data_loader=batches, batch_nums=args.calibration_batches,
        algo="avg", quantizable_op_type=QUANTIZED_OPS, onnx_format=True,
        weight_quantize_type="channel_wise_abs_max")
    ptq.quantize()
    ptq.save_quantized_model(os.path.join(folder, "int8"), model_filename="model.pdmodel",
                             params_filename="model.pdiparams")
    result = {"calibration_s": round(time.perf_counter() - began, 1),
              "psnr_legacy_vs_pir_db": psnr(data["reference"], legacy_out),
              "int8_convolutions": int8_convolutions(os.path.join(folder, "int8", "model"), executor)}
    with open(os.path.join(folder, "legacy.json"), "w") as handle:
        json.dump(result, handle)


def median_seconds(runners, mels, faces):
    """{name: (output, median seconds per call)}: a warm-up each, then REPEATS rounds of all in turn
    (interleaved, so a change in the machine's load hits every runner alike)."""
    outputs = {name: run(mels, faces) for name, run in runners.items()}  # oneDNN builds primitives
    times = {name: [] for name in runners}
    for _ in range(REPEATS):
        for name, run in runners.items():
            began = time.perf_counter()
            run(mels, faces)
            times[name].append(time.perf_counter() - began)
    return {name: (outputs[name], round(statistics.median(times[name]), 4)) for name in runners}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0, help="Wav2Lip width_mult")
    parser.add_argument("--calibration-batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bn-calibrate", action="store_true", help="BN statistics from the inputs")
    parser.add_argument("--legacy-worker", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.legacy_worker:
        return legacy_worker(args)

    import paddle
    from ppgan.inference.engine import StaticRunner, export_program
    from ppgan.inference.precision import cpu_isa
    from ppgan.inference.rewrite import direct_convolutions

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)  # the dygraph BN forwards too: a shared machine
    net = random_generator(args.width, args.bn_calibrate, args.batch)
    mels, faces = synthetic_inputs(args.batch, EVAL_SEED)
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "pir", "model")
        export_program(net, prefix, {"mel": (1, 80, 16), "faces": (6, FACE, FACE)})
        pir = StaticRunner(prefix, threads=args.threads, precision="fp32")
        with direct_convolutions(net):  # the weights of the program export_program saved
            np.savez(os.path.join(folder, "state.npz"), **{k: v.numpy() for k, v in net.state_dict().items()})
        np.savez(os.path.join(folder, "eval.npz"), mels=mels, faces=faces, reference=pir(mels, faces))
        env = dict(os.environ, FLAGS_enable_pir_api="0", OMP_NUM_THREADS=str(args.threads))
        child = subprocess.run([sys.executable, "-m", "benchmarks.int8_probe", "--legacy-worker", folder,
                                *sys.argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
        if child.returncode:
            raise RuntimeError(f"legacy worker failed:\n{child.stderr[-3000:]}")
        with open(os.path.join(folder, "legacy.json")) as handle:
            legacy = json.load(handle)
        # All three timed here, interleaved; a PIR process runs legacy programs in Paddle Inference.
        results = median_seconds({
            "fp32_pir": pir,
            "fp32_legacy": legacy_predictor(os.path.join(folder, "fp32", "model"), args.threads, False),
            "int8": legacy_predictor(os.path.join(folder, "int8", "model"), args.threads, True)}, mels, faces)
    reference = results["fp32_pir"][0]
    report = {"date": datetime.date.today().isoformat(), "isa": list(cpu_isa()),
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
              "threads": args.threads, "batch": args.batch, "width": args.width,
              "bn_calibrate": args.bn_calibrate, "calibration_frames": args.calibration_batches * args.batch,
              "seconds_per_batch": {name: seconds for name, (_, seconds) in results.items()},
              "speedup_int8_vs_fp32_pir": round(results["fp32_pir"][1] / results["int8"][1], 2),
              "speedup_int8_vs_fp32_legacy": round(results["fp32_legacy"][1] / results["int8"][1], 2),
              "psnr_int8_vs_fp32_db": psnr(reference, results["int8"][0]),
              "psnr_legacy_vs_pir_db": legacy["psnr_legacy_vs_pir_db"],
              "calibration_s": legacy["calibration_s"], "int8_convolutions": legacy["int8_convolutions"]}
    print(json.dumps(report, indent=1))
    return None


if __name__ == "__main__":
    main()
