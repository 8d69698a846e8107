"""Evaluation of generated talking-face videos: LSE-D / LSE-C, PSNR / SSIM, expert accuracy.

``evaluate_videos(videos_dir, reference_dir)`` scores every video in a folder and writes a report
(``ppgan.metrics.report``) in which three rows always stand side by side:

* **ground truth**: the reference clips with their own audio (the ceiling to aim at);
* **generated**: the generated videos with the audio they carry;
* **shuffled audio**: the generated frames against another video's audio (the floor: what
  a mouth unrelated to the sound scores).

Generated videos and references pair up by relative path without extension
(``gen/spk/clip.mp4`` <-> ``ref/spk/clip.mp4`` or the preprocessed clip folder
``ref/spk/clip/{0..n}.jpg + audio.wav``). PSNR / SSIM compare paired frames, which is meaningful
for reconstructions (a video re-generated from its own audio).

``evaluate_generator_on_split`` is the generator evaluation behind ``tools/main.py
--evaluate-only`` and the demo: it regenerates the test clips of a corpus with a generator
through ``Wav2LipPredictor`` (from their own audio for PSNR / SSIM, and from another clip's audio
for lip-sync) and evaluates both sets; on a synthetic corpus the dubbed set is also compared with
the oracle (``ppgan.apps.oracle_evaluation``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..metrics.image import PairedFrameMetrics
from ..metrics.lse import VSHIFT, aggregate_lse, clip_features, lse_from_features, sync_pair_accuracy
from ..inference.spec import trained_mel_frame_offset  # noqa: F401  (also used by tools)
from ..metrics.report import ORACLE_COLUMNS, ORACLE_TITLE, markdown_table, write_report
from ..models.lse_scorers import build_sync_scorer
from ..utils.errors import DataError, MediaError
from .clips import (CORPUS_FPS, VIDEO_EXTENSIONS, clip_audio, crop_face, find_clips, is_clip_folder,
                    iter_clip_frames, numbered_frames)
from .oracle_evaluation import evaluate_oracle, write_pairs

if TYPE_CHECKING:
    import paddle

    from ..metrics.lse import LSEResult
    from ..metrics.sync_scorer import SyncScorer
    from .clips import FaceBox
    from .wav2lip_predictor import Wav2LipPredictor

ROW_NAMES = ("ground truth", "generated", "shuffled audio (floor)")


def load_faces(path: str, scorer: SyncScorer, box: Optional[FaceBox] = None) -> Tuple[np.ndarray, np.ndarray, float]:
    """All face crops of a clip at the scorer's input size.

    Returns:
        (faces (T, S, S, 3) uint8, wav (N,) float32, fps).
    """
    frames, fps = iter_clip_frames(path, fps=scorer.required_fps)
    faces = [scorer.prepare_frame(crop_face(frame, box)) for frame in frames]
    if not faces:
        raise MediaError(f"no video frames in {path}")
    return np.stack(faces), clip_audio(path), fps


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------

class _ScoredClip:
    """One clip's window embeddings (kept for the shuffled-audio pairing)."""

    def __init__(self, key: str, path: str, scorer: SyncScorer, box: Optional[FaceBox], vshift: int) -> None:
        self.key, self.path = key, path
        faces, self.wav, self.fps = load_faces(path, scorer, box)
        self.num_frames = len(faces)
        self.video, self.audio = clip_features(scorer, faces, self.wav, self.fps, name=path)
        self.lse = lse_from_features(self.video, self.audio, scorer.distance, vshift)
        self.accuracy: Optional[Dict[str, Any]] = None
        threshold = getattr(scorer, "pair_threshold", None)
        if threshold is not None:
            try:
                self.accuracy = sync_pair_accuracy(self.video, self.audio, threshold=threshold)
            except DataError:  # a clip too short for off-sync pairs has no accuracy
                self.accuracy = None

    def against_audio(self, wav: np.ndarray, scorer: SyncScorer, vshift: int) -> Optional[LSEResult]:
        """LSE of this clip's frames against some other audio (the floor)."""
        count = min(len(self.video), scorer.num_windows(self.num_frames, len(wav), self.fps))
        if count < 1:
            return None
        audio = scorer.audio_features(wav, self.fps, count)
        return lse_from_features(self.video[:count], audio, scorer.distance, vshift)


def _row(name: str, clips_or_results: Sequence[Union[_ScoredClip, LSEResult]],
         accuracies: Sequence[Optional[Mapping[str, Any]]] = (), extra: Optional[Mapping[str, Any]] = None,
         note: Optional[str] = None) -> Dict[str, Any]:
    """One report row: the aggregated LSE of the clips (or results), expert accuracy, extras."""
    results = [c.lse if isinstance(c, _ScoredClip) else c for c in clips_or_results]
    agg = aggregate_lse(results)
    row: Dict[str, Any] = {"name": name, "num_videos": len(results), "lse_d": None, "lse_c": None,
           "av_offset": None, "offsets": [], "mdist": [], "psnr": None, "ssim": None,
           "sync_accuracy": None}
    if agg:
        row.update(lse_d=agg["lse_d"], lse_c=agg["lse_c"], offsets=agg["offsets"],
                   mdist=agg["mdist"], av_offset=int(np.median(agg["av_offsets"])))
    scored = [a["accuracy"] for a in accuracies if a]
    if scored:
        row["sync_accuracy"] = float(np.mean(scored))
    row.update(extra or {})
    if note:
        row["note"] = note
    return row


def _psnr_ssim(generated_path: str, reference_path: str, box: Optional[FaceBox]) -> Optional[Dict[str, Any]]:
    """PSNR / SSIM of a generated clip's face crops against its reference's."""
    gen_frames, _ = iter_clip_frames(generated_path)
    ref_frames, _ = iter_clip_frames(reference_path)
    metrics = PairedFrameMetrics(name=generated_path)
    for gen, ref in zip(gen_frames, ref_frames):
        metrics.update(crop_face(gen, box), crop_face(ref, box))
    return metrics.result()


def evaluate_videos(videos_dir: str, reference_dir: Optional[str] = None, scorer: Optional[SyncScorer] = None,
                    scorer_cfg: Optional[Mapping[str, Any]] = None, out_dir: Optional[str] = None,
                    box: Optional[FaceBox] = None, vshift: int = VSHIFT, image_metrics: bool = True,
                    title: str = "Evaluation", progress: bool = True, stem: str = "evaluation",
                    reference_cache: Optional[Dict[str, Any]] = None,
                    oracle: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Score a folder of generated videos and write the report.

    Args:
        videos_dir: folder of generated videos (searched recursively).
        reference_dir: optional folder of reference videos or preprocessed clip folders; gives
            the ground-truth row and PSNR / SSIM for name-matched videos.
        scorer: a ``SyncScorer``; or ``scorer_cfg`` ``{name: expert|syncnet_v2, weights: ...}``.
        out_dir: where the report goes (default: ``videos_dir``).
        box: (top, bottom, left, right) face region in every frame; None = the whole frame
            is the face (as the LRS2 benchmark scores face-centred crops).
        image_metrics: compute PSNR / SSIM against name-matched references (turn off for videos
            driven by other audio, where they are no reconstruction).
        stem: file name stem of the report (``<stem>.json``, ``.md``, ``_offsets.png``).
        reference_cache: a dict kept across calls with the same scorer and box, so references
            scored once are not embedded again.
        oracle: oracle rows of these videos (``evaluate_oracle``) to add to the report.
    Returns:
        dict: ``rows`` (ground truth, generated, shuffled audio), ``per_video``, ``paths``,
        ``markdown`` (with the oracle table when given), ``oracle``.
    Raises:
        DataError: no videos, no reference matching any video, or a clip too short.
    """
    from tqdm import tqdm

    scorer = scorer or build_sync_scorer(scorer_cfg or {"name": "expert"})
    generated = find_clips(videos_dir)
    if not generated:
        raise DataError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {videos_dir}")
    references = {}
    if reference_dir:
        available = find_clips(reference_dir, allow_folders=True)
        references = {key: available[key] for key in generated if key in available}
        if not references:
            raise DataError(f"no reference under {reference_dir} matches a generated video's "
                            f"name (e.g. {next(iter(generated))}): name each generated video "
                            f"like its source clip")

    keys = sorted(generated)
    gen_clips, gt_clips, per_video, qualities = [], [], [], []
    for key in tqdm(keys, desc="scoring videos", unit="video", disable=not progress):
        clip = _ScoredClip(key, generated[key], scorer, box, vshift)
        gen_clips.append(clip)
        entry = {"key": key, "video": generated[key], "generated": clip.lse.to_dict(),
                 "generated_sync_accuracy": clip.accuracy}
        if key in references:
            cache = reference_cache if reference_cache is not None else {}
            if references[key] not in cache:
                cache[references[key]] = _ScoredClip(key, references[key], scorer, box, vshift)
            ref = cache[references[key]]
            gt_clips.append(ref)
            entry.update(reference=references[key], ground_truth=ref.lse.to_dict(),
                         ground_truth_sync_accuracy=ref.accuracy)
            quality = _psnr_ssim(generated[key], references[key], box) if image_metrics else None
            if quality:
                qualities.append(quality)
                entry.update(quality)
        per_video.append(entry)

    # The floor: every generated video against the next one's audio (a derangement); a single
    # video is scored against its own audio rotated by half its length instead.
    floor_results = []
    for index, clip in enumerate(gen_clips):
        if len(gen_clips) > 1:
            other = gen_clips[(index + 1) % len(gen_clips)].wav
        else:
            other = np.roll(clip.wav, len(clip.wav) // 2)
        result = clip.against_audio(other, scorer, vshift)
        if result is not None:
            floor_results.append(result)
            per_video[index]["shuffled_audio"] = result.to_dict()

    quality = {}
    if qualities:
        quality = {"psnr": float(np.mean([m["psnr"] for m in qualities])),
                   "ssim": float(np.mean([m["ssim"] for m in qualities]))}
    rows = [
        _row(ROW_NAMES[0], gt_clips, [c.accuracy for c in gt_clips],
             note=None if gt_clips else "no --reference given: pass the source clips to get "
                                        "the ground-truth row"),
        _row(ROW_NAMES[1], gen_clips, [c.accuracy for c in gen_clips], extra=quality),
        _row(ROW_NAMES[2], floor_results,
             note="generated frames scored against another video's audio"),
    ]
    meta = {"title": title, "scorer": scorer.name, "videos": os.path.abspath(videos_dir),
            "reference": os.path.abspath(reference_dir) if reference_dir else None,
            "vshift": vshift, "face_box": list(box) if box else "whole frame",
            "offset_sign": "positive = audio delayed relative to video"}
    paths = write_report(out_dir or videos_dir, rows, meta, per_video, stem=stem, oracle=oracle)
    markdown = markdown_table(rows, title=title)
    if oracle:
        markdown += "\n" + markdown_table(oracle["rows"], title=ORACLE_TITLE, columns=ORACLE_COLUMNS)
    return {"rows": rows, "per_video": per_video, "paths": paths, "markdown": markdown,
            "oracle": oracle}


def lse_gap_summary(rows: Sequence[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """Where the generated LSE-D lies between ground truth and the shuffled-audio floor.

    Returns:
        dict(gt, generated, floor, closer_to_ground_truth) or None when a row has no LSE-D.
    """
    gt, gen, floor = (row.get("lse_d") for row in rows[:3])
    if gt is None or gen is None or floor is None:
        return None
    return {"ground_truth": gt, "generated": gen, "floor": floor,
            "closer_to_ground_truth": abs(gen - gt) < abs(gen - floor)}


# ---------------------------------------------------------------------------------------------
# a generator on a corpus split (tools/main.py --evaluate-only, the demo)
# ---------------------------------------------------------------------------------------------

def write_source_video(clip_dir: str, path: str) -> str:
    """Write a preprocessed clip folder (frames + audio.wav) as an mp4 the predictor can read."""
    from ..utils.video import VideoWriter, read_image

    # crf 10: nearly lossless, so the generated video is compared with what it was fed
    with VideoWriter(path, CORPUS_FPS, audio=clip_audio(clip_dir), crf=10) as writer:
        for frame_path in numbered_frames(clip_dir):
            writer.write(read_image(frame_path))
    return path


def dubbing_pairs(keys: Sequence[str]) -> List[Tuple[str, str]]:
    """(face clip, audio clip) pairs where every clip's face is driven by the next clip's audio."""
    if len(keys) < 2:
        raise DataError("lip-sync evaluation needs at least 2 test clips (each face is driven by "
                        "another clip's audio)")
    return [(key, keys[(index + 1) % len(keys)]) for index, key in enumerate(keys)]


def generate_split_videos(predictor: Wav2LipPredictor, dataroot: str, keys: Sequence[str], out_dir: str,
                          progress: bool = True,
                          kinds: Sequence[str] = ("reconstructed", "dubbed")) -> Dict[str, Any]:
    """Regenerate clips with a predictor: reconstructions and dubbed versions.

    Writes ``out_dir/sources/<key>.mp4`` (the clip as fed to the predictor),
    ``out_dir/reconstructed/<key>.mp4`` (driven by its own audio) and ``out_dir/dubbed/<key>.mp4``
    (the face of ``key`` driven by the next clip's audio; ``dubbed/pairs.json`` names that clip).
    ``kinds`` selects which of the two sets to write.

    Returns:
        dict(sources, reconstructed, dubbed) folders and ``pairs`` (face key, audio key).
    """
    from tqdm import tqdm


    folders = {name: os.path.join(out_dir, name) for name in ("sources", "reconstructed", "dubbed")}
    pairs = dubbing_pairs(keys)
    for face_key, audio_key in tqdm(pairs, desc="generating test videos", unit="clip",
                                    disable=not progress):
        source = os.path.join(folders["sources"], face_key + ".mp4")
        os.makedirs(os.path.dirname(source), exist_ok=True)
        write_source_video(os.path.join(dataroot, face_key), source)
        for name, audio_key_used in (("reconstructed", face_key), ("dubbed", audio_key)):
            if name not in kinds:
                continue
            target = os.path.join(folders[name], face_key + ".mp4")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            predictor.run(source, os.path.join(dataroot, audio_key_used, "audio.wav"), target)
    if "dubbed" in kinds:
        write_pairs(folders["dubbed"], pairs)
    return dict(folders, pairs=pairs)


def oracle_summary(oracle: Mapping[str, Any]) -> Dict[str, Any]:
    """The oracle rows flattened for JSON summaries and log lines: ``lower_psnr``, ``lower_ssim``,
    ``opening_corr`` of the generated videos, and the same with ``floor_`` / ``ceiling_``."""
    flat: Dict[str, Any] = {}
    for key, prefix in (("generated", ""), ("floor", "floor_"), ("ceiling", "ceiling_")):
        for name in ("lower_psnr", "lower_ssim", "opening_corr"):
            flat[prefix + name] = oracle["summary"][key][name]
    flat["videos"] = oracle["summary"]["generated"]["num_videos"]
    return flat


def evaluate_generator_on_split(generator: Any, dataroot: str, keys: Iterable[str], out_dir: str,
                                scorer: Optional[SyncScorer] = None, max_clips: Optional[int] = None,
                                progress: bool = True, predictor_options: Optional[Mapping[str, Any]] = None,
                                oracle: Optional[bool] = None) -> Dict[str, Any]:
    """Evaluate a generator on corpus clips (the test split of a config).

    Every clip is regenerated through ``Wav2LipPredictor`` (the whole S x S frame is the face)
    from the next clip's audio (dubbing: the lip-sync rows GT / generated / shuffled audio) and,
    with a scorer, from its own audio (reconstruction: PSNR / SSIM and LSE). On a synthetic
    corpus the dubbed videos are also scored against the oracle (``evaluate_oracle``).

    Args:
        generator: a ``Wav2Lip`` network, or any callable the predictor accepts.
        dataroot: the preprocessed corpus; ``keys``: clip folders (``<speaker>/<clip>``) in it.
        out_dir: receives the videos and the reports ``lipsync.*`` and ``reconstruction.*``
            (without a scorer only the dubbed videos and the report ``oracle.*``).
        scorer: the LSE embedding model (``SyncScorer``); None scores the oracle only.
        max_clips: evaluate only the first N clips.
        predictor_options: extra ``Wav2LipPredictor`` keyword arguments.
        oracle: True / False to force the oracle rows on / off; None = when the corpus has
            oracle plans (a synthetic corpus).
    Returns:
        dict: ``lipsync`` and ``reconstruction`` (``evaluate_videos`` results, None without a
        scorer), ``oracle`` (``evaluate_oracle`` result or None), ``summary`` (the numbers that
        matter, for printing and JSON).
    """
    from ..corpus_tools.oracle import is_synthetic_corpus
    from .wav2lip_predictor import Wav2LipPredictor

    keys = list(keys)[:max_clips] if max_clips else list(keys)
    missing = [k for k in keys if not is_clip_folder(os.path.join(dataroot, k))]
    if missing:
        raise DataError(f"clip folder {os.path.join(dataroot, missing[0])} is missing or has no "
                        f"0.jpg / audio.wav: check the filelist against the corpus")
    if oracle is None:
        oracle = is_synthetic_corpus(dataroot, keys)
    if scorer is None and not oracle:
        raise DataError(f"nothing to evaluate: no sync scorer, and {dataroot} is no synthetic "
                        f"corpus with oracle plans")
    options: Dict[str, Any] = dict(box=(0, -1, 0, -1), pads=(0, 0, 0, 0), progress=False)
    options.update(predictor_options or {})
    predictor = Wav2LipPredictor(generator=generator, **options)
    kinds = ("reconstructed", "dubbed") if scorer is not None else ("dubbed",)
    videos = generate_split_videos(predictor, dataroot, keys, out_dir, progress=progress, kinds=kinds)
    oracle_result = evaluate_oracle(videos["dubbed"], dataroot, videos["pairs"],
                                    progress=progress) if oracle else None
    summary = {"clips": len(keys), "lipsync": None, "psnr": None, "ssim": None,
               "oracle": oracle_summary(oracle_result) if oracle_result else None}
    if scorer is None:
        paths = write_report(out_dir, [], {"title": "Dubbed test clips against the oracle",
                                           "videos": os.path.abspath(videos["dubbed"]),
                                           "reference": os.path.abspath(dataroot)},
                             stem="oracle", oracle=oracle_result)
        summary["reports"] = {"oracle": paths}
        return {"lipsync": None, "reconstruction": None, "oracle": oracle_result, "summary": summary}
    references: Dict[str, Any] = {}  # the ground-truth clips are embedded once for both reports
    lipsync = evaluate_videos(videos["dubbed"], dataroot, scorer=scorer, out_dir=out_dir,
                              image_metrics=False, stem="lipsync", progress=progress,
                              title="Lip sync: test faces driven by another clip's audio",
                              reference_cache=references, oracle=oracle_result)
    reconstruction = evaluate_videos(videos["reconstructed"], dataroot, scorer=scorer,
                                     out_dir=out_dir, stem="reconstruction", progress=progress,
                                     title="Reconstruction: test clips from their own audio",
                                     reference_cache=references)
    summary.update(lipsync=lse_gap_summary(lipsync["rows"]),
                   psnr=reconstruction["rows"][1]["psnr"], ssim=reconstruction["rows"][1]["ssim"],
                   reports={"lipsync": lipsync["paths"], "reconstruction": reconstruction["paths"]})
    return {"lipsync": lipsync, "reconstruction": reconstruction, "oracle": oracle_result,
            "summary": summary}


def evaluate_generator_from_config(cfg: Mapping[str, Any], generator: paddle.nn.Layer, expert: paddle.nn.Layer,
                                   config_dir: Optional[str] = None, out_dir: Optional[str] = None,
                                   max_clips: Optional[int] = None, progress: bool = True,
                                   mel_frame_offset: Optional[int] = None) -> Dict[str, Any]:
    """``evaluate_generator_on_split`` on a training config's ``dataset.test`` split.

    What ``tools/main.py --evaluate-only`` runs for a generator model: the LSE embedding model
    is the model's own frozen expert.

    Args:
        cfg: the resolved config (``dataset.test.dataroot`` / ``filelist``, ``output_dir``).
        generator: the ``Wav2Lip`` network; expert: the ``SyncNetColor`` expert.
        out_dir: default ``<output_dir>/evaluation``.
        mel_frame_offset: the alignment to generate at; default: the one ``cfg`` trains with
            (``ppgan.inference.spec.trained_mel_frame_offset``).
    Returns:
        as ``evaluate_generator_on_split``.
    """
    from ..datasets.corpus import read_filelist
    from ..metrics.lse import ExpertScorer
    from ..utils.config_paths import resolve_config_path

    test = cfg["dataset"]["test"]
    dataroot = resolve_config_path(test["dataroot"], "dataroot", config_dir)
    keys = read_filelist(resolve_config_path(test["filelist"], "filelist", config_dir, anchor=dataroot), dataroot)
    out_dir = out_dir or os.path.join(cfg.get("output_dir") or "output", "evaluation")
    # Generate with the audio alignment the generator was trained with, so a config that keeps
    # the reference's one-frame-early training windows is not scored one frame out of step.
    offset = trained_mel_frame_offset(cfg) if mel_frame_offset is None else int(mel_frame_offset)
    return evaluate_generator_on_split(generator, dataroot, keys, out_dir, ExpertScorer(expert),
                                       max_clips=max_clips, progress=progress,
                                       predictor_options={"mel_frame_offset": offset})
