"""The search page end to end: the real `ytnotes serve` process, driven in Debian's headless Chromium by
Playwright. The browser reaches nothing outside this machine: requests to the YouTube embed are answered with a
stand-in page (and recorded), any other outside request is refused (and recorded, so a test fails on it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, Playwright, Route, ViewportSize, sync_playwright
from test_server import serving

from conftest import EXPECTATIONS, run_cli

CHROMIUM = Path("/usr/bin/chromium")
#: As root, Chromium needs --no-sandbox; the rest keep it from reaching for Google's services at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
EMBED = "https://www.youtube-nocookie.com/"
#: The stand-in answers the handshake of YouTube's iframe API, as the real embed does once it has loaded.
PLAYER_STUB = (
    "<!doctype html><title>player</title><body style='background:#111;color:#eee'>YouTube player<script>"
    "addEventListener('message', e => { let d; try { d = JSON.parse(e.data) } catch { return }"
    " if (d.event === 'listening') parent.postMessage(JSON.stringify({event: 'onReady', id: d.id,"
    " channel: 'widget', info: null}), '*') })</script></body>"
)
#: Screenshots go here when it is set (to look at them), else to each test's temporary folder.
SHOTS = os.environ.get("YTNOTES_SCREENSHOTS")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}
Scheme = Literal["light", "dark"]
#: The question whose answer the sample expectations pin to one second of one video (test_cli checks rank one).
ITEM = EXPECTATIONS["ask"][1]


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (`make test` installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; in CI it must be there")
        pytest.skip(reason)
    with sync_playwright() as p:
        yield p


class Browser:
    """One Chromium with a fresh profile, whose pages may only reach loopback and the (stubbed) YouTube embed."""

    def __init__(self, playwright: Playwright, profile: Path) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context: BrowserContext = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        self.context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith("http://127.0.0.1:"):
            route.continue_()
            return
        self.outside.append(url)
        if url.startswith(EMBED):
            route.fulfill(status=200, content_type="text/html", body=PLAYER_STUB)
        else:
            route.abort()

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)
        return page

    def _dialog(self, dialog: Dialog) -> None:
        self.errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()


@pytest.fixture(scope="module")
def browser(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(playwright, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.context.close()


@pytest.fixture(scope="module")
def server(sample_index: Path) -> Iterator[str]:
    with serving(sample_index) as (url, _):
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    browser.outside.clear()
    browser.errors.clear()
    page = browser.page()
    yield page
    page.close()
    assert browser.errors == []
    assert all(url.startswith(EMBED) for url in browser.outside), browser.outside


def test_ask_click_a_moment_and_it_plays(page: Page, server: str, tmp_path: Path) -> None:
    page.goto(server + "/")
    page.get_by_text("17 notes").wait_for()  # the footer: what is indexed
    page.locator("#intro").click()  # away from the box, which has the focus on load
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(ITEM["q"])
    page.keyboard.press("Enter")

    first = page.locator(".result-list .result").first
    first.wait_for()
    assert parse_qs(urlsplit(page.url).query) == {"q": [ITEM["q"]]}  # shareable: the query is in the URL
    stamp = f"[{hms(ITEM['t'])}]"
    play = first.locator(".play").first
    assert play.inner_text() == stamp
    expected = httpx.get(f"{server}/api/ask", params={"q": ITEM["q"]}, timeout=30).json()["results"][0]
    assert first.locator(".title").inner_text() == expected["title"]
    assert first.locator(".source").inner_text() == " · ".join(
        [expected["channel"], " › ".join(expected["heading"])]
    )
    assert first.locator("mark").inner_text() == expected["sentence"]  # the matching sentence, highlighted
    watch = f"https://www.youtube.com/watch?v={ITEM['video']}&t={ITEM['t']}s"
    link = first.locator("a.open").first
    assert (link.get_attribute("href"), link.get_attribute("target")) == (watch, "_blank")
    assert page.locator("#answer .play").inner_text() == stamp  # the one-line answer on top

    play.click()
    frame = page.locator("#player iframe")
    frame.wait_for()
    src = frame.get_attribute("src") or ""
    assert src.startswith(f"https://www.youtube-nocookie.com/embed/{ITEM['video']}?")
    assert parse_qs(urlsplit(src).query)["start"] == [str(ITEM["t"])]
    assert page.locator("#player-link").get_attribute("href") == watch
    page.frame_locator("#player iframe").get_by_text("YouTube player").wait_for()
    page.locator("#player[data-embed=ready]").wait_for()  # the embed answered: no "cannot be played" note
    assert page.locator("#player-offline").is_hidden()
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # Keyboard only: Escape closes the player; Enter on a moment plays it again.
    play.focus()
    page.keyboard.press("Escape")
    assert page.locator("#player").is_hidden() and page.locator("#player iframe").count() == 0
    page.keyboard.press("Enter")
    frame.wait_for()
    assert f"start={ITEM['t']}" in (frame.get_attribute("src") or "")


def test_a_shared_link_opens_in_locate_mode_and_back_returns(page: Page, server: str) -> None:
    claim = "the heaviness of being successful was replaced by the lightness of being a beginner"
    page.goto(f"{server}/?mode=locate&q={claim.replace(' ', '+')}")
    card = page.locator("#results .result")
    card.wait_for()
    assert page.locator("#mode-locate").is_checked()
    assert page.locator("#q").input_value() == claim
    assert card.locator(".answer-label").text_content() == "Said here"
    assert "lightness of being a beginner" in card.locator("mark").inner_text()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\]", card.locator(".play").first.inner_text())

    page.locator("label[for=mode-ask]").click()  # the same words, asked as a question
    page.locator(".result-list").wait_for()
    assert "mode=locate" not in page.url and page.locator("#answer").is_visible()
    page.go_back()
    page.locator("#results .result .answer-label").wait_for()
    assert page.locator("#results .result .answer-label").text_content() == "Said here"
    assert page.locator("#mode-locate").is_checked() and "mode=locate" in page.url


def test_an_answer_that_leads_into_a_list_shows_its_start(page: Page, server: str) -> None:
    """The answer on top is the API's answer line: "three rules of thumb ...:" goes on with the first rule."""
    question = "what rules of thumb does Dalio give policymakers?"
    expected = httpx.get(f"{server}/api/ask", params={"q": question}, timeout=30).json()
    assert expected["answer_text"].startswith(expected["answer"]["sentence"] + " Don't have debt rise")
    page.goto(f"{server}/?q={question.replace(' ', '+')}")
    page.locator(".result-list .result").first.wait_for()
    assert page.locator("#answer .answer-text").inner_text() == expected["answer_text"]


def test_no_good_answer_is_said_and_the_closest_passages_still_shown(page: Page, server: str) -> None:
    page.goto(f"{server}/?q=blorf+snarglewump+trindle+vox")
    page.locator(".result-list .result").first.wait_for()
    assert (
        page.locator("#status").inner_text().startswith("No good answer: nothing in the notes answers this")
    )
    assert page.locator("#answer").is_hidden()


def test_invalid_input_shows_the_servers_message(page: Page, server: str) -> None:
    page.goto(f"{server}/?q=sleep&k=0")
    status = page.locator("#status.error")
    status.wait_for()
    assert status.inner_text() == "k must be a whole number from 1 to 50, not '0'"
    assert page.locator(".result").count() == 0


def test_phone_screen(page: Page, server: str, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server}/?q={ITEM['q'].replace(' ', '+')}")
    page.locator(".result-list .result").first.wait_for()
    page.locator(".result-list .play").first.click()
    player = page.locator("#player")
    player.locator("iframe").wait_for()
    box = player.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["y"] < 740
    # Nothing sticks out sideways: no horizontal scrolling on a narrow screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for locator in (page.locator("#q"), page.locator("button[type=submit]"), page.locator(".result").first):
        rect = locator.bounding_box()
        assert rect is not None and rect["x"] >= 0 and rect["x"] + rect["width"] <= 360
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


XSS_NOTE = """---
title: "Escaping talk <img src=x onerror=window.pwned=1>"
videoId: Xss_Test-01
---

From: [[hax]]

## Headings &lt;img src=x onerror=window.pwned=2&gt; too

<a class="yt-timestamp" data-t="00:01:05">[00:01:05]</a> The speaker typed &lt;script&gt;window.pwned=3&lt;/script&gt;
into the comment box of the marmalade forum, and it escaped nothing.

<a class="yt-timestamp" data-t="00:02:10">[00:02:10]</a> Then &lt;img src=x onerror="window.pwned=4"&gt; went into
the bio of the marmalade forum, and &lt;a href="javascript:window.pwned=5"&gt;a link&lt;/a&gt; into the footer.
"""


def test_note_text_is_shown_as_text_and_runs_nothing(browser: Browser, page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes" / "hax"
    notes.mkdir(parents=True)
    (notes / "xss.md").write_text(XSS_NOTE, encoding="utf-8")
    run_cli("build", str(notes.parent), index=tmp_path / "index", check=True)
    with serving(tmp_path / "index") as (url, _):
        page.goto(f"{url}/?q=what+went+into+the+bio+of+the+marmalade+forum")
        card = page.locator(".result-list .result").first
        card.wait_for()
        text = page.locator("main").inner_text()
        for shown in (
            "Escaping talk <img src=x onerror=window.pwned=1>",
            "Headings <img src=x onerror=window.pwned=2> too",
            '<img src=x onerror="window.pwned=4">',
            '<a href="javascript:window.pwned=5">a link</a>',
        ):
            assert shown in text
        page.locator("#answer .play").click()  # the title goes into the player's caption and frame title too
        page.locator("#player iframe").wait_for()
        assert "<img src=x" in page.locator("#player-caption").inner_text()
        page.goto(f"{url}/?q=what+did+the+speaker+type+into+the+comment+box")
        page.locator(".result-list .result").first.wait_for()
        assert "<script>window.pwned=3</script>" in page.locator("main").inner_text()
        # Nothing the notes say became an element, and nothing ran.
        assert page.locator("main img, main script, main a[href^='javascript'], main [onerror]").count() == 0
        assert page.evaluate("window.pwned") is None
    assert browser.errors == []


def test_a_stopped_server_is_reported(page: Page, sample_index: Path) -> None:
    with serving(sample_index) as (url, _):
        page.goto(url + "/")
        page.get_by_text("17 notes").wait_for()
    page.locator("#q").fill("sleep")
    page.keyboard.press("Enter")
    status = page.locator("#status.error")
    status.wait_for()
    assert "server is not answering" in status.inner_text()


def shot_path(tmp_path: Path, name: str) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_active_filters_are_chips_with_a_clear_button(page: Page, server: str) -> None:
    page.goto(f"{server}/?q=what+is+a+good+life&channel=ted")
    page.locator(".result-list .result").first.wait_for()
    chip = page.locator("#filters .chip")
    assert chip.count() == 1 and chip.inner_text().replace("\n", " ").startswith("Channel: ted")
    assert {s.inner_text().split(" · ")[0] for s in page.locator(".result-list .source").all()} == {"ted"}
    chip.locator("button").click()  # clear it: the same question over every channel
    page.wait_for_url(re.compile(r"^(?!.*channel=)"))
    page.locator(".result-list .result").first.wait_for()
    assert page.locator("#filters").is_hidden() and page.locator("#filters .chip").count() == 0
    page.wait_for_function("document.querySelectorAll('.result-list .result').length > 1")
    channels = {s.inner_text().split(" · ")[0] for s in page.locator(".result-list .source").all()}
    assert len(channels) > 1, channels
    page.go_back()  # the filter comes back with the address
    page.locator("#filters .chip").wait_for()
    assert "channel=ted" in page.url
    # A video filter from a shared link, and both at once.
    video = ITEM["video"]
    page.goto(f"{server}/?q=what+is+it+about&video={video}&channel=3blue1brown")
    page.locator(".result-list .result").first.wait_for()
    chips = page.locator("#filters .chip")
    assert [c.get_attribute("data-filter") for c in chips.all()] == ["channel", "video"]
    assert video in chips.nth(1).inner_text()
    chips.nth(1).get_by_role("button", name="Clear the video filter").click()
    page.wait_for_url(re.compile(r"^(?!.*video=)"))
    assert [c.get_attribute("data-filter") for c in page.locator("#filters .chip").all()] == ["channel"]
    # locate takes no filters: none shown.
    page.goto(f"{server}/?mode=locate&q=stay+hungry+stay+foolish&channel=ted")
    page.locator("#results .result").wait_for()
    assert page.locator("#filters").is_hidden()


def test_an_unknown_channel_is_a_short_message_and_its_chip_clears_it(page: Page, server: str) -> None:
    channels = ["3blue1brown", "andrejkarpathy", "gordonramsay", "officialpsy", "veritasium", "rickastley"]
    page.goto(f"{server}/?q=sleep&channel=nobody")
    status = page.locator("#status.error")
    status.wait_for()
    text = status.inner_text()
    assert text.startswith("no notes from channel 'nobody'") and len(text) < 80, text
    assert not any(name in text for name in channels), text
    page.locator("#filters .chip button").click()
    page.locator(".result-list .result").first.wait_for()
    assert page.locator("#status.error").count() == 0


def test_when_the_embed_cannot_load_the_player_says_so_and_offers_the_link(
    browser: Browser, page: Page, server: str, tmp_path: Path
) -> None:
    watch = f"https://www.youtube.com/watch?v={ITEM['video']}&t={ITEM['t']}s"
    page.route(re.compile(r"^https://"), lambda route: route.abort())  # YouTube blocked: nothing answers
    page.goto(f"{server}/?q={ITEM['q'].replace(' ', '+')}")
    page.locator("#answer .play").click()
    note = page.locator("#player-offline")
    note.wait_for(timeout=15_000)  # after the embed's time to answer
    assert page.locator("#player").get_attribute("data-embed") == "unavailable"
    assert "cannot be played here" in note.inner_text()
    link = note.get_by_role("link")
    assert (
        link.get_attribute("href") == watch and link.inner_text() == f"Open [{hms(ITEM['t'])}] on YouTube ↗"
    )
    page.screenshot(path=str(shot_path(tmp_path, "embed-blocked.png")))
    page.locator("#player-close").click()
    assert note.is_hidden()
    # Offline: said at once.
    browser.context.set_offline(True)
    try:
        page.locator(".result-list .play").first.click()
        note.wait_for(timeout=2_000)
        assert page.locator("#player").get_attribute("data-embed") == "unavailable"
    finally:
        browser.context.set_offline(False)


#: WCAG's contrast of every text on the page against what is behind it (alpha and opacity blended).
CONTRASTS = """() => {
  const parse = (c) => {
    let m = c.match(/^rgba?\\(([^)]+)\\)/);
    if (m) { const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p[3] ?? 1]; }
    m = c.match(/^color\\(srgb ([^)]+)\\)/);
    if (m) { const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number); return [p[0] * 255, p[1] * 255, p[2] * 255, p[3] ?? 1]; }
    throw new Error("colour " + c);
  };
  const lum = (rgb) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(rgb[0]) + 0.7152 * f(rgb[1]) + 0.0722 * f(rgb[2]);
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
  const behind = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] === 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255]);
  };
  const out = [];
  const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = texts.nextNode(); t; t = texts.nextNode()) {
    const node = t.parentElement;
    if (!t.textContent.trim() || !node.getClientRects().length || node.closest("[hidden], .sr-only")) continue;
    let opacity = 1;
    for (let n = node; n; n = n.parentElement) opacity *= Number(getComputedStyle(n).opacity);
    const bg = behind(node);
    const c = parse(getComputedStyle(node).color);
    const fg = over([c[0], c[1], c[2], c[3] * opacity], bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({ text: t.textContent.trim().slice(0, 30), cls: node.className, ratio: (a + 0.05) / (b + 0.05) });
  }
  const box = document.getElementById("q");
  const p = parse(getComputedStyle(box, "::placeholder").color);
  const bg = behind(box);
  const [a, b] = [lum(over(p, bg)), lum(bg)].sort((x, y) => y - x);
  out.push({ text: "placeholder", cls: "::placeholder", ratio: (a + 0.05) / (b + 0.05) });
  return out;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa_in_both_themes(
    page: Page, server: str, scheme: Scheme, tmp_path: Path
) -> None:
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size(DESKTOP)
    checked: dict[str, float] = {}

    def check(where: str) -> None:
        for item in page.evaluate(CONTRASTS):
            key = f"{where}: {item['cls'] or '-'} {item['text']!r}"
            checked[key] = item["ratio"]
        low = {k: round(r, 2) for k, r in checked.items() if r < 4.5}
        assert not low, low

    page.goto(f"{server}/")  # the intro, its keys, the footer, the placeholder
    page.get_by_text("17 notes").wait_for()
    check("intro")
    page.goto(
        f"{server}/?q={ITEM['q'].replace(' ', '+')}&channel=stanford"
    )  # a chip, results, a playing moment
    page.locator(".result-list .result").first.wait_for()
    page.locator(".result-list .play").first.click()
    page.locator("#player[data-embed=ready]").wait_for()
    check("results")
    page.screenshot(path=str(shot_path(tmp_path, f"desktop-{scheme}.png")))
    page.goto(f"{server}/?mode=locate&q=the+recipe+calls+for+two+cups+of+flour")  # not found: the weak card
    page.locator(".result.weak").wait_for()
    check("not found")
    page.goto(f"{server}/?q=sleep&channel=nobody")  # an error
    page.locator("#status.error").wait_for()
    check("error")
    assert any(k.startswith("results: chip-value") for k in checked) and any("where" in k for k in checked)
    assert any("also-note" in k for k in checked)  # the other note's name, under its moment


@pytest.fixture(scope="module")
def phone(playwright: Playwright) -> Iterator[BrowserContext]:
    """A touch screen: a phone's width, touch, no hover (Chromium's mobile emulation)."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    context = chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("http://127.0.0.1:")
            else route.fulfill(status=200, content_type="text/html", body=PLAYER_STUB)
            if route.request.url.startswith(EMBED)
            else route.abort()
        ),
    )
    yield context
    context.close()
    chromium.close()


PLACEHOLDER_FITS = """() => {
  const box = document.getElementById("q");
  const style = getComputedStyle(box);
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return { text: box.placeholder, width: ctx.measureText(box.placeholder).width, room };
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_on_a_touch_phone_the_placeholder_fits_and_no_keyboard_hints_show(
    phone: BrowserContext, server: str, scheme: Scheme, tmp_path: Path
) -> None:
    page = phone.new_page()
    page.emulate_media(color_scheme=scheme)
    try:
        page.goto(f"{server}/")
        page.get_by_text("17 notes").wait_for()
        assert page.evaluate("matchMedia('(hover: none)').matches")
        assert page.locator(".keys").is_hidden() and page.locator(".box .hint").is_hidden()
        for mode in ("ask", "locate"):
            page.locator(f"label[for=mode-{mode}]").click()
            fit = page.evaluate(PLACEHOLDER_FITS)
            assert fit["text"] and fit["width"] <= fit["room"], (mode, fit)
        page.screenshot(path=str(shot_path(tmp_path, f"phone-{scheme}-locate.png")))
        page.goto(f"{server}/?q={ITEM['q'].replace(' ', '+')}&channel=stanford")
        page.locator(".result-list .result").first.wait_for()
        chip = page.locator("#filters .chip").bounding_box()
        assert chip is not None and chip["x"] >= 0 and chip["x"] + chip["width"] <= PHONE["width"]
        page.locator(".result-list .play").first.click()
        page.locator("#player[data-embed=ready]").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(shot_path(tmp_path, f"phone-{scheme}.png")))
    finally:
        page.close()


def test_keyboard_hints_show_where_there_is_a_keyboard(page: Page, server: str) -> None:
    page.goto(f"{server}/")
    page.get_by_text("17 notes").wait_for()
    assert not page.evaluate("matchMedia('(hover: none)').matches")
    assert page.locator(".keys").is_visible()
    page.locator("#intro").click()  # the box loses focus: its "/" hint shows
    assert page.locator(".box .hint").is_visible()
