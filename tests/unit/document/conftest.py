"""The generated documents (`generated`, `hostile`) are session fixtures of tests/conftest.py:
the integration and end-to-end tests read the same files, made once per run."""
