"""``python -m recon3d``: the command line."""

import sys

from recon3d.cli import main

sys.exit(main())
