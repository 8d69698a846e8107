"""Inference engine: static-program export and the Paddle Inference (oneDNN) runner with the
auto / static / dynamic policy, used by the generator path and the LSE embeddings."""

from .engine import (  # noqa: F401
    ENGINES, PRECISIONS, CompileOnFirstUse, DynamicRunner, StaticRunner, build_runner, check_engine,
    export_program)
