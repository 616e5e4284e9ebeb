"""The picture of docs/head_network.md's hidden-part evaluation: two cases of
``scripts/eval_head_occlusion.py`` (one the network wins, one optimisation wins). Per method, the
covered face with the hidden region's face-mesh points of the *uncovered* photo (yellow) and the
method's (red), and the method's error in % of the face size.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_head_occlusion.py [--out docs/images]
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: (photo, hidden region): biden's mouth (the networks win), obama2's left eye (optimisation
#: wins), from the 172-case run in docs/head_network.md.
CASES = (("biden.jpg", "mouth"), ("obama2.jpg", "left eye"))
TILE = 300


def main(argv=None) -> int:
    import cv2
    from eval_body_occlusion import compared_methods, cover, occluder_patch, picture_arguments
    from eval_head_occlusion import covered_box, face_size, matching_face, regions

    from recon3d.io.image import load_image
    from recon3d.pipeline import HeadReconstructionPipeline

    args = picture_arguments(__doc__.split("\n\n")[0], argv)
    methods = compared_methods(
        HeadReconstructionPipeline,
        ("(a) optimisation", "(b) network only", "(c) network + refine"),
    )
    plain = methods["(a) optimisation"][0]
    patch = occluder_patch(args.occluder)
    hidden = regions()
    rows = []
    for photo, case in CASES:
        image = load_image(args.photos / photo)
        face = plain.detector.detect(image)[0]
        points = face.points[:, :2]
        size = face_size(points)
        indices = hidden[case]
        box = covered_box(points[indices], image.shape, size)
        covered = cover(image, box, patch)
        found = matching_face(plain.detector, covered, face.box)
        if found is None:
            raise RuntimeError(f"{photo}: MediaPipe lost the face once its {case} was covered")
        # A square crop around the face, with a margin.
        centre = points.mean(0)
        half = 0.6 * size
        x0, y0 = np.maximum(np.round(centre - half).astype(int), 0)
        x1 = min(int(round(centre[0] + half)), image.shape[1])
        y1 = min(int(round(centre[1] + half)), image.shape[0])
        scale = TILE / max(x1 - x0, y1 - y0)
        tiles = []
        for label, (pipe, refine) in methods.items():
            rec = pipe(covered, face_index=found, refine=refine, complete_texture=False)
            predicted = rec.landmarks_2d("mediapipe478")[indices]
            error = np.linalg.norm(predicted - points[indices], axis=1).mean() * 100 / size
            tile = cv2.resize(
                np.ascontiguousarray(covered[y0:y1, x0:x1]),
                None,
                fx=scale,
                fy=scale,
                interpolation=cv2.INTER_AREA,
            )
            for colour, where in (((255, 230, 0), points[indices]), ((255, 30, 30), predicted)):
                for x, y in (where - (x0, y0)) * scale:
                    centre_px = (int(round(x)), int(round(y)))
                    cv2.circle(tile, centre_px, 3, (0, 0, 0), -1, cv2.LINE_AA)
                    cv2.circle(tile, centre_px, 2, colour, -1, cv2.LINE_AA)
            text = f"{label}: {error:.2f} %"
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 24), (0, 0, 0), -1)
            cv2.putText(tile, text, (5, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            tiles.append(tile)
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 2), (0, 0))) for t in tiles]
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)
    picture = np.vstack([np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "head_occlusion.jpg"
    cv2.imwrite(str(target), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
