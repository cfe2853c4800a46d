"""Scale-out storage backends: objects on S3-compatible storage (``s3``), metadata in PostgreSQL."""
