"""The offline evaluation a model names, run by ``--evaluate-only`` after its validation metrics.

The trainer knows no evaluation itself: a model class names one in its ``evaluator`` attribute
(``Wav2LipModel.evaluator = "LipSyncEvaluation"``), the package implementing it registers it in
``ppgan.models.builder.EVALUATORS`` (``ppgan.apps`` registers the lip-sync one), and this module
builds it and calls it with one ``EvaluationRun``. An evaluator is a class with

- ``key``: the name its record gets in ``eval_metrics.json`` (``"lipsync"``);
- ``__call__(run: EvaluationRun) -> dict``: score ``run.model``, write its reports under
  ``run.output_dir``, log what it found and return a JSON-ready record.

It runs on rank 0 only: offline evaluations (regenerating videos, say) are single-process work.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..models.base_model import BaseModel
from ..models.builder import EVALUATORS
from ..utils.errors import ConfigError


@dataclass(frozen=True)
class EvaluationRun:
    """What an offline evaluator gets.

    Attributes:
        model: the trained model (its nets hold the evaluated weights).
        cfg: the resolved config (datasets, ``output_dir``).
        config_dir: folder of the config file (relative paths resolve against it), or None.
        output_dir: the evaluation's folder (``<run>/eval/<checkpoint>/``).
        split: name of the split ``dataset.test`` reads (its filelist's stem).
        inference_spec: how the evaluated weights generate (``ppgan.inference.spec``).
        max_clips: score only the first N clips of the split (None: all).
    """

    model: BaseModel
    cfg: Dict[str, Any]
    config_dir: Optional[str]
    output_dir: str
    split: str
    inference_spec: Dict[str, Any]
    max_clips: Optional[int] = None


def build_evaluator(model: BaseModel) -> Optional[Any]:
    """The evaluator ``model.evaluator`` names, built; None when the model names none.

    Raises:
        ConfigError: the name is not registered (its package was not imported).
    """
    name = getattr(model, "evaluator", None)
    if not name:
        return None
    try:
        return EVALUATORS.get(name)()
    except ConfigError as exc:
        raise ConfigError(f"{type(model).__name__} is evaluated by {name!r}, which is not "
                          f"registered ({exc}); import the package that registers it "
                          f"(ppgan.apps registers the lip-sync evaluation)") from None


def run_evaluator(run: EvaluationRun) -> Optional[Tuple[str, Dict[str, Any]]]:
    """Run the evaluation ``run.model`` names; returns (its key, its record) or None."""
    evaluator = build_evaluator(run.model)
    if evaluator is None:
        return None
    return evaluator.key, evaluator(run)
