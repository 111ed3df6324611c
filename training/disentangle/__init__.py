"""METHODS §7 (disentangling latent groups of factors), first pieces: a procedural
dSprites-like image group with known factors (``sprites``) and the MIG metric (``mig``)."""
