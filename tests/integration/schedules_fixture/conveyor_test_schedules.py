"""Beat entries for the schedule integration tests (CONVEYOR_SCHEDULES points here)."""

from datetime import timedelta

from app.extractors import AirtableExtractor
from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.scheduling import ScheduledRun

WORKFLOW = ETLWorkflow(AirtableExtractor, SQLiteWarehouse)
EVERY = timedelta(seconds=2)

FAST = [ScheduledRun("fast-clients", WORKFLOW, EVERY, options={"tables": ["Clients"]})]
SLOW = [ScheduledRun("slow-orders", WORKFLOW, EVERY, options={"tables": ["Orders"], "drop_tables": True})]
ONE_TICKER = [ScheduledRun("dup-check", WORKFLOW, EVERY, options={"tables": ["Empty"]})]
CRASHY = [ScheduledRun("crash-orders", WORKFLOW, EVERY, options={"tables": ["Orders"]})]
# Frequent incremental ticks; the delete listing and computed refresh are never due in the test.
INCREMENTAL = [ScheduledRun("incremental-orders", WORKFLOW, timedelta(seconds=3),
                            options={"tables": ["Orders"], "incremental": True,
                                     "deletes_every": 1000, "computed_every": 1000})]
