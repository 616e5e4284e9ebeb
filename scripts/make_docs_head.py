"""Regenerate the pictures and quality numbers of docs/head_reconstruction.md from real photos.

Usage:  python scripts/make_docs_head.py [--out docs/images]
For each public-domain photo in tests/data it writes a preview strip (photo, geometry overlay,
textured front / 60° side / back views) and prints, as a Markdown table: landmark reprojection
error against MediaPipe's own points (px and % of face size), texture PSNR of a re-render against
the photo inside the face, and the share of the texture seen in the photo.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import cv2

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon3d import reconstruct  # noqa: E402
from recon3d.metrics import face_region_psnr, landmark_error  # noqa: E402
from recon3d.models.head import HeadModel  # noqa: E402

PHOTOS = ("grace_hopper.jpg", "obama.jpg", "obama2.jpg", "astronaut.png", "camera.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument(
        "--network",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the head network (default: the release default, as reconstruct())",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    layout = HeadModel.from_pretrained().texture_layout

    rows = []
    for name in PHOTOS:
        rec = reconstruct(ROOT / "tests" / "data" / name, target="head", use_network=args.network)
        strip = rec.preview(size=320)
        stem = pathlib.Path(name).stem
        cv2.imwrite(
            str(args.out / f"head_{stem}.jpg"), strip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88]
        )
        err, err_fraction = landmark_error(rec)
        seen = (rec.texture_confidence.ravel()[layout.used] > 0).mean()
        rows.append(
            (
                name,
                f"{rec.image.shape[1]}x{rec.image.shape[0]}",
                f"{err:.2f}",
                f"{100 * err_fraction:.2f}",
                f"{face_region_psnr(rec):.1f}",
                f"{100 * seen:.0f}",
            )
        )
        if stem == "grace_hopper":
            tex = cv2.resize(rec.texture, (512, 512), interpolation=cv2.INTER_AREA)
            cv2.imwrite(
                str(args.out / "head_texture_grace_hopper.jpg"),
                tex[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 88],
            )

    print(
        "| photo | size | landmark error (px) | (% of face) | face PSNR (dB) | texture seen (%) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
