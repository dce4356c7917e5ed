"""ETLWorkflow: every table of an extractor into a warehouse — the in-process driver of the
sync model (``app.sync``); the Celery tasks in ``workers/`` are the other driver."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from app import gc_thresholds
from app.errors import ConfigurationError, ConveyorError, CursorExpiredError, TerminalError
from app.extractors.base import Page, TabularExtractor
from app.registry import register_workflow
from app.settings import get_settings
from app.sync import rules, steps
from app.sync.components import ExtractorArg, WarehouseArg, extractor_config, warehouse_config
from app.sync.plan import ComponentConfig, RunOptions, RunPlan, TableSync
from app.sync.readahead import read_ahead
from app.sync.services import RunServices, default_services
from app.sync.states import RunState, TableState
from app.warehouses import Warehouse, warehouse_for_url
from app.workflows.base import Workflow
from app.workflows.report import ProgressListener, RunReport, SilentProgress, TableReport

log = logging.getLogger(__name__)

#: Times an in-process listing starts again after Airtable forgot its cursor.
MAX_LISTING_RESTARTS = 3


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

    def plan(self, *, run_id: str | None = None, trigger: str = "manual", overlap: str = "skip",
             carried: bool = True, **options: Any) -> RunPlan:
        """This workflow as a run plan: validated options and the extractor's and warehouse's
        configuration (never their secrets).

        Args:
            carried: the plan goes to workers, so every argument must be describable;
                in-process (False) an instance that cannot travel is fine.

        Raises:
            ConfigurationError: an unknown option, or (``carried``) an argument no worker
                could rebuild (an explicit token, an unregistered class).
        """
        run_options = RunOptions.parse(**options)
        settings = get_settings()
        return RunPlan(
            run_id=run_id or uuid.uuid4().hex, workflow=self.name(),
            extractor=_config(extractor_config, self._extractor_arg, carried),
            warehouse=_config(warehouse_config, self._warehouse_arg, carried),
            options=run_options, batch_max_records=settings.batch_max_records,
            batch_max_bytes=settings.batch_max_bytes, trigger=trigger, overlap=overlap,
            partitions=settings.conveyor_partitions,
        )

    def run(
        self,
        drop_tables: bool = False,
        *,
        progress: ProgressListener | None = None,
        run_id: str | None = None,
        services: RunServices | None = None,
        trigger: str = "manual",
        **options: Any,
    ) -> RunReport:
        """Sync every table; raise RunFailedError if any table failed (the others still land).

        Args:
            drop_tables: replace each table atomically instead of upserting into it.
            **options: ``tables`` (names or ids); ``incremental`` (True, or the tables to
                sync incrementally): read only what changed since the table's last
                successful sync; ``hard_deletes``: delete the rows of records deleted at
                the source instead of setting ``__deleted_at``; ``deletes_every`` and
                ``computed_every``: the cadences of an incremental run's full listings.
            progress: told about each table's progress (the CLI draws it).
            run_id: the run's id; a new one by default.
            services: where the run is recorded and how requests are paced (by default the
                shared run store and rate limiter when one is configured).

        Returns:
            The run's report: per table the records fetched and loaded, rejects and errors.
        """
        plan = self.plan(run_id=run_id, trigger=trigger, carried=False,
                         drop_tables=drop_tables, **options)
        services = services or default_services()
        if services.rate_limiter is not None:
            self.extractor.use_rate_limiter(services.rate_limiter)
        with gc_thresholds.raised():
            return InProcessRun(plan, self.extractor, self.warehouse, services,
                                progress or SilentProgress()).run()


register_workflow(ETLWorkflow)


class InProcessRun:
    """One run of the sync model in this process, table after table."""

    def __init__(self, plan: RunPlan, extractor: TabularExtractor, warehouse: Warehouse,
                 services: RunServices, listener: ProgressListener) -> None:
        self.plan, self.extractor, self.warehouse = plan, extractor, warehouse
        self.recorder, self.listener = services.recorder, listener

    def run(self) -> RunReport:
        plan = self.plan
        self.recorder.run_started(plan, plan.workflow)
        report = RunReport(run_id=plan.run_id, workflow=plan.workflow,
                           options=plan.options.to_user(), started_at=now_iso())
        try:
            self.warehouse.check()
            tables = steps.resolve_tables(self.extractor, plan.options.tables)
        except ConveyorError as exc:
            self.recorder.run_finished(plan.run_id, RunState.FAILED, str(exc))
            raise
        self.recorder.tables_planned(plan.run_id, tables)
        report.tables = [TableReport(table=t) for t in tables]
        for table_report in report.tables:
            self._sync_table(table_report)
        report.finished_at = now_iso()
        report.state = rules.outcome((t.state for t in report.tables), report.rejected_count,
                                     cancelled=False)
        if report.failed_tables:
            report.error = str(RunFailedError(report))
        self.recorder.run_finished(plan.run_id, RunState(report.state), report.error)
        self.warehouse.record_run(report.to_json())
        if report.failed_tables:
            raise RunFailedError(report)
        return report

    def _sync_table(self, report: TableReport) -> None:
        run_id, table_id = self.plan.run_id, report.table.table_id
        report.state = TableState.RUNNING
        self.recorder.table_state(run_id, table_id, TableState.RUNNING)
        self.listener.table_started(report)
        sync = TableSync(self.plan, report.table)
        try:
            sync = self._load_table(sync, report)
        except ConveyorError as exc:
            steps.abort(self.warehouse, sync)
            report.state, report.error = TableState.FAILED, str(exc)
            log.error("table %s failed: %s", report.table.name, exc)
        except BaseException:
            steps.abort(self.warehouse, sync)
            raise
        else:
            report.state = TableState.SUCCEEDED
        record_changes = getattr(self.recorder, "table_changes", None)  # optional: newer recorders
        if record_changes is not None:
            record_changes(run_id, table_id, {
                "mode": report.mode, "change_source": report.change_source,
                "resync": report.resync, "deleted": report.deleted, "requests": report.requests,
                "cursor": report.cursor})
        self.recorder.table_state(run_id, table_id, TableState(report.state), error=report.error,
                                  sql_table=report.sql_table)
        self.listener.table_finished(report)

    def _load_table(self, sync: TableSync, report: TableReport) -> TableSync:
        sync = sync.with_(schema=steps.schema_of(self.extractor, sync.table))
        sync = steps.plan_listing(self.extractor, self.warehouse, sync)
        report.mode = str(self.plan.options.mode_for(sync.table))
        report.change_source = sync.change.source if sync.change else None
        report.resync = sync.change.resync if sync.change else None
        sync = steps.partitioned(sync, steps.partition_plan(self.extractor, self.warehouse, sync))
        page = steps.first_page(self.extractor, sync)
        report.requests += page.requests + (sync.change.requests if sync.change else 0)
        sync = steps.started(sync, page)
        sync = steps.create_target(self.warehouse, sync, steps.sample_of(page.records,
                                                                        self.plan.batch_max_bytes))
        report.sql_table = sync.target.name if sync.target else None
        self.recorder.table_state(sync.run_id, sync.table.table_id, TableState.RUNNING,
                                  sql_table=report.sql_table)
        self._load_listing(sync, page, report)
        # The partitions page one after another here: this process loads every batch itself,
        # so paging them at once would only queue pages in memory; workers page them in parallel.
        for window in sync.partitions[1:]:
            self._load_listing(sync.with_(listing=steps.window_listing(window)), None, report)
        report.deleted = steps.finish(self.warehouse, sync)
        report.cursor = sync.change.cursor if sync.change else None
        return sync

    def _load_listing(self, sync: TableSync, page: Page | None, report: TableReport) -> None:
        """One listing (the table's, or one partition's) to its last batch, from ``page`` (its
        first, already fetched) when given; started again in a new epoch when the source
        forgets its cursor."""
        before = (report.fetched, report.loaded, report.batches, list(report.rejected))
        last: steps.FetchedBatch | None = None
        if page is not None:
            last = self._load(sync, steps.iter_batches([page], sync, sync.listing.next_batch), report)
            if not last.last:
                sync = sync.with_(listing=rules.advanced(sync.listing, last.batch.batch_no,
                                                         last.cursor))
        restarts = 0

        def on_page(requests: int) -> None:
            report.requests += requests

        while last is None or not last.last:
            try:
                last = self._load(sync, steps.listing_batches(self.extractor, sync, on_page),
                                  report)
            except CursorExpiredError:
                restarts += 1
                if restarts > MAX_LISTING_RESTARTS:
                    raise
                sync = sync.with_(listing=rules.restart(sync.listing))
                if sync.listing.partition is None:
                    report.reset_counts()
                    self.recorder.counts_reset(sync.run_id, sync.table.table_id)
                else:  # only this partition starts again: the others' counts stand
                    report.fetched, report.loaded, report.batches = before[:3]
                    report.rejected = list(before[3])

    def _load(self, sync: TableSync, batches: Iterable[steps.FetchedBatch],
              report: TableReport) -> steps.FetchedBatch:
        fetched: steps.FetchedBatch | None = None
        # The next page is fetched (and batched) while this batch loads; closed at once when
        # a load fails, so the reading thread does not outlive the listing.
        with closing(read_ahead(iter(batches))) as ahead:
            for fetched in ahead:
                batch = fetched.batch
                self.recorder.batch_fetched(sync.run_id, sync.table.table_id, batch.batch_no,
                                            len(batch.records))
                report.fetched += len(batch.records)
                result = steps.load(self.warehouse, sync, batch)
                self.recorder.batch_loaded(sync.run_id, sync.table.table_id, result)
                report.add(result)
                self.listener.table_progress(report)
        if fetched is None:
            raise ConveyorError(f"the listing of {sync.table.name!r} gave no batch")
        return fetched


def _config(describe: Any, arg: Any, carried: bool) -> ComponentConfig:
    try:
        return describe(arg)  # type: ignore[no-any-return]
    except ConfigurationError:
        if carried:
            raise
        return ComponentConfig(kind=None, params={"in_process": type(arg).__name__})

