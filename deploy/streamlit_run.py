"""`streamlit ARGS...`, ending as soon as the server has stopped.

Streamlit stops on SIGTERM within a fraction of a second; Python's own finalization
afterwards (tearing down torch and the other modules) takes about 2 s more on a
2-core machine. Once streamlit returns nothing is left to do: every cache entry is one
committed SQLite transaction (diskcache), written whole or not at all, so the process
ends at once with streamlit's exit status, its output flushed.
"""
import logging
import os
import sys

from streamlit.web.cli import main

try:
    main(prog_name="streamlit")
    status = 0
except SystemExit as end:  # click ends with sys.exit(status or message)
    status = end.code
    if status is not None and not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(status or 0)
