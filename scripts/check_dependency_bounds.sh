#!/usr/bin/env bash
# Install the LOWEST versions that pyproject.toml allows into a separate venv and run a subset of
# the tests there (issue 7: "pinned lower/upper bounds that are tested"). The upper end is the
# project's own .venv (the newest allowed versions when it was made; see docs/hardening.md).
#
#   nice scripts/check_dependency_bounds.sh              # venv in /tmp/venv-min, ~5-10 min
#   VENV_MIN=/tmp/x TESTS="tests/test_io_image.py" scripts/check_dependency_bounds.sh
#
# How: every direct requirement of the project and of its dev extra is constrained to the release
# series of its lower bound (`numpy>=1.24,<2` -> `numpy==1.24.*`, a constraints file made from
# pyproject.toml), then `uv pip install --resolution lowest-direct -c <that file> -e ".[dev]"`
# takes the lowest version in it (numpy 1.24.0, opencv 4.8.0.74, ...); their own
# dependencies resolve to the newest versions compatible with those. (lowest-direct alone is not
# enough: mediapipe's newest jax needs numpy >= 1.26 and scipy >= 1.12, so uv would quietly
# install those instead of the bounds.)
# Exception: torch stays at the local CPU wheel 2.13.0 (TORCH_WHEEL), because its lower bound 2.2
# has no CPU-only wheel on PyPI (the Linux wheels there pull several GB of CUDA packages) and
# download.pytorch.org cannot be reached here: torch 2.2-2.12 is NOT tested. pyopengl goes in
# afterwards at its lowest headless-capable version (3.1.7), as the Makefile does with the newest,
# because pyrender 0.1.45 pins PyOpenGL==3.1.0.
#
# Needs PyPI (or a mirror in UV_INDEX_URL). Not part of `make test` (too slow): `make test-min-deps`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV_MIN="${VENV_MIN:-/tmp/venv-min}"
PYTHON="${PYTHON:-python3}"
TORCH_WHEELS="${TORCH_WHEELS:-/opt/wheels}"
TORCH_WHEEL="${TORCH_WHEEL:-$(ls "$TORCH_WHEELS"/torch-2.13.0*.whl 2>/dev/null | head -n 1 || true)}"
TESTS="${TESTS:-tests/test_io_image.py tests/test_exchange.py tests/test_fit_weights_render.py \
tests/test_head_pipeline.py tests/test_body_model.py tests/test_hardening.py tests/test_video.py}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"

if [ -z "$TORCH_WHEEL" ]; then
    echo "!! no local torch 2.13.0 wheel in $TORCH_WHEELS (set TORCH_WHEEL=/path/to/torch.whl)"
    exit 1
fi

echo "== fresh venv $VENV_MIN ($($PYTHON --version 2>&1))"
rm -rf "$VENV_MIN"
"$PYTHON" -m venv "$VENV_MIN"
"$VENV_MIN/bin/python" -m pip install --quiet uv
UV="$VENV_MIN/bin/uv"

work="$(mktemp -d -t recon3d-bounds.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# torch: the local CPU wheel, for both the install and the resolution (override).
echo "torch @ file://$TORCH_WHEEL" >"$work/overrides.txt"
# Everything else: exactly the lower bound of pyproject.toml.
"$VENV_MIN/bin/python" - "$work/constraints.txt" <<'PY'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
lines = []
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    m = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", req)
    if m and m.group(1) != "torch":
        lines.append(f"{m.group(1)}=={m.group(2)}.*")  # 4.8 -> 4.8.*: 4.8.0.74 matches too
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    fh.write("\n".join(lines) + "\n")
print("constraints:", ", ".join(lines))
PY

echo "== lowest allowed direct dependencies (uv --resolution lowest-direct + constraints)"
"$UV" pip install --python "$VENV_MIN/bin/python" --resolution lowest-direct \
    --override "$work/overrides.txt" -c "$work/constraints.txt" -e ".[dev]"
# pyrender 0.1.45 pins PyOpenGL==3.1.0; headless EGL/OSMesa needs >= 3.1.7 (lowest that works).
"$UV" pip install --python "$VENV_MIN/bin/python" "pyopengl==3.1.7"

echo "== installed versions"
"$VENV_MIN/bin/python" - <<'PY'
from importlib.metadata import version

names = ["torch", "numpy", "scipy", "opencv-contrib-python", "mediapipe", "trimesh", "pyrender",
         "safetensors", "pillow", "tqdm", "pygltflib", "av", "pyopengl", "pytest", "hypothesis",
         "charset-normalizer", "protobuf", "jax", "matplotlib"]
for n in names:
    try:
        print(f"{n:24s} {version(n)}")
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"{n:24s} NOT INSTALLED ({exc})")
PY

echo "== tests: $TESTS"
# test_installed_versions_satisfy_the_pinned_bounds checks this venv against pyproject.toml too.
# shellcheck disable=SC2086
"$VENV_MIN/bin/python" -m pytest -q -p no:cacheprovider $TESTS
echo "== lowest allowed versions: tests passed"
