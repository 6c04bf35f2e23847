"""Export the offline face data set as a folder of PNG files, laid out as users' image
data sets are: one sub-folder per class.

    python scripts/export_faces.py DIR      ->  DIR/faces/000.png .. 099.png
                                                DIR/non_faces/000.png .. 099.png

The images are scikit-image's ``lfw_subset()`` (200 grey-scale 25x25 crops, 100 faces
then 100 non-faces), written as 8-bit PNGs. ``FACES_DIR=DIR python models/face_cnn.py``
then trains on the folder instead of the built-in array.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("faces", "non_faces")  # lfw_subset(): first 100 faces, then 100 non-faces
PER_CLASS = 100


def export_faces(out_dir: str | Path) -> list[Path]:
    """Write the 200 images under ``out_dir`` (created if missing); return the files written."""
    from skimage.data import lfw_subset

    images = lfw_subset()
    pixels = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    written = []
    for index, image in enumerate(pixels):
        class_dir = Path(out_dir) / CLASSES[index // PER_CLASS]
        class_dir.mkdir(parents=True, exist_ok=True)
        path = class_dir / f"{index % PER_CLASS:03d}.png"
        Image.fromarray(image).save(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write faces/ and non_faces/ into")
    args = parser.parse_args(argv)
    try:
        written = export_faces(args.out_dir)
    except OSError as exc:
        print(
            f"export_faces: cannot write to {args.out_dir}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    print(f"wrote {len(written)} PNG files to {args.out_dir}/{{{','.join(CLASSES)}}}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
