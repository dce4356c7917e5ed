"""Conveyor's distribution layer: the Celery app, queues, routing, canvases, producer, schedules."""
