#!/bin/sh
# The benchmark-only virtual environment for benchmarks/paddlegan_side_by_side.py:
# PaddleGAN 2.1.0 from PyPI installed WITHOUT its pinned dependencies (they pin Paddle 2.x era
# numpy / librosa / opencv that no longer build here); it reuses this project's venv packages
# (Paddle 3, numpy, librosa, OpenCV) through a .pth file, plus imageio-ffmpeg for an ffmpeg binary.
#     sh benchmarks/make_bench_venv.sh [/work/bench-venv]
set -eu
# (the final import check runs from / so a ppgan folder in the working directory cannot shadow it)
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:-/work/bench-venv}
MAIN_SITE=$("$HERE/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
python3 -m venv "$TARGET"
SITE=$("$TARGET/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# After the venv's own site-packages, so its ppgan (PaddleGAN) wins over nothing of ours: our
# editable install is a finder .pth in MAIN_SITE, and .pth files there are not processed.
echo "$MAIN_SITE" > "$SITE/zz_main_venv.pth"
WHEELS=$(mktemp -d)
"$TARGET/bin/pip" download -q ppgan==2.1.0 --no-deps -d "$WHEELS"
"$TARGET/bin/pip" install -q --no-deps "$WHEELS"/ppgan-2.1.0-py3-none-any.whl imageio-ffmpeg
rm -rf "$WHEELS"
(cd / && "$TARGET/bin/python" -c "import ppgan, os; assert 'site-packages' in ppgan.__file__, ppgan.__file__; print('PaddleGAN', ppgan.__version__, 'in', os.path.dirname(ppgan.__file__))")
