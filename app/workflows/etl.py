"""ETLWorkflow: every table of an extractor into a warehouse, in four steps per table."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from app.contracts import TableRef
from app.errors import ConveyorError, TerminalError
from app.extractors.base import TabularExtractor
from app.settings import get_settings
from app.sync.outcome import outcome
from app.warehouses import Warehouse, warehouse_for_url
from app.workflows import etl_steps
from app.workflows.base import Workflow
from app.workflows.report import ProgressListener, RunReport, SilentProgress, TableReport

log = logging.getLogger(__name__)

ExtractorArg = type[TabularExtractor] | TabularExtractor
WarehouseArg = type[Warehouse] | Warehouse | None


class RunFailedError(TerminalError):
    """At least one table of a run failed; ``report`` says which and why."""

    def __init__(self, report: RunReport) -> None:
        failed = report.failed_tables
        detail = "; ".join(f"{t.table.name}: {t.error}" for t in failed)
        super().__init__(f"{len(failed)} of {len(report.tables)} tables failed: {detail}")
        self.report = report


def now_iso() -> str:
    """The current UTC time as ISO 8601, for reports and run history."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class ETLWorkflow(Workflow):
    """Extract every table of a source and load it into a warehouse.

    Args:
        extractor: an extractor class (built bare, from the settings) or instance.
        warehouse: a warehouse class or instance; None picks one from ``WAREHOUSE_URL``.

    Example:
        >>> ETLWorkflow(AirtableExtractor, SQLiteWarehouse).run(drop_tables=True)
    """

    workflow_name = "etl"

    def __init__(self, extractor: ExtractorArg, warehouse: WarehouseArg = None) -> None:
        self._extractor_arg = extractor
        self._warehouse_arg = warehouse
        self._extractor: TabularExtractor | None = None
        self._warehouse: Warehouse | None = None

    @property
    def extractor(self) -> TabularExtractor:
        if self._extractor is None:
            arg = self._extractor_arg
            self._extractor = arg() if isinstance(arg, type) else arg
        return self._extractor

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            arg = self._warehouse_arg
            if arg is None:
                self._warehouse = warehouse_for_url()
            else:
                self._warehouse = arg() if isinstance(arg, type) else arg
        return self._warehouse

    @property
    def extractor_class(self) -> type[TabularExtractor]:
        arg = self._extractor_arg
        return arg if isinstance(arg, type) else type(arg)

    @property
    def warehouse_class(self) -> type[Warehouse] | None:
        arg = self._warehouse_arg
        if arg is None:
            return None
        return arg if isinstance(arg, type) else type(arg)

    def run(
        self,
        drop_tables: bool = False,
        *,
        progress: ProgressListener | None = None,
        run_id: str | None = None,
        **options: Any,
    ) -> RunReport:
        """Sync every table; raise RunFailedError if any table failed (the others still land).

        Args:
            drop_tables: replace each table atomically instead of upserting into it.
            progress: told about each table's progress (the CLI draws it).
            run_id: the run's id; a new one by default.

        Returns:
            The run's report: per table the records fetched and loaded, rejects and errors.
        """
        listener = progress or SilentProgress()
        warehouse = self.warehouse
        warehouse.check()
        report = RunReport(
            run_id=run_id or uuid.uuid4().hex,
            workflow=self.name(),
            options={"drop_tables": drop_tables},
            started_at=now_iso(),
        )
        report.tables = [TableReport(table=t) for t in self.extractor.list_tables()]
        for table_report in report.tables:
            self._sync_table(table_report, report.run_id, drop_tables, listener)
        report.finished_at = now_iso()
        report.state = outcome(failed=bool(report.failed_tables), cancelled=False,
                               rejected=sum(len(t.rejected) for t in report.tables)).value
        if report.failed_tables:
            report.error = str(RunFailedError(report))
        warehouse.record_run(report.to_json())
        if report.failed_tables:
            raise RunFailedError(report)
        return report

    def _sync_table(
        self, report: TableReport, run_id: str, replace: bool, listener: ProgressListener
    ) -> None:
        report.state = "running"
        listener.table_started(report)
        try:
            self._load_table(report, run_id, replace, listener)
        except ConveyorError as exc:
            report.state, report.error = "failed", str(exc)
            log.error("table %s failed: %s", report.table.name, exc)
        else:
            report.state = "succeeded"
        listener.table_finished(report)

    def _load_table(
        self, report: TableReport, run_id: str, replace: bool, listener: ProgressListener
    ) -> None:
        settings = get_settings()
        table: TableRef = report.table
        schema = etl_steps.fetch_schema(self.extractor, table)
        batches = etl_steps.iter_batches(
            self.extractor, table, run_id,
            max_records=settings.batch_max_records, max_bytes=settings.batch_max_bytes,
        )
        first = next(batches)
        schema = etl_steps.detect_schema(schema, first.batch.records)
        target = etl_steps.create_table(self.warehouse, schema, run_id, replace=replace)
        report.sql_table = target.name
        try:
            fetched = first
            while True:
                report.fetched += len(fetched.batch.records)
                result = etl_steps.load_batch(self.warehouse, target, fetched.batch)
                report.batches += 1
                report.loaded += result.loaded
                report.rejected.extend(result.rejected)
                listener.table_progress(report)
                if fetched.last:
                    break
                fetched = next(batches)
            etl_steps.finish_table(self.warehouse, target)
        except BaseException:
            if replace:
                self.warehouse.abort_table(target)
            raise
