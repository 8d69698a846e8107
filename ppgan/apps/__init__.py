"""Inference applications."""

from .wav2lip_predictor import Wav2LipPredictor, Wav2LipResult  # noqa: F401,E402
from .wav2lip_stream import Avatar, StreamFrame, Wav2LipStream  # noqa: F401,E402
from .evaluate import evaluate_generator_on_split, evaluate_videos  # noqa: F401,E402
from . import lipsync_evaluation  # noqa: F401,E402  (registers LipSyncEvaluation)
