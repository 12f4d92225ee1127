"""The portal's signing keys and TUF update repository on disk."""
