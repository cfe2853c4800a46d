"""Scale-out backends: objects in S3, metadata (refs, access, sessions, pulls) in PostgreSQL."""
