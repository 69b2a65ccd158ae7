"""The view finds every try's jobs by the ids the operator gives them, as a retry does."""

from __future__ import annotations

from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.plugins.report import FTSTask, build_report

SLOW = "mock://dst.example/view-{name}?time=3600"


def submit(hook: FTSHook, task: FTSTask, try_number: int, chunk: int) -> str:
    name = f"{task.run_id}-{try_number}-{chunk}"
    return hook.submit_job(
        [("mock://src.example/f", SLOW.format(name=name))], sid=task.sid(try_number, chunk)
    )


def test_a_try_that_pushed_no_ids_yet_is_probed_page_by_page(fts_connection, fts_emulator):
    hook = FTSHook()
    task = FTSTask("d", "probe", "submit", -1, 2, "fts_default", pushed=())
    first = [submit(hook, task, 1, chunk) for chunk in range(12)]
    second = submit(hook, task, 2, 0)
    never_ran = FTSTask("d", "probe", "later", -1, 0, "fts_default", pushed=())
    fts_emulator.reset_counts()

    report = build_report(FTSHook, [task, never_ran])

    assert [j.job_id for j in report.jobs] == [*first, second]
    assert [(j.made_by.try_number, j.made_by.chunk) for j in report.jobs] == [
        *((1, chunk) for chunk in range(12)),
        (2, 0),
    ]
    reads = {
        r: n for r, n in fts_emulator.requests.items() if r.startswith(("GET /jobs", "GET /a"))
    }
    # Chunks 0-9 of both tries, then 10-19; the task that never ran: none; no archive.
    assert reads == {"GET /jobs/{id}": 2}
    hook.cancel_jobs([*first, second])


def test_pushed_ids_name_the_chunks_and_earlier_tries_are_found(fts_connection):
    hook = FTSHook()
    task = FTSTask("d", "pushed", "submit", 3, 3, "fts_default", pushed=())
    earlier = [submit(hook, task, t, c) for t in (1, 2) for c in (0, 1)]
    latest = [submit(hook, task, 3, c) for c in (0, 1)]
    pushed = FTSTask("d", "pushed", "submit", 3, 3, "fts_default", pushed=tuple(latest))

    report = build_report(FTSHook, [pushed])

    assert [j.job_id for j in report.jobs] == earlier + latest
    assert {j.made_by.map_index for j in report.jobs} == {3}
    hook.cancel_jobs(earlier + latest)


def test_a_run_fts_purged_is_read_from_its_archive(fts_connection, fts_emulator):
    hook = FTSHook()
    task = FTSTask("d", "purged", "submit", -1, 2, "fts_default", pushed=())
    first = submit(hook, task, 1, 0)
    second = submit(hook, task, 2, 0)
    hook.cancel_jobs([first, second])
    for job_id in (first, second):
        fts_emulator.purge(job_id)
    pushed = FTSTask("d", "purged", "submit", -1, 2, "fts_default", pushed=(second,))

    report = build_report(FTSHook, [pushed])

    assert [(j.job_id, j.made_by.try_number, j.state) for j in report.jobs] == [
        (first, 1, "CANCELED"),
        (second, 2, "CANCELED"),
    ]
