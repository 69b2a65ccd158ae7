"""The "FTS transfers" view on the suite's real API server: its routes over HTTP, then the
tab in a real Chromium (Debian's ``chromium``), with screenshots in light and dark mode.

``lc_view`` copies six files, loses one to a recoverable error and one to a missing
source; Airflow retries, the second try resends only the recoverable file and fails
again. So the run has two jobs, made by two tries, and two kinds of failure.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from airflow_provider_fts.plugins.report import public_url

from .actions import Run
from .stack import AirflowStack, wait_for
from .test_browser import browser as browser_fixture
from .test_browser import open_page, settle_and_shoot, wait_xpath

VIEW = "/fts-transfers"
DAG_IDS = {"lc_view", "lc_view_down"}
browser = browser_fixture  # the suite's headless Chromium, one per module


@pytest.fixture(scope="module")
def view_run(airflow_stack: AirflowStack) -> Run:
    """One finished ``lc_view`` run: try 1 partly failed, try 2 resent and failed."""
    airflow_stack.wait_dags(DAG_IDS)
    run = Run.trigger(airflow_stack, "lc_view")
    ti = run.wait_ti_done("transfer", timeout=180)
    assert (ti["state"], ti["try_number"]) == ("failed", 2), run.describe()
    return run


def run_path(run: Run) -> str:
    return f"{VIEW}/dags/{run.dag_id}/runs/{run.run_id}"


def fts_files(emulator, run: Run) -> list[dict]:
    """What FTS holds of the run's files, oldest job first, as the report shows them."""
    with emulator.store.lock:
        jobs = sorted(emulator.store.stored_jobs(), key=lambda job: job.submitted_at)
        return [
            {
                "job_id": job.job_id,
                "try_number": int(job.sid.split(":")[5]),
                "file_id": row["file_id"],
                "state": row["file_state"],
                "source": public_url(row["source_surl"]),
                "destination": public_url(row["dest_surl"]),
                "size": int(row["filesize"] or 0),
                "reason": row["reason"] or "",
                "recoverable": bool(row["recoverable"]),
            }
            for job in jobs
            if (job.sid or "").startswith(f"airflow:{run.dag_id}:transfer:{run.run_id}:")
            for row in job.files
        ]


# -- the routes, over HTTP -----------------------------------------------------------------


def test_the_api_server_lists_the_plugin_with_its_two_tabs(airflow_stack):
    plugins = airflow_stack.get("/api/v2/plugins")["plugins"]
    errors = airflow_stack.get("/api/v2/plugins/importErrors")["import_errors"]

    (plugin,) = [p for p in plugins if p["name"] == "fts_transfers"]
    tabs = {(v["name"], v["destination"]) for v in plugin["external_views"]}
    assert tabs == {("FTS transfers", "dag_run"), ("FTS transfers", "task_instance")}
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/fts-transfers"]
    assert not errors


# (The suite's auth manager admits everyone as admin: refusals are tested in tests/ui.)


def test_json_report_holds_both_tries_files_as_fts_records_them(airflow_stack, emulator, view_run):
    report = airflow_stack.get(f"{run_path(view_run)}/files.json")

    expected = fts_files(emulator, view_run)
    assert [(j["try_number"], j["state"]) for j in report["jobs"]] == [
        (1, "FINISHEDDIRTY"),
        (2, "FAILED"),
    ]
    shown = [{k: f[k] for k in expected[0]} for f in report["files"]]
    assert shown == expected
    assert [f["state"] for f in shown].count("FINISHED") == 6
    assert all(f["start_time"] and f["finish_time"] for f in report["files"])


def test_csv_report_is_the_json_report_as_rows(airflow_stack, view_run):
    text = airflow_stack.request("GET", f"{run_path(view_run)}/files.csv").text
    report = airflow_stack.get(f"{run_path(view_run)}/files.json")

    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["file_id"] for r in rows] == [str(f["file_id"]) for f in report["files"]]
    assert [r["reason"] for r in rows] == [f["reason"] for f in report["files"]]
    assert [r["size"] for r in rows] == [str(f["size"]) for f in report["files"]]


def test_report_filters_by_state_and_job(airflow_stack, view_run):
    report = airflow_stack.get(f"{run_path(view_run)}/files.json")
    second = report["jobs"][1]["job_id"]

    failed = airflow_stack.get(f"{run_path(view_run)}/files.json", params={"state": "FAILED"})
    retried = airflow_stack.get(f"{run_path(view_run)}/files.json", params={"job": second})

    assert len(failed["files"]) == 3  # flaky twice, missing once
    assert [f["destination"] for f in retried["files"]] == ["mock://mock-b.example/lc_view/flaky?…"]


def test_fts_down_the_page_says_what_to_do_and_the_api_server_stays_well(airflow_stack, emulator):
    run = Run.trigger(airflow_stack, "lc_view_down")
    run.wait_ti_done("submit", timeout=120)  # its job is submitted and still active
    emulator.faults.reset_connection(count=None)
    try:
        reply = airflow_stack.request("GET", run_path(run))
    finally:
        emulator.faults.clear()

    assert reply.status_code == 503
    assert "FTS cannot be read from the Airflow API server" in reply.text
    assert "What to do:" in reply.text and "Traceback" not in reply.text
    assert airflow_stack.get("/api/v2/monitor/health")["metadatabase"]["status"] == "healthy"
    page = wait_for(
        "the page to show the job once FTS answers again",
        lambda: (r := airflow_stack.request("GET", run_path(run))).ok and r.text,
        timeout=60,
        interval=2,
    )
    assert "<table id=jobs>" in page
    assert 'http-equiv="refresh"' in page  # its job is active: the page reloads itself


def test_a_page_of_ended_jobs_does_not_reload_itself(airflow_stack, view_run):
    page = airflow_stack.request("GET", run_path(view_run)).text

    assert "<table id=jobs>" in page and 'http-equiv="refresh"' not in page


# -- the tab, in a browser -----------------------------------------------------------------


def open_tab(driver, stack: AirflowStack, path: str) -> None:
    """Open an Airflow page, click its "FTS transfers" tab and enter the tab's frame."""
    from selenium.webdriver.common.by import By

    open_page(driver, stack, path)
    tab = wait_xpath(
        driver, "//*[self::a or self::button][normalize-space()='FTS transfers']", "the tab"
    )
    tab.click()
    frame = wait_xpath(driver, "//iframe[@title='FTS transfers']", "the tab's frame")
    driver.switch_to.frame(frame)
    wait_xpath(driver, "//table[@id='jobs'] | //div[@role='alert']", "the view")
    assert not driver.find_elements(By.XPATH, "//div[@role='alert']"), driver.page_source[:3000]


def view_problems(driver, tries: list[str]) -> list[str]:
    """What the view lacks: both tries' jobs, the charts, the failure groups, the table."""
    from selenium.webdriver.common.by import By

    def texts(xpath: str) -> list[str]:
        return [e.text for e in driver.find_elements(By.XPATH, xpath)]

    jobs = texts("//table[@id='jobs']//tr[td]")
    failures = texts("//table[@id='failures']//tr[td]")
    files = texts("//table[@id='file-table']//tr[td]")
    problems = [f"jobs: {jobs}"] * (not all(any(t in j for j in jobs) for t in tries))
    problems += ["no progress chart"] * (not driver.find_elements(By.CSS_SELECTOR, "svg#progress"))
    problems += ["no throughput chart"] * (
        not driver.find_elements(By.CSS_SELECTOR, "svg#throughput")
    )
    groups = [
        "TRANSFER [110] Connection timed out recoverable 2",
        "SOURCE [2] No such file or directory not recoverable 1",
    ]
    missing = [g for g in groups if not any(f.startswith(g) for f in failures)]
    problems += [f"failure groups {missing} not in {failures}"] * bool(missing)
    problems += [f"file table: {files}"] * (len(files) != 9)
    problems += ["a signed URL query reached the page"] * ("?size=" in driver.page_source)
    return problems


def is_dark(css_color: str) -> bool:
    """Whether an ``rgb(r, g, b)`` colour is closer to black than to white."""
    red, green, blue = (
        int(part) for part in css_color[css_color.index("(") + 1 : -1].split(",")[:3]
    )
    return red + green + blue < 3 * 128


def test_the_tab_on_the_run_and_on_the_task_instance(
    browser, airflow_stack, view_run, artifacts: Path
):
    from selenium.webdriver.common.by import By

    problems = []
    pages = {
        "run": f"/dags/lc_view/runs/{view_run.run_id}",
        "task": f"/dags/lc_view/runs/{view_run.run_id}/tasks/transfer",
    }
    for name, path in pages.items():
        for mode in ("light", "dark"):
            browser.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": mode}]},
            )
            open_tab(browser, airflow_stack, path)
            problems += [f"{name}, {mode}: {p}" for p in view_problems(browser, ["try 1", "try 2"])]
            background = browser.execute_script(
                "return getComputedStyle(document.body).backgroundColor"
            )
            if is_dark(background) != (mode == "dark"):
                problems.append(f"{name}, {mode}: the background is {background}")
            view = browser.find_element(By.TAG_NAME, "body")  # the tab's page alone
            view.screenshot(str(artifacts / f"fts-transfers-{name}-{mode}-tab.png"))
            browser.switch_to.default_content()
            settle_and_shoot(browser, artifacts / f"fts-transfers-{name}-{mode}.png")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert not problems, "the FTS transfers tab:\n- " + "\n- ".join(problems)


def test_the_csv_download_from_the_tab(browser, airflow_stack, view_run, tmp_path: Path):
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    open_tab(browser, airflow_stack, f"/dags/lc_view/runs/{view_run.run_id}")
    browser.find_element(By.ID, "csv").click()
    saved = wait_for(
        "the CSV download", lambda: [p for p in tmp_path.glob("*.csv") if p.stat().st_size], 30
    )
    browser.switch_to.default_content()

    rows = list(csv.DictReader(io.StringIO(saved[0].read_text())))
    expected = airflow_stack.get(f"{run_path(view_run)}/files.json")["files"]
    assert [r["file_id"] for r in rows] == [str(f["file_id"]) for f in expected]


def test_fts_down_while_the_tab_is_open(browser, airflow_stack, emulator, artifacts: Path):
    from selenium.webdriver.common.by import By

    run = Run.trigger(airflow_stack, "lc_view_down")
    run.wait_ti_done("submit", timeout=120)
    open_tab(browser, airflow_stack, f"/dags/lc_view_down/runs/{run.run_id}")
    emulator.faults.reset_connection(count=None)
    try:
        alert = wait_for(  # the page reloads itself while its job is active
            "the tab to say FTS cannot be read",
            lambda: browser.find_elements(By.XPATH, "//div[@role='alert']"),
            timeout=60,
        )[0]
        message = alert.text
        browser.switch_to.default_content()
        settle_and_shoot(browser, artifacts / "fts-transfers-fts-down.png")
        health = airflow_stack.get("/api/v2/monitor/health")
    finally:
        emulator.faults.clear()

    assert "What to do:" in message and "must reach the FTS REST port" in message, message
    assert health["metadatabase"]["status"] == "healthy"
    browser.switch_to.frame(browser.find_element(By.XPATH, "//iframe[@title='FTS transfers']"))
    wait_for(
        "the tab to show the job again",
        lambda: browser.find_elements(By.ID, "jobs"),
        timeout=60,
    )
    browser.switch_to.default_content()
