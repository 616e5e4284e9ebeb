"""The picture of docs/body_network.md's hidden-limb evaluation: two cases of
``scripts/eval_body_occlusion.py`` (one the networks win, one optimisation wins), each method's
mesh over the covered photo, cropped around the covered box.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_occlusion.py [--out docs/images]
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: (photo, hidden region): the left elbows of the cameraman and of obama.jpg.
CASES = (("camera.png", "left elbow"), ("obama.jpg", "left elbow"))


def main(argv=None) -> int:
    import cv2
    from eval_body_occlusion import (
        cases_for,
        compared_methods,
        cover,
        occluder_patch,
        picture,
        picture_arguments,
        same_person,
    )

    args = picture_arguments(__doc__.split("\n\n")[0], argv)

    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.io.image import load_image
    from recon3d.metrics import COCO17_FROM_MEDIAPIPE

    methods = compared_methods(
        BodyReconstructionPipeline, ("optimisation", "network only", "network + refine")
    )
    plain = methods["optimisation"][0]
    patch = occluder_patch(args.occluder)
    rows = []
    for photo, wanted in CASES:
        image = load_image(args.photos / photo)
        person = plain.detect(image)
        coco = np.c_[person.points, person.visibility][list(COCO17_FROM_MEDIAPIPE)]
        case = next(c for c in cases_for(image, person, coco) if c[0] == wanted)
        _, joints, box = case
        covered = cover(image, box, patch)
        covered_person = same_person(plain, covered, person.box)
        results = {
            name: pipe(covered, refine=refine, person=covered_person, complete_texture=False)
            for name, (pipe, refine) in methods.items()
        }
        rows.append(np.asarray(picture(covered, box, coco, joints, results, context=0.8)))
    width = max(r.shape[1] for r in rows)
    rows = [
        cv2.resize(r, (width, round(r.shape[0] * width / r.shape[1])), interpolation=cv2.INTER_AREA)
        for r in rows
    ]
    out = np.concatenate(rows, axis=0)
    scale = 1400 / out.shape[1]
    out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    args.out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(args.out / "body_occlusion.jpg"), out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
