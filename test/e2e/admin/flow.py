"""The browser flow of test/e2e/admin_test.sh: headless Chromium, driven by Selenium, through the
four screens of envsync-admin, checked in the DOM and against the databases.

Prints one line per check, "ok - ..." or "not ok - ..." (with "# " diagnostics after it), which
the shell test numbers as TAP, and END once it ran to its end. Screenshots go to $OUT.

Environment (set by admin_test.sh): ADMIN_URL, ADMIN_BIN, ADMIN_DB, ADMIN_SOCKET_DB, CLUSTER,
ANNA_PASSWORD, GUEST_PASSWORD, OUT, WORK.
"""

import base64
import datetime
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, NoSuchElementException,
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ENV = os.environ
URL = ENV["ADMIN_URL"].rstrip("/")
OUT = ENV["OUT"]
WORK = ENV["WORK"]
CLUSTER = ENV["CLUSTER"]
ANNA, GUEST = "anna_e2e", "guest_e2e"
# The browser's time zone: times on the page, and the one scheduled, are in it.
ZONE, OFFSET = "Asia/Kolkata", datetime.timezone(datetime.timedelta(hours=5, minutes=30))
HOSTILE_TITLE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HOSTILE_MODULE = "<script>window.__pwned=4</script>"
HOSTILE_TABLE = 'shop."<b onclick=alert(1)>notes"'

# --- reporting -----------------------------------------------------------------------------------


def check(description, passed, diagnostic=None):
    print(("ok - " if passed else "not ok - ") + description, flush=True)
    if not passed and diagnostic is not None:
        for line in str(diagnostic).splitlines() or [""]:
            print("# " + line, flush=True)
    return passed


def equal(description, got, want):
    return check(description, got == want, f"got:  {got!r}\nwant: {want!r}")


def contains(description, text, part):
    return check(description, part in (text or ""), f"got:  {text!r}\nwant a part: {part!r}")


# --- the databases -------------------------------------------------------------------------------


def sql(side, query, *options):
    """A query as the cluster's superuser (or another role: -U role); its output as psql -At prints it."""
    done = subprocess.run([CLUSTER, "psql", side, "-At", *options, "-c", query], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side}: {query}: {done.stderr.strip()}")
    return done.stdout.strip()


def prod(query):
    return sql("prod", query)


def as_anna(query):
    """A query in a session of the operator's own role (envsync.messages shows their messages)."""
    return sql("prod", query, "-U", ANNA)


def change_id(comparison, table, key):
    return prod(f"SELECT change_id FROM envsync.changes WHERE comparison_id = {comparison} "
                f"AND table_name::text = '{table}' AND array_to_string(key, ', ') = '{key}'")


def selected(change):
    return prod(f"SELECT selected FROM envsync.changes WHERE change_id = {change}")


def admin_connections(user):
    return int(prod("SELECT count(*) FROM pg_stat_activity "
                    f"WHERE application_name = 'envsync-admin' AND usename = '{user}'"))


# --- HTTP without the browser --------------------------------------------------------------------


def request(base, method, path, body=None, headers=None, context=None):
    """(status, headers, JSON body or None) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20, context=context) as res:
            raw, status, got = res.read(), res.status, res.headers
    except urllib.error.HTTPError as e:
        raw, status, got = e.read(), e.code, e.headers
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = None
    return status, got, answer


def api_login(base, user, password, context=None):
    """Logs in through the API: (status, cookie header, answer, response headers)."""
    status, headers, answer = request(base, "POST", "/api/login",
                                      {"user": user, "password": password, "time_zone": ZONE},
                                      {"Content-Type": "application/json", "Origin": base}, context)
    cookie = (headers.get("Set-Cookie") or "").split(";")[0]
    return status, cookie, answer, headers


def start_admin(name, *args):
    """Another envsync-admin on a free port: (process, base URL)."""
    log = open(os.path.join(WORK, f"admin-{name}.log"), "w")
    process = subprocess.Popen([ENV["ADMIN_BIN"], "--port", "0", *args], stderr=log, stdout=log)
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(log.name) as f:
            m = re.search(r"listening on (https?://127\.0\.0\.1:\d+)/", f.read())
        if m:
            return process, m.group(1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"envsync-admin {name} did not start")


def stop(process):
    process.terminate()
    return process.wait(timeout=10)


# --- the browser ---------------------------------------------------------------------------------

os.environ["TZ"] = ZONE
options = Options()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--lang=en-US"):
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ZONE})
shots = 0


def shot(name):
    """A screenshot of the whole page for people to look at."""
    global shots
    shots += 1
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})["data"]
    with open(os.path.join(OUT, f"{shots:02d}-{name}.png"), "wb") as f:
        f.write(base64.b64decode(png))


def wait(condition, timeout=10):
    """condition() once it is truthy, or None after timeout seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        if time.time() > deadline:
            return None
        time.sleep(0.1)


def find(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def finds(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def stable(read):
    """read(), again when the page redrew what it reads meanwhile."""
    for _ in range(50):
        try:
            return read()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return read()


def text(css):
    """The element's text, None if there is none; read again when the page redrew it meanwhile."""
    for _ in range(50):
        try:
            return find(css).text
        except NoSuchElementException:
            return None
        except StaleElementReferenceException:
            time.sleep(0.1)
    return None


def click(css):
    wait(lambda: find(css).is_enabled() and find(css))
    find(css).click()


def shown(css, timeout=10):
    return wait(lambda: find(css).is_displayed(), timeout)


def go(screen):
    driver.find_element(By.CSS_SELECTOR, f'#nav a[data-screen="{screen}"]').click()
    wait(lambda: finds(".view > h1"))


def set_value(css, value):
    driver.execute_script("const el = arguments[0]; el.value = arguments[1];"
                          "el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change'));",
                          find(css), value)


def login(user, password):
    shown("#login-user")
    find("#login-user").clear()
    find("#login-user").send_keys(user)
    find("#login-password").send_keys(password)
    click("#login-submit")


def module_on(module):
    return find(f'.module[data-module="{module}"] input').is_selected()


def module_locked(module):
    return not find(f'.module[data-module="{module}"] input').is_enabled()


def toggle_module(module):
    find(f'.module[data-module="{module}"] .slider').click()


def tab(kind):
    click(f'.tab[data-kind="{kind}"]')
    wait(lambda: "active" in find(f'.tab[data-kind="{kind}"]').get_attribute("class"))


def tab_records():
    return sorted(f'{r.get_attribute("data-table")}|{r.get_attribute("data-key")}'
                  for r in finds("#tab-panel tr.change"))


def record_check(change):
    return f'tr[data-change="{change}"] .record-check'


def toggle_record(change, want):
    """Clicks a record's checkbox; waits until the page shows the database's answer."""
    find(record_check(change)).click()
    wait(lambda: selected(change) == ("t" if want else "f") and
         find(record_check(change)).is_selected() == want, 5)


def no_script_ran():
    return driver.execute_script(
        "return window.__pwned === undefined && document.title !== 'pwned' &&"
        " document.querySelectorAll('img').length === 0 && document.scripts.length === 1")


def no_alert():
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def message(sync, title):
    for item in finds(f'article.message[data-sync="{sync}"]'):
        if item.find_element(By.CSS_SELECTOR, ".title").text == title:
            return item
    return None


def open_message(sync, title):
    item = wait(lambda: message(sync, title))
    item.find_element(By.CSS_SELECTOR, ".message-head").click()
    wait(lambda: message(sync, title).find_element(By.CSS_SELECTOR, ".message-body").is_displayed())
    return message(sync, title)


def summary_rows(container):
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
            for row in container.find_elements(By.CSS_SELECTOR, "table.summary tbody tr")]


def db_summary(sync):
    """The summary of envsync.syncs as the page's table shows it (labels of the sample's modules)."""
    labels = {"cms": "CMS", "sliders": "Sliders", "gallery": "Gallery folders", "menus": "Menus",
              "catalogue": "Catalogue", "mobile_app": "System config (mobile app JSONs)"}
    rows = json.loads(prod(f"SELECT summary FROM envsync.syncs WHERE id = {sync}"))
    return [[labels.get(m["module"], m["module"]), str(m["inserted"]), str(m["updated"]), str(m["deleted"])]
            for m in rows]


def local_minute(iso):
    """A time of the database as the page shows it in the browser's zone."""
    return prod(f"SELECT to_char('{iso}'::timestamptz AT TIME ZONE '{ZONE}', 'YYYY-MM-DD HH24:MI')") + " (UTC+05:30)"


def compare_and_wait():
    before = prod("SELECT coalesce(max(id), 0) FROM envsync.comparisons")
    click("#start-compare")
    wait(lambda: text("#compare-statement"), 60)
    return prod(f"SELECT max(id) FROM envsync.comparisons WHERE id > {before}")


# =================================================================================================
try:
    # --- logging in -------------------------------------------------------------------------------
    driver.get(URL + "/")
    login(GUEST, ENV["GUEST_PASSWORD"])
    refusal = wait(lambda: text("#login-error .error"))
    contains("a role without envsync_operator is refused at login", refusal,
             f'Role "{GUEST}" may not synchronize: it is not a member of envsync_operator')
    contains("the refusal says what to do", refusal, f'GRANT envsync_operator TO "{GUEST}"')
    equal("the refused role keeps no connection", admin_connections(GUEST), 0)
    shot("login-refused")

    login(ANNA, "wrong password")
    contains("a wrong password is refused in PostgreSQL's words", wait(lambda: text("#login-error .error")),
             f'password authentication failed for user "{ANNA}"')
    login(ANNA, ENV["ANNA_PASSWORD"])
    check("an operator logs in with their own role and password", shown("#modules .module"))
    equal("the page names the user", text("#user"), ANNA)
    equal("the user's two connections are their own role's", admin_connections(ANNA), 2)
    equal("the session cookie is out of JavaScript's reach (HttpOnly)", driver.execute_script("return document.cookie"), "")

    # --- Synchronization: direction, mode, modules ------------------------------------------------
    equal("the directions are the manual's", [l.text for l in finds("#direction label")], ["PROD > TEST", "TEST > PROD"])
    check("TEST > PROD is chosen", finds("#direction input")[1].is_selected())
    equal("the modes are the manual's", [l.text.split(" (")[0] for l in finds("#mode label")],
          ["Synchronize all records", "Synchronize only new records"])
    toggle_module("mobile_app")
    wait(lambda: module_on("gallery"))
    check("choosing the mobile-app config switches on gallery folders",
          wait(lambda: module_on("mobile_app") and module_on("gallery")))
    check("gallery folders cannot be switched off while the mobile app needs them", wait(lambda: module_locked("gallery")))
    contains("and the screen says why", text('.module[data-module="gallery"] .why'),
             "Switched on because System config (mobile app JSONs) requires it: the mobile app has mandatory images.")
    folders = wait(lambda: [l.text for l in finds('fieldset.folders[data-module="gallery"] label.folder[data-key]')])
    equal("with gallery folders on, the picker lists the folders of the source (TEST)", folders,
          prod("SELECT string_agg(record->>'path', '|' ORDER BY key::int) FROM sync_scope_choices('test', 'gallery')").split("|"))
    shot("modules-mobile-app")
    toggle_module("mobile_app")
    wait(lambda: not module_on("gallery"))
    check("switching the mobile app off releases gallery folders",
          wait(lambda: not module_on("gallery") and not module_locked("gallery")))
    click("#select-all-modules")
    wait(lambda: all(i.is_selected() for i in finds("#modules input")))
    equal("Select all switches on every module",
          stable(lambda: [m.get_attribute("data-module") for m in finds("#modules .module.on")]),
          prod("SELECT string_agg(DISTINCT module, '|' ORDER BY module) FROM envsync.synced_tables").split("|"))
    contains("a module's hostile name is shown as text", text("#modules"), HOSTILE_MODULE)
    # Only the mobile app's folder.
    click('fieldset.folders[data-module="gallery"] input.all-folders')
    wait(lambda: not any(i.is_selected() for i in finds('fieldset.folders label.folder[data-key] input')))
    click('fieldset.folders label.folder[data-key="1"] input')
    wait(lambda: find('fieldset.folders label.folder[data-key="1"] input').is_selected())

    # --- comparing, with envsync's progress ---------------------------------------------------------
    # TEST holds a lock on a table the comparison reads, so it waits there for a while: the page
    # shows the step envsync reported meanwhile.
    locker = subprocess.Popen([CLUSTER, "psql", "test", "-q", "-c", "BEGIN", "-c",
                               "LOCK TABLE shop.sliders IN ACCESS EXCLUSIVE MODE", "-c", "SELECT pg_sleep(4)",
                               "-c", "COMMIT"], stdout=subprocess.DEVNULL)
    wait(lambda: sql("test", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                             "WHERE c.relname = 'sliders' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1")
    tables = prod("SELECT string_agg(table_name::text || ' (' || module || ')', E'\\n' ORDER BY module, position) "
                  "FROM envsync.synced_tables").split("\n")
    before = prod("SELECT coalesce(max(id), 0) FROM envsync.comparisons")
    click("#start-compare")
    progress = wait(lambda: re.fullmatch(r"Step (\d+) of (\d+): comparing (.+)", text("#compare-progress .progress-text") or ""), 20)
    blocked = locker.poll() is None   # the comparison cannot be done yet
    step = int(progress.group(1)) if progress else 0
    check("while the comparison runs, its progress shows the step envsync reports",
          progress and blocked and int(progress.group(2)) == len(tables) and progress.group(3) == tables[step - 1],
          f"{text('#compare-progress .progress-text')!r}, still running: {blocked}")
    check("and the button waits for it", not find("#start-compare").is_enabled())
    equal("the progress bar is at that step", [find("#compare-progress progress").get_attribute(a) for a in ("value", "max")],
          [str(step), str(len(tables))])
    shot("comparing")
    locker.wait(timeout=20)
    statement = wait(lambda: text("#compare-statement"), 30)
    comparison = prod(f"SELECT max(id) FROM envsync.comparisons WHERE id > {before}")
    equal("when it is done, the statement gives the comparison's result", statement,
          f"Comparison {comparison} is finished: TEST > PROD, 6 conflicts, 8 new, 4 modified and 1 deleted record.")
    equal("and says the e-mail was sent", text("#mail-statement"),
          "An e-mail with the result of the comparison was sent to anna@shop.example.")
    equal("the e-mail is queued for the operator", prod(
        f"SELECT count(*) FROM envsync.mail_status WHERE kind = 'comparison_finished' AND recipient = 'anna@shop.example' "
        f"AND subject LIKE 'Comparison {comparison} %'"), "1")
    equal("the comparison is recorded as the user's, with the folder chosen", prod(
        f"SELECT started_by || ' ' || scope::text FROM envsync.comparisons WHERE id = {comparison}"),
        f'{ANNA} {{"gallery": ["1"]}}')
    shot("compared")

    # --- Changes review -----------------------------------------------------------------------------
    click("#go-review")
    shown("#direction-statement")
    equal("the review states the direction", text("#direction-statement"),
          "Synchronization TEST > PROD: the selected records of TEST will be written into PROD.")
    expected = {
        "conflict": ["shop.cms_pages|10000001", "shop.menu_items|40", "shop.menu_items|6", "shop.products|10",
                     "shop.slides|10000002", "shop.slides|6"],
        "new": sorted([f"{HOSTILE_TABLE}|1", "shop.products|10000001", "shop.product_categories|10000001, 2",
                       "shop.cms_pages|10000002", "shop.cms_blocks|10000001", "shop.cms_blocks|10000002",
                       "shop.gallery_files|10000001", "shop.menu_items|10000001"]),
        "modified": ["shop.products|3", "shop.sliders|1", "shop.slides|1", "shop.system_settings|mobile_app.theme"],
        "deleted": ["shop.product_categories|5, 9"],
    }
    for kind, title in (("conflict", "Conflicts"), ("new", "New records"), ("modified", "Modified records"),
                        ("deleted", "Deleted records")):
        tab(kind)
        in_db = sorted(prod(f"SELECT string_agg(table_name::text || '|' || array_to_string(key, ', '), E'\\n') "
                            f"FROM envsync.changes WHERE comparison_id = {comparison} AND kind = '{kind}'").split("\n"))
        equal(f"tab {title} lists exactly its records", tab_records(), expected[kind])
        equal(f"tab {title}: the same as envsync.changes", tab_records(), in_db)
        equal(f"tab {title} shows its count", find(f'.tab[data-kind="{kind}"]').text,
              f"{title} {len(expected[kind])}")
        shot(f"review-{kind}")
    tab("conflict")
    reasons = {f'{r.get_attribute("data-table")}|{r.get_attribute("data-key")}': r.find_element(By.CSS_SELECTOR, ".reason").text
               for r in finds("#tab-panel tr.change")}
    equal("conflicts show their reason", reasons, {
        "shop.cms_pages|10000001": "created on both sides", "shop.menu_items|40": "deleted in target",
        "shop.menu_items|6": "changed on both sides", "shop.products|10": "changed in target",
        "shop.slides|10000002": "created in target", "shop.slides|6": "changed in target"})
    check("conflicts are unselected", not any(i.is_selected() for i in finds("#tab-panel .record-check")))

    # The column-level diff of a modified record.
    tab("modified")
    slider = change_id(comparison, "shop.sliders", "1")
    click(f'tr[data-change="{slider}"] .show-diff')
    shown("#diff-card")
    changed = [r.get_attribute("data-column") for r in finds("#diff-card tr.changed")]
    equal("the diff highlights exactly the changed columns", changed, ["settings"])
    equal("the diff lists every column in the table's order",
          [r.get_attribute("data-column") for r in finds("#diff-card tbody tr")], ["id", "name", "settings", "active"])
    source = find('#diff-card tr[data-column="settings"] td.source').text
    target = find('#diff-card tr[data-column="settings"] td.target').text
    contains("JSON is pretty-printed, the source's value beside", source, '"effects": {\n        "type": "slide",')
    contains("the target's", target, '"type": "fade",')
    contains("numbers keep their digits", source, '"duration": 0.50')
    shot("diff-modified")

    # Hostile content: a <script> in a CMS page, HTML in names; all of it inert text.
    tab("new")
    hostile = change_id(comparison, "shop.cms_pages", "10000002")
    equal("a hostile title is listed as text", find(f'tr[data-change="{hostile}"] td.label').text, HOSTILE_TITLE[:120])
    click(f'tr[data-change="{hostile}"] .show-diff')
    shown("#diff-card")
    equal("the diff shows the <script> of the CMS page as text",
          find('#diff-card tr[data-column="body"] td.source').text,
          '<p>Spring</p><script>window.__pwned=6; document.title="pwned"</script>')
    contains("hostile JSON keys too", find('#diff-card tr[data-column="meta"] td.source').text,
             '"<img src=x onerror=window.__pwned=7>": "<svg onload=window.__pwned=8>"')
    contains("the module with a hostile name is listed", text("#tab-panel"), HOSTILE_MODULE)
    contains("the table with a hostile name too", text("#tab-panel"), HOSTILE_TABLE)
    check("nothing of it ran: no alert, no injected element, no script but the admin's", no_alert() and no_script_ran())
    shot("diff-hostile")

    # Bulk selection: per tab, per module.
    new_ids = prod(f"SELECT string_agg(change_id::text, ',') FROM envsync.changes WHERE comparison_id = {comparison} AND kind = 'new'")
    count_new = lambda: prod(f"SELECT count(*) FILTER (WHERE selected) FROM envsync.changes WHERE change_id IN ({new_ids})")
    click("#tab-select-none")
    check("Select none deselects every record of the tab", wait(lambda: count_new() == "0"))
    wait(lambda: text("#selected-count") == "0 of 8 selected")
    click("#tab-select-all")
    check("Select all selects them again", wait(lambda: count_new() == "8"))
    wait(lambda: text("#selected-count") == "8 of 8 selected")
    menu_item = change_id(comparison, "shop.menu_items", "10000001")
    click('table.changes[data-module="menus"] .module-check')
    check("a module's checkbox deselects its records of the tab", wait(lambda: selected(menu_item) == "f"))
    check("and only those", wait(lambda: count_new() == "7"))
    click('table.changes[data-module="menus"] .module-check')
    check("and selects them again", wait(lambda: selected(menu_item) == "t"))

    # Selecting a child whose new parent is not selected: envsync's refusal, in plain words.
    link = change_id(comparison, "shop.product_categories", "10000001, 2")
    product = change_id(comparison, "shop.products", "10000001")
    toggle_record(link, False)
    toggle_record(product, False)
    equal("a record and its new parent are deselected", (selected(link), selected(product)), ("f", "f"))
    find(record_check(link)).click()
    refusal = wait(lambda: text("#selection-error .error"))
    contains("selecting the child alone is refused with envsync's words", refusal,
             'Record {"product_id": 10000001, "category_id": 2} of shop.product_categories needs record {"id": 10000001} of shop.products, which is new and not selected.')
    contains("the refusal says what to do", refusal, "What to do: Select the parent record too, or leave this record out.")
    contains("and leads in plain words", refusal, "A record refers to another one that would be missing.")
    check("the child stays unselected", wait(lambda: not find(record_check(link)).is_selected()) and selected(link) == "f")
    shot("selection-refused")
    toggle_record(product, True)
    toggle_record(link, True)
    equal("with its parent selected first, the child can be selected", (selected(product), selected(link)), ("t", "t"))

    # Deselecting a record, and overwriting a conflict.
    tab("modified")
    slide = change_id(comparison, "shop.slides", "1")
    toggle_record(slide, False)
    equal("a deselected record is left out", selected(slide), "f")
    tab("conflict")
    page = change_id(comparison, "shop.cms_pages", "10000001")
    equal("selecting a conflict is the manual's 'ignore the conflict and overwrite the data'",
          find(record_check(page)).get_attribute("aria-label"), "Ignore the conflict and overwrite the data")
    toggle_record(page, True)
    equal("the conflict is selected to be overwritten", selected(page), "t")
    shot("conflict-overwritten")

    # A record whose deletion would cascade into never-synced data (PROD's category clicks) is
    # marked; the user leaves it out, as an apply including it would be refused.
    category = change_id(comparison, "shop.product_categories", "5, 9")
    equal("envsync names what deleting the category link would take along", prod(
        f"SELECT cascades::text LIKE '%category_clicks%' FROM envsync.changes WHERE change_id = {category}"), "t")
    marked = []
    for kind in ("conflict", "new", "modified", "deleted"):
        tab(kind)
        marked += [r.get_attribute("data-change") for r in finds("#tab-panel tr.change") if r.find_elements(By.CSS_SELECTOR, ".cascade")]
    equal("the record that would cascade into never-synced data is marked, and only it", marked, [str(category)])
    shot("review-cascade")
    toggle_record(category, False)
    equal("the user leaves it out", selected(category), "f")

    # --- the test import: nothing saved ------------------------------------------------------------------
    equal("the manual's warning is shown", text("#schedule-section .notice.warning").split(".")[0],
          "Warning: after scheduling a synchronization, do not make any changes to the source and target environments until the synchronization is finished or cancelled")
    contains("and that drift since the review is detected before applying", text("#schedule-section .notice.warning"),
             "Before writing, envsync checks that no selected record changed since this review")
    check("the time zone is the user's, with its offset",
          re.fullmatch(r"Times are in your time zone, Asia/(Kolkata|Calcutta) \(UTC\+05:30\)\.", text("#time-zone")),
          text("#time-zone"))
    fingerprint = prod("SELECT shop_fixture.fingerprint()")
    click("#run-now")
    equal("the current time means now", text("#run-at-text"), "Runs now: the time chosen is this minute or before.")
    click("#test-import")
    click("#schedule")
    statement = wait(lambda: text("#run-statement"), 60)
    test_import = prod(f"SELECT max(id) FROM envsync.syncs WHERE comparison_id = {comparison} AND test_import")
    equal("the test import runs now and says nothing was saved", statement,
          f"Test import {test_import} finished: nothing was saved. A synchronization would write:")
    equal("with what a synchronization would write, per module", summary_rows(find("#run-result")), db_summary(test_import))
    equal("it is recorded as a succeeded test import of the user", prod(
        f"SELECT kind || ' ' || status || ' ' || scheduled_by FROM envsync.syncs WHERE id = {test_import}"),
        f"test import succeeded {ANNA}")
    equal("and PROD is unchanged", prod("SELECT shop_fixture.fingerprint()"), fingerprint)
    equal("its progress came from envsync", text("#run-progress .progress-text"), "Step 3 of 3: recording what was written")
    shot("test-import")

    # --- a synchronization a minute ahead, run by pg_cron ---------------------------------------------------
    click("#test-import")
    now = datetime.datetime.now(datetime.timezone.utc)
    due = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (due - now).total_seconds() < 15:
        due += datetime.timedelta(minutes=1)
    local = due.astimezone(OFFSET)
    set_value("#run-date", local.strftime("%Y-%m-%d"))
    set_value("#run-time", local.strftime("%H:%M"))
    equal("a time to come is shown with its offset", text("#run-at-text"), f"Runs on {local:%Y-%m-%d %H:%M} (UTC+05:30).")
    click("#schedule")
    statement = wait(lambda: text("#run-statement"))
    sync = prod(f"SELECT max(id) FROM envsync.syncs WHERE comparison_id = {comparison} AND NOT test_import")
    equal("Schedule synchronization schedules it at the time chosen in the user's zone", statement,
          f"Synchronization {sync} is scheduled for {local:%Y-%m-%d %H:%M} (UTC+05:30). "
          "Its message in Messages shows when it runs and lets you cancel it.")
    equal("envsync.syncs has it pending at that instant, scheduled by the user", prod(
        f"SELECT status || ' ' || (run_at = '{due.isoformat()}') || ' ' || scheduled_by FROM envsync.syncs WHERE id = {sync}"),
        f"pending true {ANNA}")
    shot("scheduled")

    go("messages")
    item = open_message(sync, "Synchronization process")
    equal("Messages: the pending run's message, with when it is scheduled",
          item.find_element(By.CSS_SELECTOR, ".scheduled").text, f"Scheduled for {local:%Y-%m-%d %H:%M} (UTC+05:30).")
    check("and a cancel link", item.find_element(By.CSS_SELECTOR, "button.cancel").text == "HERE")
    shot("message-pending")

    # While pg_cron's minute comes: what protects the sessions.
    cookie = "envsync_session=" + driver.get_cookie("envsync_session")["value"]
    csrf = request(URL, "GET", "/api/session", headers={"Cookie": cookie})[2]["csrf"]
    change = {"comparison_id": int(comparison), "selected": False, "change_ids": [int(slide)]}
    base_headers = {"Cookie": cookie, "Content-Type": "application/json", "Origin": URL}
    status, _, answer = request(URL, "POST", "/api/select", change, base_headers)
    equal("a change without a CSRF token is refused", (status, answer["error"]["message"]),
          (403, "The request was refused: it carries no valid CSRF token"))
    status, _, _ = request(URL, "POST", "/api/select", change, {**base_headers, "X-CSRF-Token": "0" * 64})
    equal("so is one with a wrong token", status, 403)
    status, _, _ = request(URL, "POST", "/api/select", change, {**base_headers, "X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    equal("and one from another origin, even with the token", status, 403)
    status, _, answer = request(URL, "POST", "/api/select", change, {**base_headers, "X-CSRF-Token": csrf})
    equal("with the session's token it goes through", status, 200)
    status, _, _ = request(URL, "GET", "/api/session", headers={"Cookie": cookie, "Host": "evil.example:80"})
    equal("a foreign Host name is turned away (DNS rebinding)", status, 421)
    status, headers, _ = request(URL, "GET", "/")
    csp = headers.get("Content-Security-Policy", "")
    check("the Content-Security-Policy allows no inline script",
          "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp, csp)
    equal("the page cannot be framed", headers.get("X-Frame-Options"), "DENY")

    before = admin_connections(ANNA)
    status, other, answer, headers = api_login(URL, ANNA, ENV["ANNA_PASSWORD"])
    equal("an API login opens the user's two connections", (status, admin_connections(ANNA)), (200, before + 2))
    check("the session cookie is HttpOnly and SameSite=Strict",
          re.fullmatch(r"envsync_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict", headers.get("Set-Cookie", "")),
          headers.get("Set-Cookie"))
    status, _, _ = request(URL, "POST", "/api/logout", {}, {"Cookie": other, "Content-Type": "application/json",
                                                            "Origin": URL, "X-CSRF-Token": answer["csrf"]})
    equal("logging out closes them", (status, admin_connections(ANNA)), (200, before))
    equal("the session is gone", request(URL, "GET", "/api/session", headers={"Cookie": other})[0], 401)

    short, short_url = start_admin("short", "--db", ENV["ADMIN_DB"], "--session-timeout", "2", "--session-lifetime", "2")
    status, short_cookie, _, _ = api_login(short_url, ANNA, ENV["ANNA_PASSWORD"])
    equal("a second admin with 2-second sessions logs the user in", (status, admin_connections(ANNA)), (200, before + 2))
    time.sleep(3.5)
    equal("its session expires", request(short_url, "GET", "/api/session", headers={"Cookie": short_cookie})[0], 401)
    check("and its connections are closed", wait(lambda: admin_connections(ANNA) == before, 5))
    equal("it stops on SIGTERM with status 0", stop(short), 0)

    trusting, trusting_url = start_admin("trust", "--db", ENV["ADMIN_SOCKET_DB"])
    status, _, answer, _ = api_login(trusting_url, ANNA, "anything")
    equal("a database that does not check passwords (trust) logs nobody in", (status, answer["error"]["message"]),
          (403, "Login refused: the database did not check the password"))
    stop(trusting)

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", f"{WORK}/key.pem", "-out", f"{WORK}/cert.pem"],
                   check=True, capture_output=True)
    secure, secure_url = start_admin("tls", "--db", ENV["ADMIN_DB"], "--tls-cert", f"{WORK}/cert.pem",
                                     "--tls-key", f"{WORK}/key.pem")
    context = ssl.create_default_context(cafile=f"{WORK}/cert.pem")
    status, headers, _ = request(secure_url, "GET", "/", context=context)
    equal("with a certificate and key it serves HTTPS", (secure_url.split(":")[0], status), ("https", 200))
    equal("with HSTS", headers.get("Strict-Transport-Security"), "max-age=31536000")
    status, _, answer, headers = api_login(secure_url, ANNA, ENV["ANNA_PASSWORD"], context)
    check("its session cookie is Secure and __Host-", status == 200 and re.fullmatch(
        r"__Host-envsync_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Secure", headers.get("Set-Cookie", "")),
        headers.get("Set-Cookie"))
    equal("it stops on SIGTERM with status 0", stop(secure), 0)
    refused = subprocess.run([ENV["ADMIN_BIN"], "--listen", "0.0.0.0"], capture_output=True, text=True)
    check("without TLS it refuses to listen beyond localhost (exit 2)", refused.returncode == 2 and
          "refusing to listen on 0.0.0.0 without TLS" in refused.stderr, refused.stderr)

    ran = wait(lambda: prod(f"SELECT status FROM envsync.syncs WHERE id = {sync}") in ("succeeded", "failed"),
               (due - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 75)
    equal("pg_cron runs the scheduled synchronization at its minute", prod(
        f"SELECT status || ' ' || (started_at >= run_at) FROM envsync.syncs WHERE id = {sync}"), "succeeded true")
    equal("the overwritten conflict is in PROD, the deselected record is not", prod(
        "SELECT (SELECT slug FROM shop.cms_pages WHERE id = 10000001) || ' ' || (SELECT caption FROM shop.slides WHERE id = 1)"),
        "spring-campaign Caption 1")

    # --- Messages: Success, with the counts per module -----------------------------------------------------------
    go("messages")
    success = wait(lambda: message(sync, "Success: Synchronization process"))
    check("the Success message is there, unread", success and "unread" in success.get_attribute("class"))
    check("the menu counts it as unread", find("#unread").is_displayed())
    item = open_message(sync, "Success: Synchronization process")
    equal("it shows the counts per module", summary_rows(item), db_summary(sync))
    contains("and its text, hostile module name included", item.find_element(By.CSS_SELECTOR, ".text").text,
             f"{HOSTILE_MODULE}: 1 inserted, 0 updated, 0 deleted")
    check("opening it marks it read", wait(lambda: as_anna(
        f"SELECT read FROM envsync.messages WHERE sync_id = {sync} AND title LIKE 'Success%'") == "t"))
    check("nothing hostile ran", no_alert() and no_script_ran())
    shot("message-success")

    # --- a cancel of another pending run -------------------------------------------------------------------
    sql("test", "UPDATE shop.cms_pages SET title = 'Summer sale' WHERE id = 4")
    go("sync")
    second = compare_and_wait()
    click("#go-review")
    shown("#schedule")
    tomorrow = (datetime.datetime.now(OFFSET) + datetime.timedelta(days=1)).replace(second=0, microsecond=0)
    set_value("#run-date", tomorrow.strftime("%Y-%m-%d"))
    set_value("#run-time", tomorrow.strftime("%H:%M"))
    click("#schedule")
    wait(lambda: text("#run-statement"))
    pending = prod(f"SELECT id FROM envsync.syncs WHERE comparison_id = {second} AND status = 'pending'")
    go("messages")
    item = open_message(pending, "Synchronization process")
    item.find_element(By.CSS_SELECTOR, "button.cancel").click()
    shown("#confirm-yes")
    shot("cancel-confirm")
    click("#confirm-yes")
    check("the cancel link cancels the pending synchronization", wait(lambda: prod(
        f"SELECT status || ' ' || cancelled_by FROM envsync.syncs WHERE id = {pending}") == f"cancelled {ANNA}"))
    item = open_message(pending, "Synchronization process")
    contains("its message says so", item.find_element(By.CSS_SELECTOR, ".text").text, "was cancelled on")
    contains("and who cancelled it", item.text, f"Cancelled by {ANNA} on ")
    shot("message-cancelled")

    # --- History: revert ---------------------------------------------------------------------------------------
    go("history")
    row = f'#syncs tr[data-sync="{sync}"]'
    shown(row)
    until = prod(f"SELECT revertible_until FROM envsync.syncs WHERE id = {sync}")
    equal("History offers Revert for the synchronization, and until when",
          (text(f"{row} .revert-button"), text(f"{row} .until")), ("Revert", f"until {local_minute(until)}"))
    check("not for the test import", find(f'#syncs tr[data-sync="{test_import}"] .revert').text == "")
    equal("History lists the comparisons", [r.get_attribute("data-comparison") for r in finds("#comparisons tbody tr")][:2],
          [second, comparison])
    shot("history")
    click(f"{row} .revert-button")
    click("#confirm-yes")
    statement = wait(lambda: text("#revert-statement"), 60)
    revert = prod(f"SELECT id FROM envsync.syncs WHERE reverts = {sync}")
    equal("Revert puts PROD back, and says so", statement,
          f"Synchronization {sync} is reverted (revert {revert}): PROD is back as it was.")
    equal("PROD is as before the synchronization", prod("SELECT shop_fixture.fingerprint()"), fingerprint)
    equal("recorded as the user's revert", prod(f"SELECT status || ' ' || scheduled_by FROM envsync.syncs WHERE id = {revert}"),
          f"succeeded {ANNA}")
    wait(lambda: "Reverted by" in text(f"{row} .outcome"))
    equal("the synchronization is marked reverted, with no Revert any more",
          (text(f"{row} .outcome"), text(f"{row} .revert")), (f"Reverted by {ANNA}", ""))
    shot("reverted")

    # --- a failing synchronization: FAILURE with its reason ------------------------------------------------------
    go("sync")
    third = compare_and_wait()
    click("#go-review")
    shown("#schedule")
    sql("test", "UPDATE shop.products SET price = 99 WHERE id = 3")   # after the review: drift
    click("#run-now")
    click("#schedule")
    failure = wait(lambda: text("#run-result .error"), 60)
    equal("a synchronization of records changed since the review fails, writing nothing", text("#run-statement"),
          "The synchronization failed: nothing was written.")
    contains("with envsync's reason", failure, '1 record changed in environment "test" since the comparison.')
    contains("its detail", failure, "Detail: shop.products 3: changed")
    contains("and what to do", failure, "What to do: Compare again and review the new differences.")
    failed = prod(f"SELECT id FROM envsync.syncs WHERE comparison_id = {third} AND status = 'failed'")
    equal("PROD is unchanged", prod("SELECT shop_fixture.fingerprint()"), fingerprint)
    shot("run-failed")
    go("messages")
    item = open_message(failed, "FAILURE: Synchronization process")
    box = item.find_element(By.CSS_SELECTOR, ".error").text
    contains("the FAILURE message gives the error", box, '1 record changed in environment "test" since the comparison.')
    contains("its detail", box, "Detail: shop.products 3: changed")
    contains("and its hint", box, "What to do: Compare again and review the new differences.")
    shot("message-failure")

    # --- the server ends the user's connections: told so, they log in again -----------------------------------
    prod(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
         f"WHERE usename = '{ANNA}' AND application_name = 'envsync-admin'")
    find('#nav a[data-screen="history"]').click()
    contains("a session whose connection the server ended says so, and asks to log in again",
             wait(lambda: shown("#login-user") and text("#login-error .error")),
             "The connection to PROD's database was lost.")
    login(ANNA, ENV["ANNA_PASSWORD"])
    check("logged in again, the user is back on the screen they asked for",
          wait(lambda: text(".view > h1") == "History" and finds("#syncs tr")))

    # --- logging out ----------------------------------------------------------------------------------------------
    click("#logout")
    check("logging out shows the login again", shown("#login-user"))
    check("and closes the user's connections", wait(lambda: admin_connections(ANNA) == 0, 5))
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    equal("the page logged no error (and no CSP violation)", severe, [])
    print("END", flush=True)
finally:
    driver.quit()
