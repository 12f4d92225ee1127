"""Training, evaluating and documenting models before they are published as bundles."""
