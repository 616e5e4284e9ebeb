"""Pictures for docs/texture_completion.md: side and back views of real photos, with the
baseline fill and with the completion network, side by side.

    python scripts/make_docs_texture.py            # writes docs/images/texture_<photo>.jpg
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data"
# (photo, target): six real photos, heads and bodies.
SHOTS = (
    ("obama3.jpg", "body"),
    ("biden.jpg", "body"),
    ("camera.png", "body"),
    ("grace_hopper.jpg", "head"),
    ("astronaut.png", "head"),
    ("obama.jpg", "head"),
)
VIEWS = ((0.0, "front"), (90.0, "side"), (180.0, "back"))


def baseline_texture(rec) -> np.ndarray:
    """The same reconstruction's texture with the baseline fill (projection only)."""
    from recon3d.models.body import BodyModel
    from recon3d.models.head import HeadModel
    from recon3d.texture.projection import project_texture

    if rec.target == "body":
        model = BodyModel.from_pretrained()
        mask = rec.person_mask
    else:
        model = HeadModel.from_pretrained()
        mask = None
    tex = project_texture(
        rec.image,
        rec.vertices.astype(np.float64),
        model.faces,
        rec.camera.K,
        model.texture_layout,
        person_mask=mask,
    )
    return tex.texture


def label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = image.copy()
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    return out


def main() -> int:
    import cv2

    from recon3d import reconstruct

    out_dir = ROOT / "docs" / "images"
    size = 320
    for name, target in SHOTS:
        rec = reconstruct(PHOTOS / name, target=target)
        base = dataclasses.replace(rec, texture=baseline_texture(rec))
        rows = []
        for title, r in (("baseline fill", base), ("completion GAN", rec)):
            tiles = [label(r.render(yaw=yaw, size=size), f"{title}, {view}") for yaw, view in VIEWS]
            rows.append(np.hstack(tiles))
        photo = cv2.resize(
            rec.image, (int(rec.image.shape[1] * 2 * size / rec.image.shape[0]), 2 * size)
        )
        sheet = np.hstack([photo, np.vstack(rows)])
        path = out_dir / f"texture_{pathlib.Path(name).stem}.jpg"
        cv2.imwrite(str(path), sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
