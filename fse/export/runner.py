"""Run export jobs as asyncio tasks of the server process that accepted them.

The task only awaits the database and hands file writes to a thread, so the event loop keeps
serving requests. A job deleted by its owner is cancelled here (same worker) or stops at its
next page (another worker: its heartbeat finds no running row). Whatever stops a job early
removes its directory: a job has all its files or none. Stopping the server marks the jobs it
was running failed; a crash leaves them to ``jobs.find_job`` and ``fail_stale_jobs``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from fse.config import Settings
from fse.export.jobs import (
    INTERRUPTED,
    ExportJob,
    beat,
    complete_job,
    delete_job,
    fail_job,
)
from fse.export.ndjson import write_export
from fse.store.repository import ResourceStore

log = logging.getLogger("fse.export")
BEAT_SECONDS = 1.0
"""At most one progress write per second per job (the first page always writes)."""


class JobDeleted(Exception):
    """The job's row is gone: its owner deleted it while it ran."""


def progress_text(rtype: str, lines: int) -> str:
    return f"{rtype} : {lines} lignes"


class ExportRunner:
    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        self.store = store
        self.engine = store.engine
        self.settings = settings
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def directory(self, job_id: str) -> Path:
        return self.settings.export_dir / job_id

    def start(self, job: ExportJob) -> None:
        task = asyncio.create_task(self._run(job), name=f"export-{job.job_id}")
        self.tasks[job.job_id] = task
        task.add_done_callback(lambda _done: self.tasks.pop(job.job_id, None))

    async def wait(self, job_id: str) -> None:
        """Until the job's task (in this process) ends; for the CLI and tests."""
        task = self.tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def delete(self, job_id: str) -> None:
        """Stop the job if it runs here, drop its row, then its files."""
        task = self.tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await delete_job(self.engine, job_id)
        await asyncio.to_thread(shutil.rmtree, self.directory(job_id), True)

    async def close(self) -> None:
        """Server shutdown: the jobs running here end failed, with a message saying so."""
        for job_id, task in list(self.tasks.items()):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await fail_job(self.engine, job_id, INTERRUPTED)

    async def _run(self, job: ExportJob) -> None:
        directory = self.directory(job.job_id)
        last_beat = 0.0

        async def progress(rtype: str, lines: int) -> None:
            nonlocal last_beat
            if time.monotonic() - last_beat < BEAT_SECONDS:
                return
            last_beat = time.monotonic()
            if not await beat(self.engine, job.job_id, progress_text(rtype, lines)):
                raise JobDeleted(job.job_id)

        try:
            outputs = await write_export(
                self.store,
                job.scope,
                directory,
                self.settings.export_max_lines_per_file,
                self.settings.export_page_size,
                progress,
            )
            published = await complete_job(self.engine, job.job_id, outputs)
        except JobDeleted:
            published = False
        except asyncio.CancelledError:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise
        except Exception as error:
            log.exception("export %s failed", job.job_id)
            await fail_job(self.engine, job.job_id, f"export en échec : {type(error).__name__}")
            published = False
        if not published:
            await asyncio.to_thread(shutil.rmtree, directory, True)
