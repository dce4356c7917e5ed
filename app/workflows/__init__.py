"""Workflows: the Workflow contract and the ETLWorkflow."""

from app.workflows.base import StepInfo, Workflow, step
from app.workflows.etl import ETLWorkflow, RunFailedError
from app.workflows.report import RunReport, TableReport

__all__ = ["ETLWorkflow", "RunFailedError", "RunReport", "StepInfo", "TableReport", "Workflow", "step"]
