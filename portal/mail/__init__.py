"""E-mail from templates, over SMTP or into the outbox folder."""
