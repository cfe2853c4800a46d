"""Flask adapter for exactvc (sync protocol, REST API, tiles). Built in later issues."""
