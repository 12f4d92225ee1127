"""The grooming model: normalised text, hashed features, lexicon characteristics, scoring."""
