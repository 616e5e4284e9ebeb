"""Re-rendering a reconstructed person in new poses ("Everybody Dance Now").

Driving poses (:mod:`recon3d.reenact.poses`) -> global pose normalisation
(:mod:`recon3d.reenact.normalize`) -> pose maps (:mod:`recon3d.reenact.posemap`) -> the
pose-conditioned renderer. Submodules are imported on use, so ``import recon3d.reenact`` stays
light.
"""
