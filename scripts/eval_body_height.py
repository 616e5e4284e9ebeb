"""Where does the body network's standing height carry information? Error of the standing height
(cm) on held-out synthetic people for the network's estimate, the mean body and the fit from
scratch, by what MediaPipe sees of the legs; and the heights the network gives real photos.

The Procrustes-aligned errors of ``eval_body_net.py`` remove the scale, so they cannot see a
wrong height; this script measures it. The held-out people are ``eval_body_net.py``'s (seed 2,
the held-out clips), once framed whole and once as portraits (cut at the thighs or knees).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_body_height.py --n 80 --portraits 60 \
        --photos ../shared/data/photos/*.jpg ../shared/data/photos/*.png [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("eval_body_height")

#: Groups of held-out people by what MediaPipe sees of the legs (inside the image).
GROUPS = ("an ankle seen", "knees seen, no ankle", "no knee")


def legs_seen(person) -> str:
    """Which of :data:`GROUPS` a detected person falls in."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    seen = person.visible(0.5)

    def any_seen(*names: str) -> bool:
        return any(seen[POSE_LANDMARKS.index(n)] for n in names)

    if any_seen("left_ankle", "right_ankle"):
        return GROUPS[0]
    return GROUPS[1] if any_seen("left_knee", "right_knee") else GROUPS[2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=80, help="held-out people framed whole")
    parser.add_argument("--portraits", type=int, default=60, help="held-out portrait framings")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--net", type=pathlib.Path, default=ROOT / "weights/body_net.safetensors")
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_test.npy")
    parser.add_argument("--photos", type=pathlib.Path, nargs="*", default=[])
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    from eval_body_net import heldout_people, load_net

    from recon3d.camera import Camera
    from recon3d.fitting.body_fit import fit_body
    from recon3d.io.image import load_image
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import predict_fit

    torch.set_num_threads(1)
    model = BodyModel.from_pretrained()
    net = load_net(args.net)
    detector = MediaPipePoseDetector()
    mean_height = model.height(np.zeros(model.num_shape))

    rows = []
    for framing, n, cut_off in (("whole", args.n, 0.0), ("portrait", args.portraits, 1.0)):
        rng = np.random.default_rng([args.seed, 999])
        people = heldout_people(model, detector, rng, np.load(args.bank), n, cut_off)
        for done, (sample, person, _, _, _) in enumerate(people, 1):
            network = predict_fit(net, model, person, sample.K, height="network")
            scratch = fit_body(model, person, sample.K)
            rows.append(
                {
                    "framing": framing,
                    "legs": legs_seen(person),
                    "true": model.height(sample.shape),
                    "network": model.height(network.shape),
                    "scratch": model.height(scratch.shape),
                }
            )
            if done % 20 == 0:
                log.info("%s: %d/%d", framing, done, n)

    print(f"\nstanding height error (cm); the mean body is {mean_height:.2f} m")
    print(
        f"{'framing':<10}{'legs':<22}{'n':>4}{'network':>9}{'mean body':>11}{'from scratch':>14}"
        f"{'correlation':>13}"
    )
    summary = []
    for framing in ("whole", "portrait"):
        for group in GROUPS:
            own = [r for r in rows if r["framing"] == framing and r["legs"] == group]
            if not own:
                continue
            true = np.array([r["true"] for r in own])
            guess = np.array([r["network"] for r in own])
            scratch = np.array([r["scratch"] for r in own])
            corr = float(np.corrcoef(guess, true)[0, 1]) if len(own) > 2 else float("nan")
            row = {
                "framing": framing,
                "legs": group,
                "n": len(own),
                "network_cm": 100 * float(np.abs(guess - true).mean()),
                "mean_body_cm": 100 * float(np.abs(mean_height - true).mean()),
                "scratch_cm": 100 * float(np.abs(scratch - true).mean()),
                "correlation": corr,
            }
            summary.append(row)
            print(
                f"{framing:<10}{group:<22}{row['n']:>4}{row['network_cm']:>9.1f}"
                f"{row['mean_body_cm']:>11.1f}{row['scratch_cm']:>14.1f}{corr:>13.2f}"
            )

    photos = []
    if args.photos:
        print(f"\n{'photo':<20}{'legs':<22}{'network (m)':>12}{'estimate (m)':>14}")
    for photo in args.photos:
        pixels = load_image(photo)
        person = detector.detect(pixels)
        K = Camera.from_image_size(pixels.shape[1], pixels.shape[0]).K
        network = model.height(predict_fit(net, model, person, K, height="network").shape)
        estimate = model.height(predict_fit(net, model, person, K).shape)
        photos.append(
            {
                "photo": photo.name,
                "legs": legs_seen(person),
                "network": network,
                "estimate": estimate,
            }
        )
        print(f"{photo.name:<20}{legs_seen(person):<22}{network:>12.2f}{estimate:>14.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"synthetic": summary, "photos": photos, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
