"""The web dashboard in a real headless Chromium (the distribution's package, driven by
Playwright) against a real server: every page loads without console errors (a screenshot of
each is kept under test-artifacts/dashboard/), a process spawned through the API shows up
within a second and its buttons renice and kill it, a non-admin sees only its own
processes, and the chat page streams a reply with each token's alternatives."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
ADMIN = {"Authorization": "Bearer root"}
PAGES = ["/", "/dashboard/memory", "/dashboard/agents", "/dashboard/jobs", "/dashboard/chat"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, session_home, model_path) -> Iterator[str]:
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    server, url = start_server("--admin-key", "root", home=home)
    yield url
    stop_server(server)


@pytest.fixture(scope="module")
def keys(server) -> dict[str, str]:
    made = {}
    for owner in ("alice", "bob"):
        body = {"owner": owner, "role": "user"}
        reply = httpx.post(f"{server}/v1/admin/keys", json=body, headers=ADMIN)
        assert reply.status_code == 201, reply.text
        made[owner] = reply.json()["key"]
    return made


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def browser(chromium) -> Iterator[object]:
    """The browser, whose tabs (and their live streams) close when the test ends."""
    yield chromium
    for context in chromium.contexts:
        context.close()


class Tab:
    """One page of the dashboard with a key, and the errors its console showed."""

    def __init__(self, browser, url: str, key: str) -> None:
        self.url, self.errors = url, []
        self.page = browser.new_context().new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}")
        )
        self.page.goto(f"{url}/health")  # the same origin: its sessionStorage holds the key
        self.page.evaluate("key => sessionStorage.setItem('llmasos-api-key', key)", key)

    def open(self, path: str) -> object:
        self.page.goto(self.url + path)
        self.page.wait_for_selector("main h2")
        return self.page


def spawn(url: str, key: str) -> int:
    """A process that stays until killed (suspended at once)."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"prompt": "Once upon a time", "max_tokens": 400}
    pid = httpx.post(f"{url}/v1/processes", json=body, headers=headers).json()["pid"]
    signal = {"signal": "suspend"}
    httpx.post(f"{url}/v1/processes/{pid}/signal", json=signal, headers=headers)
    return pid


def process(url: str, pid: int) -> dict:
    return httpx.get(f"{url}/v1/processes/{pid}", headers=ADMIN).json()


def test_every_page_loads_without_console_errors(server, keys, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab = Tab(browser, server, keys["alice"])
    spawn(server, keys["alice"])  # something to show
    for path in PAGES:
        page = tab.open(path)
        page.wait_for_function("!document.body.innerText.includes('Connecting')")
        name = path.strip("/").replace("/", "-") or "processes"
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert tab.errors == []


def test_a_spawned_process_shows_up_within_a_second_and_its_buttons_work(server, keys, browser):
    tab = Tab(browser, server, keys["alice"])
    page = tab.open("/")
    page.wait_for_selector("table[aria-label=Processes]")
    pid = spawn(server, keys["alice"])
    spawned = time.monotonic()
    page.wait_for_selector(f'tr[data-pid="{pid}"]', timeout=5_000)
    assert time.monotonic() - spawned < 1.0  # the bound: a snapshot every 0.5 s
    page.fill(f"#prio-{pid}", "7")
    page.get_by_role("button", name=f"Set the priority of process {pid}").click()
    page.wait_for_selector(f'tr[data-pid="{pid}"] td:nth-child(5):has-text("7")')
    assert process(server, pid)["priority"] == 7
    page.get_by_role("button", name=f"Kill process {pid}").click()
    page.wait_for_selector(f'tr[data-pid="{pid}"] td[data-state="terminated"]')
    assert process(server, pid)["state"] == "terminated"
    assert tab.errors == []


def test_a_non_admin_sees_only_its_own_processes(server, keys, browser):
    alices, bobs = spawn(server, keys["alice"]), spawn(server, keys["bob"])
    page = Tab(browser, server, keys["bob"]).open("/")
    page.wait_for_selector(f'tr[data-pid="{bobs}"]')
    assert page.locator(f'tr[data-pid="{alices}"]').count() == 0
    owners = page.locator("table[aria-label=Processes] tbody td:nth-child(2)").all_inner_texts()
    assert owners and set(owners) == {"bob"}


def test_the_chat_page_streams_a_reply_with_each_tokens_alternatives(server, keys, browser):
    tab = Tab(browser, server, keys["alice"])
    page = tab.open("/dashboard/chat")
    page.fill("#max_tokens", "24")
    page.fill("#top_logprobs", "3")
    page.fill("#temperature", "0")
    page.evaluate(  # every text the streaming reply shows, as it grows
        """() => { window.seen = [];
          new MutationObserver(() => { const p = document.querySelector('[data-role=streaming]');
            if (p) window.seen.push(p.innerText); })
          .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.fill("#message", "Name three colours.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_selector('.messages p[data-role="assistant"]', timeout=120_000)
    seen = page.evaluate("window.seen")
    assert len(set(seen)) >= 2  # it grew piece by piece: streamed
    assert page.locator(".token").count() >= 2 and page.locator(".token .alt").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-reply.png"), full_page=True)
    assert tab.errors == []


def test_the_command_bar_shows_the_command_and_runs_it_only_on_a_click(server, keys, browser):
    pid = spawn(server, keys["alice"])
    tab = Tab(browser, server, keys["alice"])
    page = tab.open("/")
    page.fill("#command-sentence", f"kill {pid}")
    page.get_by_role("button", name="Translate").click()
    page.wait_for_selector("code[data-command]", timeout=120_000)
    assert page.inner_text("code[data-command]") == f"llmasos kill {pid}"
    assert process(server, pid)["state"] != "terminated"  # shown, not run
    page.get_by_role("button", name="Run").click()
    page.wait_for_selector(f'tr[data-pid="{pid}"] td[data-state="terminated"]')
    assert process(server, pid)["state"] == "terminated"
    assert tab.errors == []
