"""Single source of the package version (read by setup.py and recon3d)."""

__version__ = "0.1.0"
