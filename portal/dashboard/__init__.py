"""The organisation dashboard: usage charts for administrators and, read-only
through an e-mailed link, for the organisation itself.
"""
