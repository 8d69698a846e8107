"""File names of an exported inference program (``<prefix>`` plus these suffixes) and the
description of its inputs."""

from typing import Mapping, Sequence

# ``{input name: per-sample shape}``, in the order the network's forward takes the inputs.
InputShapes = Mapping[str, Sequence[int]]

PROGRAM_SUFFIX = ".json"      # what paddle.jit.save writes in Paddle 3.x (PIR programs)
PARAMS_SUFFIX = ".pdiparams"
# JSON beside the program: its input shapes (Paddle Inference does not report them before a run)
# and whatever the exporter adds (the generator's inference spec and training config).
INFO_SUFFIX = ".info.json"
