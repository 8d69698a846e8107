"""Models (training logic) and the networks they use. Importing registers everything."""

from .builder import (DISCRIMINATORS, GENERATORS, LOSSES, MODELS, build_discriminator,  # noqa: F401
                      build_generator, build_model, build_network)
