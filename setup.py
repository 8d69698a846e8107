"""pip-installable package: ``pip install -e .``"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_requirements():
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="ppgan-wav2lip",
    version="0.1.0",
    description="PaddlePaddle framework to train, evaluate and run Wav2Lip lip-sync",
    packages=find_packages(include=["ppgan", "ppgan.*"]),
    python_requires=">=3.9",
    install_requires=read_requirements(),
    include_package_data=True,
)
