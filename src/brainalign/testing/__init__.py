"""brainalign.testing: miniature dataset fixtures for tests and end-to-end runs."""
