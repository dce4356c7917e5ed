"""A task for worker tests whose message can be as large as a test needs."""

from broker.celery_app import celery_app


@celery_app.task(name="conveyor_test.measure")
def measure(payload: str) -> int:
    return len(payload)
