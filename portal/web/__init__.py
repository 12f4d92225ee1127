"""The web portal: the FastAPI app, its security middleware and shared page helpers."""
