"""The outputs of a run, each led by the verdict (``verdict.py``): terminal (``terminal.py``), pytest-html
(``html.py``), the markdown incident report (``incident.py``), the results JSON (``json.py``) and the JUnit
suite properties (``junit.py``). ``hooks.py`` and ``history_hooks.py`` hand them to pytest."""
