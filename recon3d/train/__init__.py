"""Training-side code: data loading and preparation (e.g. motion-capture retargeting).

Training code lives here; inference code (``recon3d.pipeline``, ``recon3d.body_pipeline``, the
CLI, ...) never imports this package, so it may use slower, data-specific dependencies.
"""
