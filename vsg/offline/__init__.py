"""Offline mode: latent actions from action-free episodes (LAPO), latent behaviour cloning and
few-label decoding; `python -m vsg.offline` runs its stages (see pipeline.py). Importing this package
loads no TensorFlow; data.py neither."""
