"""The provider in Airflow's own UI, in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium): the FTS connection form and the "FTS job" link.

Screenshots are kept in ``tests/lifecycle/artifacts/`` (git-ignored). The field names
and labels come from ``get_provider_info()`` at run time, so the test follows renames.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from airflow_provider_fts.get_provider_info import get_provider_info

from .actions import Run
from .stack import AirflowStack

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL_HINT = (
    "run the apt line of .ci/run (apt-get install -y chromium chromium-driver); CI installs them"
)
HEADLESS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2400",
)  # fmt: skip
PEM = "-----BEGIN {kind}-----\nTUlJQ{name}\nQUJD{name}\n-----END {kind}-----"
WAIT = 30  # seconds for a page element to appear


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {INSTALL_HINT}", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[test]'", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in HEADLESS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, stack: AirflowStack, path: str) -> None:
    """Log in (the simple auth manager admits everyone) and land on ``path``."""
    target = quote(f"{stack.base_url}{path}", safe="")
    driver.get(f"{stack.base_url}/auth/token/login?next={target}")


def wait_xpath(driver, xpath: str, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT).until(
            expected_conditions.presence_of_element_located((By.XPATH, xpath))
        )
    except TimeoutException:
        raise AssertionError(
            f"{what} did not appear within {WAIT} s on {driver.current_url}"
        ) from None


def click_xpath(driver, xpath: str, what: str) -> None:
    """Click the element once it is there; found again if React re-rendered it between
    the finding and the click (a stale element), as a user's second look would."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + WAIT
    while True:
        try:
            wait_xpath(driver, xpath, what).click()
            return
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def type_into(driver, dialog: str, values: dict[str, str]) -> None:
    """Type each value into the dialog's input of that name, once it can take keys."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    for name, value in values.items():
        field = wait_xpath(driver, f"{dialog}//input[@name='{name}']", name)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        clickable = expected_conditions.element_to_be_clickable(field)
        WebDriverWait(driver, WAIT).until(clickable).send_keys(value)


# -- the connection form -----------------------------------------------------------------


def fts_connection_type() -> dict:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


def field_value(name: str, spec: dict) -> object:
    """A value of the right kind for each field: a path, a PEM, a secret, a number..."""
    schema = spec["schema"]
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if "boolean" in kinds:
        return False
    if "number" in kinds or "integer" in kinds:
        return 7
    if schema.get("format") == "url":
        return "https://monitoring.example.org/job/{job_id}"
    if is_pem(name, spec):
        return PEM.format(kind="PRIVATE KEY" if "key" in name else "CERTIFICATE", name=name)
    if schema.get("format") == "password":
        return f"secret-{name}-value"
    return f"/grid/paths/{name}"


def is_pem(name: str, spec: dict) -> bool:
    """A field that holds pasted PEM text (by its name or label), not a path to one."""
    return "pem" in name.lower() or "PEM" in spec["label"]


def is_secret(name: str, spec: dict) -> bool:
    """Declared secret, or a pasted PEM, a passphrase or a token by its name or label.

    A certificate is public: whether the form hides it is not checked.
    """
    label = spec["label"].lower()
    if "certificate" in label or ("cert" in name.lower() and "key" not in name.lower()):
        return False
    secret_words = ("passphrase", "secret", "access token", "refresh token")
    named = is_pem(name, spec) or any(w in label for w in secret_words)
    return spec["schema"].get("format") == "password" or named


def secret_part(value: object) -> str:
    """What must never reach the page: the value, or a PEM's body line."""
    lines = str(value).splitlines()
    return lines[1] if len(lines) > 2 else str(value)


def settle_and_shoot(driver, path: Path) -> None:
    time.sleep(0.5)  # the UI's accordions animate; only the picture waits for it
    driver.save_screenshot(str(path))


def is_path(name: str, spec: dict) -> bool:
    value = field_value(name, spec)
    return isinstance(value, str) and value.startswith("/grid/paths/")


def test_connection_form(browser, airflow_stack, artifacts: Path):
    from selenium.webdriver.common.by import By

    conn_type = fts_connection_type()
    fields = conn_type["conn-fields"]
    extra = {name: field_value(name, spec) for name, spec in fields.items()}
    token = "secret-password-field-token"
    airflow_stack.call(
        "POST",
        "/api/v2/connections",
        expect=(201,),
        json={
            "connection_id": "fts_form",
            "conn_type": conn_type["connection-type"],
            "host": "fts3-pilot.cern.ch",
            "port": 8446,
            "password": token,
            "extra": json.dumps(extra),
        },
    )
    open_page(browser, airflow_stack, "/connections")
    click_xpath(browser, "//button[@aria-label='Edit Connection']", "the Edit button")
    wait_xpath(browser, "//div[@role='dialog']//input[@name='host']", "the edit form")
    settle_and_shoot(browser, artifacts / "connection-form-standard.png")
    click_xpath(
        browser, "//div[@role='dialog']//button[normalize-space()='Extra Fields']", "Extra Fields"
    )
    wait_xpath(
        browser,
        "//div[@role='dialog']//button[normalize-space()='Extra Fields'][@aria-expanded='true']",
        "the open Extra Fields section",
    )
    dialog = browser.find_element(By.XPATH, "//div[@role='dialog']")
    controls = {
        name: found[0]
        for name in fields
        if (found := dialog.find_elements(By.XPATH, f".//*[@name='element_{name}']"))
    }
    settle_and_shoot(browser, artifacts / "connection-form-extra-1.png")
    if controls:
        browser.execute_script("arguments[0].scrollIntoView();", list(controls.values())[-1])
        settle_and_shoot(browser, artifacts / "connection-form-extra-2.png")
    labels = _labels(browser)
    source = dialog.get_attribute("outerHTML")

    problems = form_problems(fields, extra, labels, controls, source)
    problems += ["the password (token) reaches the browser"] * (token in browser.page_source)
    assert not problems, "the FTS connection form:\n- " + "\n- ".join(problems)


def form_problems(
    fields: dict, extra: dict, labels: list[str], controls: dict, source: str
) -> list[str]:
    """What is wrong with the form, one line each (every problem at once, not the first).

    :param fields: the provider's ``conn-fields``.
    :param extra: the values the connection holds.
    :param labels: every label of the dialog, with a trailing ``*`` where it is marked required.
    :param controls: the form control of each field, by field name.
    :param source: the dialog's HTML.
    """
    problems = [f"no control for {name}" for name in fields if name not in controls]
    marked, labels = labels, [label.replace("*", "").strip() for label in labels]
    missing = [spec["label"] for spec in fields.values() if spec["label"] not in labels]
    problems += [f"labels not in the form: {missing}"] * bool(missing)
    tokens = sum("access token" in label.lower() for label in labels)
    problems += [f'"Access token" appears {tokens} times: {labels}'] * (tokens != 1)
    required = [spec["label"] for spec in fields.values() if f"{spec['label']}*" in marked]
    problems += [f"marked required, though optional: {required}"] * bool(required)
    for name, control in controls.items():
        spec, value = fields[name], extra[name]
        what = f"{name} ({spec['label']})"
        if is_pem(name, spec) and control.tag_name != "textarea":
            problems.append(f"{what} is a one-line <{control.tag_name}>, not a multi-line field")
        if is_secret(name, spec) and secret_part(value) in source:
            problems.append(f"{what}: its secret value reaches the browser")
        shown = control.get_attribute("value")
        if is_path(name, spec) and shown != value:
            problems.append(f"{what} shows {shown!r}, not the path {value!r}")
    return problems


def _labels(driver) -> list[str]:
    """Each label's text, ending in ``*`` (no space before it) where it is marked required."""
    from selenium.webdriver.common.by import By

    texts = [
        " ".join(label.get_attribute("textContent").split())
        for label in driver.find_elements(By.XPATH, "//div[@role='dialog']//label")
    ]
    return [f"{t[:-1].rstrip()}*" if t.endswith("*") else t for t in texts]


def test_a_connection_added_in_the_form_saves_and_passes_the_test_button(
    browser, airflow_stack, emulator, fts_pki, artifacts: Path
):
    """The first hour of a new user: Add Connection, fill in the form, Save, Test."""
    from selenium.webdriver.common.keys import Keys

    open_page(browser, airflow_stack, "/connections")
    click_xpath(browser, "//button[normalize-space()='Add Connection']", "Add Connection")
    dialog = "//div[@role='dialog']"
    wait_xpath(browser, f"{dialog}//input[@name='connection_id']", "the form").send_keys("fts_ui")
    kind = wait_xpath(browser, f"{dialog}//input[@role='combobox']", "the connection types")
    kind.send_keys("CERN FTS3")
    wait_xpath(browser, "//*[@role='option'][normalize-space()='CERN FTS3']", "the FTS type")
    kind.send_keys(Keys.ENTER)
    standard = {"host": emulator.host, "port": str(emulator.port)}
    extra = {
        "element_x509up_file": str(fts_pki.voms_proxy_path),
        "element_ca_path": str(fts_pki.ca_dir),
    }
    type_into(browser, dialog, standard)  # the Standard Fields section is open first
    extra_fields = f"{dialog}//button[normalize-space()='Extra Fields']"
    click_xpath(browser, extra_fields, "Extra Fields")  # closes Standard Fields
    wait_xpath(browser, f"{extra_fields}[@aria-expanded='true']", "the open Extra Fields")
    type_into(browser, dialog, extra)
    settle_and_shoot(browser, artifacts / "connection-add-filled.png")
    click_xpath(browser, f"{dialog}//button[normalize-space()='Save']", "Save")
    wait_xpath(browser, "//td[normalize-space()='fts_ui']", "the saved connection in the list")
    saved = json.loads(airflow_stack.get("/api/v2/connections/fts_ui")["extra"])

    test = "//tr[td[normalize-space()='fts_ui']]//button[@aria-label='Test Connection']"
    click_xpath(browser, test, "the Test button")
    result = wait_xpath(
        browser,
        "//*[contains(normalize-space(), 'Test Connection Failed') or contains(., 'Connected to')]",
        "the Test result",
    )
    settle_and_shoot(browser, artifacts / "connection-add-tested.png")
    body = browser.find_element("tag name", "body").text

    assert "***" not in json.dumps(saved), saved
    assert saved["oidc_storage_access"] is False and saved["verify"] is True
    assert "Failed" not in result.text and "Failed" not in body, body[-600:]
    assert f"Connected to {emulator.url}" in body, body[-600:]


# -- the "FTS job" link ------------------------------------------------------------------


def test_fts_job_link_on_operator_and_sensor(browser, airflow_stack, artifacts: Path):
    run = Run.trigger(airflow_stack, "lc_links")
    assert run.wait_run({"success", "failed"}) == "success", run.describe()
    job_id = run.xcom("submit")

    problems = []
    for task_id in ("submit", "wait"):
        url = run.links(task_id)["extra_links"].get("FTS job")
        if not url or not url.endswith(job_id):
            problems.append(f"{task_id}: the REST API gives the FTS job link {url!r}")
        open_page(
            browser, airflow_stack, f"/dags/lc_links/runs/{run.run_id}/tasks/{task_id}/details"
        )
        wait_xpath(
            browser,
            "//*[normalize-space()='Details' or normalize-space()='Extra Links']",
            f"{task_id}'s details",
        )
        try:
            link = wait_xpath(
                browser, "//a[normalize-space()='FTS job']", f"{task_id}'s 'FTS job' link"
            )
        except AssertionError as error:
            problems.append(str(error))
        else:
            if not (link.get_attribute("href") or "").endswith(job_id):
                problems.append(f"{task_id}: the link points to {link.get_attribute('href')}")
        settle_and_shoot(browser, artifacts / f"fts-job-link-{task_id}.png")
    assert not problems, "the FTS job link:\n- " + "\n- ".join(problems)
