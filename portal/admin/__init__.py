"""Administrators: accounts with a password and TOTP, sessions, invitations, logins."""
