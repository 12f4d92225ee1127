"""Bundles: publishing signed model bundles to the update repository, and exporting them."""
