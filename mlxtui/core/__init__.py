"""The domain layer: no Textual import, ever (a test and import-linter check it)."""
