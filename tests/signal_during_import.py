"""A module that signals its own process while it is being imported (tests/test_interruptions.py):
the import must complete and the interrupt come right after it."""

import os
import signal

os.kill(os.getpid(), signal.SIGTERM)
total = 0
for i in range(100_000):  # Python code of the import: the handler runs here
    total += i
DONE = True
