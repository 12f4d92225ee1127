"""Magic links: e-mailed, expiring (optionally one-time) links that stand in for a login."""
