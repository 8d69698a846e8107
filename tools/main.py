"""Train or evaluate a model from a YAML config, in one process or many.

    python tools/main.py -c configs/demo/syncnet.yaml                       # CPU or one GPU
    python tools/main.py -c configs/wav2lip.yaml -o model.syncnet_weights=my_expert.pdparams
    python tools/main.py --resume output/wav2lip          # its newest checkpoint, its stored config
    python tools/main.py --resume output/wav2lip -o total_iters=400000   # changed keys are logged
    python tools/main.py -c configs/wav2lip.yaml --load wav2lip_hq.pdparams --evaluate-only
    python tools/main.py --resume output/wav2lip/best.pdparams --evaluate-only  # -> output/wav2lip/eval/best/

The same command runs data-parallel under Paddle's launcher (batch_size in the config is per
process; only rank 0 writes checkpoints; each rank logs to <output_dir>/log.txt[.rankN]):

    # several GPUs of one machine
    python -m paddle.distributed.launch --devices 0,1,2,3 tools/main.py -c configs/wav2lip.yaml
    # several machines: run on every node, same master address
    python -m paddle.distributed.launch --master 10.0.0.1:8090 --nnodes 2 --devices 0,1,2,3 \
        tools/main.py -c configs/wav2lip.yaml
    # CPU processes (gloo; do not pass --devices on CPU): one thread each fills the cores best
    python -m paddle.distributed.launch --nproc_per_node 2 --log_dir output/launch \
        tools/main.py -c configs/demo/syncnet.yaml
"""

import argparse

from ppgan.utils.cli import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config-file", help="YAML config (optional with --resume, which "
                                                    "uses the config stored in the run)")
    parser.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. -o total_iters=100 model.syncnet_wt=0.01")
    parser.add_argument("--resume", help="checkpoint (or run folder: its newest checkpoint) to "
                                         "continue from, with the run's stored config")
    parser.add_argument("--load", help="weights to start from or to evaluate")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate on dataset.test into <run folder>/eval/<checkpoint>/ "
                             "(generator models: plus lip-sync reports)")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="--evaluate-only of a generator: regenerate and score only the first N "
                             "clips of the split (bounds its cost; -o validate.max_eval_steps=N "
                             "bounds the loss part)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config's seed)")
    parser.add_argument("--output-dir", help="run folder (overrides the config's output_dir)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--amp", action="store_true", help="float16 mixed precision (GPU only)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.max_clips is not None and (args.max_clips < 2 or not args.evaluate_only):
        from ppgan.utils.errors import ConfigError
        raise ConfigError("--max-clips needs --evaluate-only and at least 2 clips (each face is "
                          "dubbed with another clip's audio)")
    if args.evaluate_only:
        import ppgan.apps  # noqa: F401  (registers the offline evaluations models name)
    from ppgan.engine.run import run
    run(args.config_file, args.opt, resume=args.resume, load=args.load,
        evaluate_only=args.evaluate_only, seed=args.seed, output_dir=args.output_dir,
        device=args.device, amp=args.amp, max_clips=args.max_clips)
    return 0


if __name__ == "__main__":
    run_main(main)
