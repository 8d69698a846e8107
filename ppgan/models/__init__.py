"""Models (training logic) and the networks they use. Importing registers everything."""

from .builder import (DISCRIMINATORS, GENERATORS, MODELS, build_discriminator,  # noqa: F401
                      build_generator, build_model)
from . import discriminators, generators  # noqa: F401,E402  (register the networks)
from .syncnet_model import SyncNetModel  # noqa: F401,E402
from .wav2lip_model import Wav2LipModel  # noqa: F401,E402
from .wav2lip_hq_model import Wav2LipModelHq  # noqa: F401,E402
