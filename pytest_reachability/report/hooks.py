"""pytest hooks for the outputs: pytest-html columns and extras, theories in the terminal,
the incident report and the JSON results, and redaction of everything written."""
