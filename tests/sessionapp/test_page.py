"""The page in headless Chromium, served by granian: two people, two counters, one shared.

Each browser context is a separate person (its own cookie jar). Clicks go through the
real buttons; the numbers are read from the page as a person would see them.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

WAIT_MS = 10_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def service(granian_server, store_env):
    return granian_server("app:app", env=store_env, workers=2, threads=4)


@pytest.fixture
def new_page(browser):
    """Factory: a page in a fresh browser context (a new person); closed at teardown."""
    contexts = []

    def open_page(**context_options) -> Page:
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        return page

    yield open_page
    for context in contexts:
        context.close()


def click(page: Page, label: str) -> None:
    page.get_by_role("button", name=label, exact=True).click()


def test_two_people_see_their_own_counters_and_one_shared_counter(service, new_page, store_name):
    alice, bob = new_page(), new_page()
    for page in (alice, bob):
        page.goto(service.url + "/")
        expect(page.locator("#counter")).to_have_text("0")
        expect(page.locator("#shared-counter")).to_have_text("0")
        expect(page.locator("#store")).to_have_text(store_name)
        # Marks this document: if a click reloaded the page, the mark would be gone.
        page.evaluate("window.notReloaded = true")

    for _ in range(3):
        click(alice, "Increment")
    click(bob, "Increment")
    click(bob, "Decrement")
    click(bob, "Decrement")
    expect(alice.locator("#counter")).to_have_text("3")
    expect(bob.locator("#counter")).to_have_text("-1")

    click(alice, "Take a shared number")
    expect(alice.locator("#taken-number")).to_have_text("1")
    click(bob, "Take a shared number")
    expect(bob.locator("#taken-number")).to_have_text("2")
    expect(bob.locator("#shared-counter")).to_have_text("2")
    # The clicks were handled by the script, without reloading the page.
    assert alice.evaluate("window.notReloaded") is True
    assert bob.evaluate("window.notReloaded") is True

    for page, own in ((alice, "3"), (bob, "-1")):
        page.reload()
        expect(page.locator("#counter")).to_have_text(own)
        expect(page.locator("#shared-counter")).to_have_text("2")

    click(alice, "Reset")
    expect(alice.locator("#counter")).to_have_text("0")
    bob.reload()
    expect(bob.locator("#counter")).to_have_text("-1")


def test_the_page_works_without_javascript(service, new_page):
    page = new_page(java_script_enabled=False)
    page.goto(service.url + "/")
    expect(page.locator("#counter")).to_have_text("0")

    for label, expected in [("Increment", "1"), ("Increment", "2"), ("Decrement", "1")]:
        with page.expect_navigation():
            click(page, label)
        assert page.url == service.url + "/"  # the form post was answered with a redirect
        expect(page.locator("#counter")).to_have_text(expected)

    with page.expect_navigation():
        click(page, "Take a shared number")
    assert page.url == service.url + "/?taken=1"
    expect(page.locator("#taken-number")).to_have_text("1")
    expect(page.locator("#shared-counter")).to_have_text("1")

    with page.expect_navigation():
        click(page, "Reset")
    expect(page.locator("#counter")).to_have_text("0")


def test_the_page_loads_only_its_own_resources_without_errors(service, new_page):
    page = new_page()
    requested, problems = [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(service.url + "/")
    click(page, "Increment")
    expect(page.locator("#counter")).to_have_text("1")
    assert problems == []
    assert requested and all(url.startswith(service.url + "/") for url in requested)
    # Every button is reachable by its accessible name, and the numbers announce changes.
    for label in ("Increment", "Decrement", "Reset", "Take a shared number"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.locator("#counter")).to_have_attribute("aria-live", "polite")
    expect(page.locator("h1")).to_have_text("Session counter")


def test_the_page_says_so_when_the_store_is_down(
    granian_server, redis_url, redis_server, new_page, request
):
    env = {"FLASK_SESSION_TYPE": "redis", "FLASK_SESSION_REDIS_URL": redis_url}
    service = granian_server("app:app", env=env, workers=2, threads=4)
    page = new_page()
    page.goto(service.url + "/")
    click(page, "Increment")
    expect(page.locator("#counter")).to_have_text("1")

    request.addfinalizer(redis_server.start)
    redis_server.stop()
    click(page, "Increment")
    expect(page.locator("#status")).to_have_text(re.compile("session store cannot be reached"))
    expect(page.locator("#counter")).to_have_text("1")  # nothing pretended

    redis_server.start()  # the test's Redis keeps nothing across a restart: a new session
    click(page, "Decrement")
    expect(page.locator("#counter")).to_have_text("-1")
    expect(page.locator("#status")).to_have_text("")
