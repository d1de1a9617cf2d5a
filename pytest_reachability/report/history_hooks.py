"""pytest hooks for run history (``--results-db``)."""
