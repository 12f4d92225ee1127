"""Engines: the activations (seats) of a license and the leases that prove them."""
