"""Fakes of external services for the tests (GitHub REST, OpenAPI validation)."""
