"""Moderator feedback received from engines: per reviewed conversation a random id,
the bundle, score, characteristics, verdict and the hashed feature vector."""
