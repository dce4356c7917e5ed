"""Conveyor's domain: workflows, extractors and warehouses, usable without Celery."""
