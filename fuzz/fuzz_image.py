"""Coverage-guided fuzzing of the image front door (``recon3d.io.load_image`` on bytes).

Run (see docs/hardening.md)::

    .venv/bin/python fuzz/fuzz_image.py -max_total_time=150 fuzz/corpus_image

Any exception other than :class:`recon3d.errors.InvalidImageError` (and its subclass
ImageTooLargeError) is a finding: atheris stops and writes the input as ``crash-<sha1>``.
"""

from __future__ import annotations

import io
import logging
import sys
import warnings

import atheris

# Instrument only the parsing code under test; torch, mediapipe etc. (imported by the recon3d
# package) load uninstrumented, which would otherwise take minutes.
with atheris.instrument_imports(include=["recon3d.io", "PIL"]):
    from recon3d.errors import InvalidImageError
    from recon3d.io import load_image_with_metadata, read_focal_length_35mm

logging.disable(logging.CRITICAL)  # Pillow's warnings about damaged files are logged, not errors
warnings.simplefilter("ignore")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    try:
        loaded = load_image_with_metadata(data, max_pixels=4_000_000)
    except InvalidImageError:
        return
    pixels = loaded.pixels
    assert pixels.dtype.name == "uint8" and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.flags.c_contiguous
    focal = read_focal_length_35mm(data)
    assert focal is None or focal > 0


def _seed_corpus(folder: str) -> None:
    """Small valid files of every accepted format, so the fuzzer starts past the signatures."""
    import os

    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt, params in [
        ("JPEG", {"exif": exif}),
        ("PNG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("WEBP", {"lossless": True}),
        ("PPM", {}),
    ]:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **params)
        with open(os.path.join(folder, f"seed.{fmt.lower()}"), "wb") as fh:
            fh.write(buf.getvalue())


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus:
        _seed_corpus(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
