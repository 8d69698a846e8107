"""Evaluation metrics: lip-sync (LSE-D / LSE-C) and image quality."""

from .lse import (  # noqa: F401
    SYNC_SCORERS, ExpertScorer, LSEResult, score_clip, sync_pair_accuracy)
from .syncnet_v2 import SyncNetV2, SyncNetV2Scorer, mfcc  # noqa: F401  (registers syncnet_v2)
from .image import PairedFrameMetrics, video_psnr_ssim  # noqa: F401
from .report import markdown_table, write_report  # noqa: F401
