"""Lightning callbacks: the latest-step checkpoint, the evaluation's label PNGs, W&B overlays."""
