"""Applications: organisations applying for access, and the administrators' vetting."""
