"""The beat schedule: edit this list (or point CONVEYOR_SCHEDULES at your own module).

Times are UTC. Each entry is enqueued through the producer, so a scheduled run has a run id
and a status like any other, and a tick that arrives while the previous run of the same
workflow is still going is skipped (or queued, with ``overlap="queue"``) and recorded.
"""

from celery.schedules import crontab

from app.extractors import AirtableExtractor
from app.workflows import ETLWorkflow
from broker.scheduling import ScheduledRun

SCHEDULES = [
    ScheduledRun(
        name="airtable-nightly",
        workflow=ETLWorkflow(AirtableExtractor),
        every=crontab(hour=2, minute=0),
        options={"drop_tables": True},
    ),
]
