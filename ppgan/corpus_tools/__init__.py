"""Offline corpus tools: they write corpora, training only reads them (``ppgan.datasets``).

* ``preprocess`` / ``preprocess_video``: videos -> face crops, audio, mel and frame caches, split lists;
* ``synthetic`` (writer), ``synthetic_voice`` (unit track, speakers, audio), ``synthetic_faces``
  (drawing, clip plans, raw scenes): the synthetic talking-face corpus;
* ``oracle``: each synthetic clip's stored plan and the exact ground truth of a dubbing.

Nothing here is imported by training; import the module you need.
"""
