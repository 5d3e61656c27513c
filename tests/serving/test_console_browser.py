"""The browser console in a real headless Chromium against real server processes.

Two servers on one database: a local one (the console's user field names the
user) and a deployed one (``DATABRICKS_APP_NAME`` set; the user is the
``X-Forwarded-Email`` header, which the tests add to every request the
browser makes through Chrome DevTools' ``Network.setExtraHTTPHeaders``, as
the Databricks Apps proxy would). Both run the product's agent with an offline
model that streams its answers a word at a time (tests/serving/console_app.py).

Needs Debian's ``chromium`` and ``chromium-driver``; without them the tests
skip and say so, unless ``MEMORY_AGENT_REQUIRE_BROWSER=1`` (set by .ci/run),
which makes a missing browser a failure. ``MEMORY_AGENT_CONSOLE_SCREENSHOTS=dir``
saves the screenshots the tests take there (docs/console/ holds the committed ones).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.serving.conftest import RunningServer, start_agent_server, stop_server

T = TypeVar("T")

NO_BROWSER = (
    "no browser for the console tests: install Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver), or set CHROMIUM and CHROMEDRIVER"
)
WAIT_SECONDS = 30
MARKUP = "<img src=x onerror=alert(1)>"


def _executables() -> tuple[str, str] | None:
    browser = shutil.which(os.environ.get("CHROMIUM") or "chromium")
    driver = shutil.which(os.environ.get("CHROMEDRIVER") or "chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def executables() -> tuple[str, str]:
    found = _executables()
    if found is None:
        if os.environ.get("MEMORY_AGENT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MEMORY_AGENT_REQUIRE_BROWSER=1 but {NO_BROWSER}")
        pytest.skip(NO_BROWSER)
    return found


def _console_server(home: Path, database_url: str, **extra_env: str) -> RunningServer:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.serving.console_app:create_test_app",
        "--host",
        "127.0.0.1",
    ]
    return start_agent_server(
        home, database_url, command, CONSOLE_TEST_TOKEN_DELAY="0.08", **extra_env
    )


@pytest.fixture(scope="module")
def local_server(
    executables: tuple[str, str],
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    running = _console_server(tmp_path_factory.mktemp("console-local"), module_database_url)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def deployed_server(
    executables: tuple[str, str],
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    running = _console_server(
        tmp_path_factory.mktemp("console-deployed"),
        module_database_url,
        DATABRICKS_APP_NAME="memory-agent-console-test",
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser(executables: tuple[str, str]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = executables
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,860",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("MEMORY_AGENT_CONSOLE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- helpers


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the page is changing under us: try again
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def forwarded_user(browser: Any, email: str | None) -> None:
    """Make every request the browser sends carry the Apps proxy's identity header."""
    headers = {"X-Forwarded-Email": email} if email else {}
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def open_console(browser: Any, server: RunningServer, path: str = "/") -> None:
    browser.get(server.base_url + path)
    wait_for(lambda: "Loading" not in by_id(browser, "status").text, "the status line")


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def use_local_user(browser: Any, server: RunningServer, user: str) -> None:
    open_console(browser, server)
    field = by_id(browser, "local-user")
    field.clear()
    field.send_keys(user)
    field.submit()
    wait_for(
        lambda: (
            browser.execute_script(
                "return localStorage.getItem(arguments[0])", "memory-agent-console.user"
            )
            == user
        ),
        "the user to be kept",
    )


def click(browser: Any, element: Any) -> None:
    """Click like a person would, after scrolling the element clear of the sticky composer."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def button(container: Any, label: str) -> Any:
    return container.find_element("xpath", f".//button[normalize-space()='{label}']")


def new_thread(browser: Any) -> None:
    by_id(browser, "new-thread").click()
    wait_for(lambda: browser.current_url.endswith("/"), "a new thread")


def send(browser: Any, text: str) -> None:
    box = by_id(browser, "message")
    box.send_keys(text)
    by_id(browser, "send").click()


def assistant_texts(browser: Any) -> list[str]:
    return [node.text for node in css(browser, "#messages .message.assistant .text")]


def wait_idle(browser: Any) -> None:
    wait_for(lambda: by_id(browser, "send").is_enabled(), "the run to finish")


def ask(browser: Any, text: str) -> None:
    send(browser, text)
    wait_for(lambda: not by_id(browser, "send").is_enabled() or True, "the run to start")
    wait_idle(browser)


def thread_id_of(browser: Any) -> str:
    return str(
        wait_for(lambda: browser.current_url.split("/threads/")[1].split("?")[0], "a thread URL")
    )


# ---------------------------------------------------------------- local mode


def test_chat_streams_the_answer_token_by_token(
    browser: Any, local_server: RunningServer, screenshots: Path
) -> None:
    use_local_user(browser, local_server, "ada")
    new_thread(browser)
    send(browser, "my name is Ada and my favourite tea is sencha")
    # While the run goes, the answer grows in place, a word at a time.
    partial = wait_for(
        lambda: [
            n.text for n in css(browser, "#messages .message.assistant.streaming .text") if n.text
        ],
        "a partly streamed answer",
    )
    final = "Noted: your name is Ada; your favourite tea is sencha. I'll remember that in this conversation."
    assert partial[0] != final and final.startswith(partial[0].rstrip("▍").strip())
    wait_idle(browser)
    assert assistant_texts(browser)[-1] == final
    assert not css(browser, "#messages .streaming")
    # The new thread is in the picker, newest first, titled by its first message.
    thread_id = thread_id_of(browser)
    first = wait_for(lambda: css(browser, "#thread-list .thread-link"), "the thread list")[0]
    assert first.get_attribute("data-thread-id") == thread_id
    assert "my name is Ada" in first.text
    ask(browser, "what is my name?")
    assert assistant_texts(browser)[-1] == "Your name is Ada."


def test_reloading_mid_run_shows_the_answer_complete(
    browser: Any, local_server: RunningServer
) -> None:
    use_local_user(browser, local_server, "ada")
    new_thread(browser)
    text = "this message is here to make the offline model answer with a long echo " * 3
    send(browser, text.strip())
    wait_for(lambda: css(browser, "#messages .message.assistant.streaming"), "the answer to start")
    thread_id = thread_id_of(browser)
    browser.refresh()  # the run goes on in the server; the reloaded page waits for it
    wait_for(
        lambda: "still working" in by_id(browser, "run-note").text or assistant_texts(browser),
        "the reopened thread",
    )
    answer = wait_for(
        lambda: [t for t in assistant_texts(browser) if t.startswith("You said")],
        "the complete answer",
    )
    assert answer[0].endswith("I only follow simple rules.)")
    assert thread_id_of(browser) == thread_id
    # Exactly one answer: the run was neither cut short nor run twice.
    thread = httpx.get(
        f"{local_server.base_url}/console/api/threads/{thread_id}",
        headers={"X-Memory-Agent-User": "ada"},
    ).json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert not thread["running"]


def test_approve_and_deny_a_pending_deletion(
    browser: Any, local_server: RunningServer, screenshots: Path
) -> None:
    use_local_user(browser, local_server, "grace")
    new_thread(browser)
    ask(browser, "remember that my favourite colour is teal")
    assert any("Saved memory" in t for t in assistant_texts(browser))
    # The tool call and its result show inline.
    assert any("save_memory" in n.text for n in css(browser, "#messages .tool-call"))
    ask(browser, "forget my favourite colour")
    card = wait_for(lambda: css(browser, "#messages .approval"), "an approval card")[-1]
    assert "delete_memory" in card.text
    browser.save_screenshot(str(screenshots / "chat-approval.png"))
    # Edit: the call runs with the arguments typed here (a key that does not exist).
    click(browser, button(card, "Edit"))
    editor = card.find_element("css selector", "textarea")
    editor.clear()
    editor.send_keys('{"key": "no-such-key"}')
    click(browser, button(card, "Run with these arguments"))
    wait_idle(browser)
    wait_for(lambda: any("no-such-key" in t for t in assistant_texts(browser)), "the edited call")
    assert [m["content"] for m in _memories(local_server, "grace")] == [
        "my favourite colour is teal"
    ]

    ask(browser, "forget my favourite colour")
    card = wait_for(
        lambda: [
            c
            for c in css(browser, "#messages .approval")
            if "settled" not in (c.get_attribute("class") or "")
        ],
        "another approval card",
    )[-1]
    click(browser, button(card, "Deny"))
    wait_idle(browser)
    wait_for(lambda: any("rejected" in t for t in assistant_texts(browser)), "the rejection")
    memories = _memories(local_server, "grace")
    assert [m["content"] for m in memories] == ["my favourite colour is teal"]

    ask(browser, "forget my favourite colour")
    card = wait_for(
        lambda: [
            c
            for c in css(browser, "#messages .approval")
            if "settled" not in c.get_attribute("class")
        ],
        "a new approval card",
    )[-1]
    click(browser, button(card, "Allow"))
    wait_idle(browser)
    wait_for(lambda: any("Deleted memory" in t for t in assistant_texts(browser)), "the deletion")
    assert _memories(local_server, "grace") == []


def test_fork_from_a_checkpoint_opens_the_new_thread(
    browser: Any, local_server: RunningServer, screenshots: Path
) -> None:
    use_local_user(browser, local_server, "ada")
    new_thread(browser)
    ask(browser, "my name is Ada")
    ask(browser, "my city is Lyon")
    source = thread_id_of(browser)
    by_id(browser, "tab-history").click()
    rows = wait_for(lambda: css(browser, "#checkpoints .checkpoint"), "the checkpoint timeline")
    assert "call_model" in rows[0].text and "step" in rows[0].text
    # The checkpoint where the first answer was written: two messages, nothing next.
    first_answer = next(
        row for row in rows if "Noted: your name is Ada" in row.text and "call_model" in row.text
    )
    click(browser, button(first_answer, "Open state"))
    state = wait_for(lambda: by_id(browser, "state").text, "the state at the checkpoint")
    assert "my name is Ada" in state and "Lyon" not in state
    browser.save_screenshot(str(screenshots / "checkpoints.png"))
    click(browser, button(first_answer, "Fork into a new thread"))
    wait_for(lambda: thread_id_of(browser) != source, "the forked thread")
    forked = thread_id_of(browser)
    wait_for(
        lambda: len(css(browser, "#messages .message.user")) == 1, "the forked thread's messages"
    )
    assert "Lyon" not in by_id(browser, "messages").text
    wait_for(
        lambda: (
            {forked, source}
            <= {
                n.get_attribute("data-thread-id") for n in css(browser, "#thread-list .thread-link")
            }
        ),
        "both threads in the picker",
    )
    ask(browser, "what is my name?")
    assert assistant_texts(browser)[-1] == "Your name is Ada."
    # Delete the fork: asked once more in the page, then gone from the picker.
    by_id(browser, "tab-history").click()
    wait_for(lambda: css(browser, "#checkpoints .checkpoint"), "the fork's timeline")
    click(browser, by_id(browser, "delete-thread"))
    click(browser, by_id(browser, "delete-yes"))
    wait_for(lambda: browser.current_url.endswith("/"), "the page to leave the deleted thread")
    wait_for(
        lambda: (
            forked
            not in {
                n.get_attribute("data-thread-id") for n in css(browser, "#thread-list .thread-link")
            }
            and css(browser, "#thread-list .thread-link")
        ),
        "the deleted thread to leave the picker",
    )


def test_search_edit_and_delete_a_memory(
    browser: Any, local_server: RunningServer, screenshots: Path
) -> None:
    use_local_user(browser, local_server, "linus")
    new_thread(browser)
    ask(browser, "remember that my favourite tea is genmaicha")
    ask(browser, "remember that my dog is called Biscuit")
    by_id(browser, "tab-memories").click()
    wait_for(lambda: len(css(browser, "#memory-list .memory")) == 2, "both memories")
    query = by_id(browser, "memory-query")
    query.send_keys("tea")
    query.submit()
    rows = wait_for(
        lambda: [
            r
            for r in css(browser, "#memory-list .memory")
            if r.find_elements("css selector", ".score")
        ],
        "scored results",
    )
    assert "genmaicha" in rows[0].text  # the best match first, with its hybrid score
    browser.save_screenshot(str(screenshots / "memories.png"))

    click(browser, button(rows[0], "Edit"))
    editor = wait_for(lambda: css(browser, "#memory-list textarea"), "the editor")[0]
    editor.clear()
    editor.send_keys("my favourite tea is hojicha")
    click(browser, editor.find_element("xpath", "../button[normalize-space()='Save']"))
    wait_for(
        lambda: any("hojicha" in r.text for r in css(browser, "#memory-list .memory")),
        "the edited memory",
    )
    assert sorted(m["content"] for m in _memories(local_server, "linus")) == [
        "my dog is called Biscuit",
        "my favourite tea is hojicha",
    ]

    row = next(r for r in css(browser, "#memory-list .memory") if "hojicha" in r.text)
    click(browser, button(row, "Delete"))
    click(browser, button(row, "Deny"))  # the approval, answered no
    wait_for(lambda: "kept" in row.text, "the denial")
    assert len(_memories(local_server, "linus")) == 2
    click(browser, button(row, "Delete"))
    click(browser, button(row, "Allow"))
    wait_for(
        lambda: not any("hojicha" in r.text for r in css(browser, "#memory-list .memory")),
        "the deletion",
    )
    assert [m["content"] for m in _memories(local_server, "linus")] == ["my dog is called Biscuit"]


def test_markup_in_messages_and_memories_shows_as_text(
    browser: Any, local_server: RunningServer, screenshots: Path
) -> None:
    use_local_user(browser, local_server, "mallory")
    new_thread(browser)
    ask(browser, MARKUP)
    ask(browser, f"remember that {MARKUP}")
    for _ in range(2):  # as streamed, then as reloaded from the checkpoint
        users = [n.text for n in css(browser, "#messages .message.user .text")]
        assert users[0] == MARKUP
        assert MARKUP in assistant_texts(browser)[0]
        assert not css(browser, "#messages img, #thread-list img")
        browser.refresh()
        wait_for(lambda: css(browser, "#messages .message.user"), "the reloaded thread")
    by_id(browser, "tab-memories").click()
    content = wait_for(lambda: css(browser, "#memory-list .memory .content"), "the memory")[0]
    assert content.text == MARKUP
    assert not css(browser, "#memory-list img")
    _no_alert(browser)
    browser.set_window_size(390, 844)  # a phone
    by_id(browser, "tab-chat").click()
    wait_for(lambda: css(browser, "#messages .message.user"), "the chat on a phone")
    browser.save_screenshot(str(screenshots / "phone.png"))
    browser.set_window_size(1280, 860)


# ---------------------------------------------------------------- deployed


def test_deployed_user_sees_only_their_own_threads_and_memories(
    browser: Any, deployed_server: RunningServer, screenshots: Path
) -> None:
    alice, bob = "alice@example.com", "bob@example.com"
    forwarded_user(browser, alice)
    try:
        open_console(browser, deployed_server)
        assert alice in by_id(browser, "identity").text
        assert not css(browser, "#local-user")  # no way to name another user
        ask(browser, "remember that my project is Apollo")
        ask(browser, "what do you remember about me?")
        alice_thread = thread_id_of(browser)
        assert any("Apollo" in t for t in assistant_texts(browser))
        browser.save_screenshot(str(screenshots / "chat.png"))

        forwarded_user(browser, bob)
        open_console(browser, deployed_server)
        assert bob in by_id(browser, "identity").text
        wait_for(lambda: "No threads yet" in by_id(browser, "thread-list").text, "Bob's empty list")
        by_id(browser, "tab-memories").click()
        wait_for(lambda: "No memories yet" in by_id(browser, "memory-list").text, "Bob's memories")
        assert "Apollo" not in browser.find_element("tag name", "body").text

        open_console(browser, deployed_server, f"/threads/{alice_thread}")
        error = wait_for(lambda: by_id(browser, "error").text, "the 403 message")
        assert "403" in error and "another user" in error
        assert "Apollo" not in browser.find_element("tag name", "body").text
        page = httpx.get(
            f"{deployed_server.base_url}/threads/{alice_thread}", headers={"X-Forwarded-Email": bob}
        )
        assert page.status_code == 403
        # The body's user id counts for nothing when deployed: Bob cannot pass as Alice.
        api = httpx.get(
            f"{deployed_server.base_url}/console/api/threads/{alice_thread}",
            headers={"X-Forwarded-Email": bob, "X-Memory-Agent-User": alice},
        )
        assert api.status_code == 403
        assert "Apollo" not in api.text
        # Deployed, the status says whether memory works, not where the database is.
        status = httpx.get(
            f"{deployed_server.base_url}/console/api/status", headers={"X-Forwarded-Email": bob}
        ).json()
        assert status["user_id"] == bob and status["identity"] == "proxy"
        assert status["memory_status"] == "memory available"
        assert status["long_term_memory_status"] == "long-term memory available"
    finally:
        forwarded_user(browser, None)


def _memories(server: RunningServer, user: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.base_url}/console/api/memories", headers={"X-Memory-Agent-User": user}
    )
    response.raise_for_status()
    return list(response.json())


def _no_alert(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
