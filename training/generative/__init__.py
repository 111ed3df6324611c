"""Generative models (METHODS §6): the label-prior VAE, its baselines, their metrics and data.

- ``data``: images in [0, 1] with labels (scikit-learn's 8×8 digits; MNIST / EMNIST / Kuzushiji
  idx and npz files when present) and the step-indexed batches the trainer reads;
- ``models``: ``LabelPriorVAE`` (p(z|y) = N(m_y, I), encoder blind to y), ``ConditionalVAE``
  (y into encoder and decoder, N(0, I) prior) and ``M2VAE`` (semi-supervised, q(y|x));
- ``gaussian``: closed-form KLs and the importance-sampled log-likelihood bound;
- ``classifier``: the independent classifier the metrics use (trained on real images only);
- ``metrics``: requested-class accuracy, FID and KID on that classifier's features, test ELBO.
"""
