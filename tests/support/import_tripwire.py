"""A module that must never be imported by a worker: importing it writes a marker file.

Security tests name it in task messages (``tests.support.import_tripwire:Extractor``); the
registry must refuse the name without importing anything. The marker's path comes from
``CONVEYOR_TRIPWIRE`` in the importing process's environment.
"""

import os
from pathlib import Path

_marker = os.environ.get("CONVEYOR_TRIPWIRE")
if _marker:
    Path(_marker).write_text(f"imported by pid {os.getpid()}\n")


class Extractor:
    """What a message naming ``tests.support.import_tripwire:Extractor`` would get."""
