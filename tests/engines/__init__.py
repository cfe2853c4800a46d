"""Real storage engines started for the tests (PostgreSQL; SeaweedFS for S3)."""
