"""atheris harnesses for the code that reads what callers send (see README.md)."""
