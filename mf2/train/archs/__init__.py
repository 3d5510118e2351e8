"""Network architectures: the hourglass (step 1) and the two-pathway cGAN (step 2)."""
