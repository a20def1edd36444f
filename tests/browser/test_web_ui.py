"""What a person does in the web UI, in chromium, against the running suite: sign in and stay
signed in, manage users, promotions and every other record service, read the audit history,
be refused as a member, sign out. The tests run in file order: the audit test looks for the
changes the tests before it made."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from devtools.suite import load_suite
from tests.browser.conftest import ADMIN, ADMIN_NAME, Suite, document

# What the tests before the audit test changed: (object name, object's name) pairs.
CHANGES: list[tuple[str, str]] = []
# Services whose pages come from the generic record pages alone (no test of their own above).
OTHER_RECORD_SERVICES = [
    s.name for s in load_suite().services if s.name not in ("user", "promotion", "audit")
]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_be_visible()


def field(page: Page, path: str) -> str:
    """The selector of a form field's input by its proto path ("product[0].id")."""
    at = f'[data-field="{path}"]'
    return f"{at} > input, {at} > select, {at} > textarea"


def test_sign_in_survives_a_reload_and_sign_out_ends_it(page: Page) -> None:
    page.goto("/user")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fuser"))
    document(page, "login")
    page.get_by_label("Email").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_test_id("error")
    expect(error).to_contain_text("Wrong email or password")
    expect(error.get_by_test_id("request-id")).to_have_text(re.compile(r"^[0-9a-f]{16}$"))

    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/user$"))  # back where it was sent from
    expect(page.get_by_test_id("signed-in-as")).to_have_text(ADMIN_NAME)
    page.reload()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(ADMIN_NAME)
    expect(page.get_by_test_id("results")).to_contain_text("duck@mymail.com")
    page.goto("/")
    expect(page.get_by_role("heading", name=f"Welcome, {ADMIN_NAME}")).to_be_visible()
    document(page, "home")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.reload()
    expect(page.get_by_label("Email")).to_be_visible()
    page.goto("/promotion")
    expect(page).to_have_url(re.compile(r"/login"))


def test_sign_in_is_renewed_with_the_refresh_token(page: Page) -> None:
    sign_in(page, *ADMIN)
    # An access token the services refuse: the next call renews it once and is sent again.
    page.evaluate(
        """() => {
          const s = JSON.parse(localStorage.getItem('gotemp.session'));
          s.token = 'not-a-token';
          localStorage.setItem('gotemp.session', JSON.stringify(s));
        }"""
    )
    page.reload()
    page.goto("/promotion")
    expect(page.get_by_test_id("results")).to_contain_text("Promo1")
    token = page.evaluate("() => JSON.parse(localStorage.getItem('gotemp.session')).token")
    assert token != "not-a-token" and token.count(".") == 2


def test_admin_creates_a_user_with_field_errors_shown_and_finds_it(page: Page) -> None:
    sign_in(page, *ADMIN)
    page.goto("/user")
    page.get_by_role("link", name="New user").click()
    expect(page.get_by_role("heading", name="New user")).to_be_visible()
    lastname = unique("Webtest")
    page.locator(field(page, "firstname")).fill("Wanda")
    page.locator(field(page, "lastname")).fill(lastname)
    page.locator(field(page, "email")).fill("not-an-email")
    page.locator(field(page, "pwd")).fill("a long enough password")
    page.locator(field(page, "company")).fill("Web Test Inc")
    page.locator(field(page, "valid_from")).fill("2024-01-01")
    page.locator(field(page, "valid_thru")).fill("2030-12-31")
    page.locator(field(page, "active")).check()
    # the dry run (BeforeCreateUser) says what the service would refuse before saving
    expect(page.get_by_test_id("dry-run")).to_contain_text("would refuse")
    page.get_by_role("button", name="Create user").click()
    email_error = page.locator('[data-field="email"] .field-error')
    expect(email_error).to_be_visible()  # beside its field, from google.rpc.BadRequest
    expect(page.get_by_test_id("request-id")).to_have_text(re.compile(r"^[0-9a-f]{16}$"))
    document(page, "user-form-errors")

    email = f"{lastname.lower()}@example.com"
    page.locator(field(page, "email")).fill(email)
    expect(page.get_by_test_id("dry-run")).to_contain_text("Check passed")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name=f"User: Wanda {lastname}")).to_be_visible()
    expect(page.locator(field(page, "email"))).to_have_value(email)
    CHANGES.append(("user", f"Wanda {lastname}"))

    page.goto("/user")
    page.locator(field(page, "lastname")).fill(lastname)
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(lastname)
    document(page, "users")
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=f"User: Wanda {lastname}")).to_be_visible()
    document(page, "user")


def test_admin_edits_a_promotions_products(page: Page) -> None:
    sign_in(page, *ADMIN)
    page.goto("/promotion")
    page.locator(field(page, "name")).fill("Promo2")
    page.get_by_role("button", name="Search").click()
    # the page opened listing every promotion: wait for the search's answer, not the old list
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Promo2")
    document(page, "promotions")
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Promotion: Promo2")).to_be_visible()
    page.get_by_role("button", name="Edit").click()
    products = page.locator('[data-field="product"] > fieldset.row')
    before = products.count()
    page.get_by_role("button", name="Add product").click()
    new = f"product[{before}]"
    product_id = str(900_000 + uuid.uuid4().int % 99_999)
    page.locator(field(page, f"{new}.id")).fill(product_id)
    page.locator(field(page, f"{new}.upc_code")).fill("0123456789012")
    page.locator(f'[data-field="{new}"]').get_by_role("button", name="Add discount").click()
    page.locator(field(page, f"{new}.discount[0].value")).fill("150")
    page.locator(field(page, f"{new}.discount[0].type")).select_option(label="percentage")
    page.locator(field(page, f"{new}.discount[0].description")).fill("web test")
    expect(page.get_by_test_id("dry-run")).to_contain_text("would refuse")  # 150 %
    page.get_by_role("button", name="Save changes").click()
    value_error = page.locator(f'[data-field="{new}.discount[0].value"] .field-error')
    expect(value_error).to_be_visible()
    page.locator(field(page, f"{new}.discount[0].value")).fill("15")
    expect(page.get_by_test_id("dry-run")).to_contain_text("Check passed")
    document(page, "promotion-edit")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.locator(field(page, f"{new}.id"))).to_have_value(product_id)
    expect(page.locator(field(page, f"{new}.discount[0].value"))).to_have_value("15")
    document(page, "promotion")
    CHANGES.append(("promotion", "Promo2"))


@pytest.mark.parametrize("service", OTHER_RECORD_SERVICES)
def test_admin_creates_a_record_from_the_generic_pages(page: Page, service: str) -> None:
    sign_in(page, *ADMIN)
    page.goto(f"/{service}")
    page.get_by_role("link", name=f"New {service}").click()
    expect(page.get_by_role("heading", name=f"New {service}")).to_be_visible()
    name = unique(f"Web {service} ")
    page.locator(field(page, "name")).fill(name)
    for path in ("validity_dates.valid_from", "valid_from"):
        if page.locator(f'[data-field="{path}"]').count():
            page.locator(field(page, path)).fill("2024-01-01")
    for path in ("validity_dates.valid_thru", "valid_thru"):
        if page.locator(f'[data-field="{path}"]').count():
            page.locator(field(page, path)).fill("2030-12-31")
    if page.locator('[data-field="extra_fields"]').count():
        page.locator(field(page, "extra_fields")).fill('{"color": "red"}')
    for path in ("hierarchy_level",):
        if page.locator(f'[data-field="{path}"]').count():
            page.locator(field(page, path)).fill("SKU")
    document(page, f"{service}-new")
    page.get_by_role("button", name=f"Create {service}").click()
    expect(page.get_by_role("heading", name=re.compile(f": {re.escape(name)}$"))).to_be_visible()
    CHANGES.append((service, name))
    page.goto(f"/{service}")
    page.locator(field(page, "name")).fill(name)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("results").locator("tbody tr")).to_have_count(1)
    document(page, f"{service}s")


def test_audit_history_names_who_changed_what(page: Page) -> None:
    assert CHANGES, "run with the tests above: they make the changes this test looks for"
    sign_in(page, *ADMIN)
    page.goto("/audit")
    for object_name, name in CHANGES:
        page.get_by_label("Object", exact=True).select_option(object_name)
        page.get_by_label("User").select_option(label=ADMIN_NAME)
        row = page.get_by_test_id("audit-records").locator("tbody tr", has_text=name)
        # events reach the audit service through the outbox and NATS: search until it shows
        for _ in range(30):
            page.get_by_role("button", name="Search").click()
            page.wait_for_load_state("networkidle")
            if row.count():
                break
            page.wait_for_timeout(500)
        expect(row.first).to_contain_text(ADMIN_NAME)
        expect(row.first).to_contain_text(object_name)
    page.get_by_label("Object", exact=True).select_option("")
    page.get_by_label("User").select_option("")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    page.get_by_label("From").fill(f"{today}T00:00")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("audit-records")).to_contain_text("signed in")
    document(page, "audit")


@pytest.fixture
def member(suite: Suite) -> tuple[str, str]:
    """A member (made by the admin over the Connect API, as curl would): email and password."""
    token = suite.token(*ADMIN)
    email = f"{unique('member')}@example.com"
    password = "member password"
    suite.call(
        "user.UserSrv/CreateUser",
        {
            "firstname": "Mia",
            "lastname": "Member",
            "email": email,
            "pwd": password,
            "active": True,
            "validFrom": "2024-01-01T00:00:00Z",
            "validThru": "2030-12-31T00:00:00Z",
            "role": "ROLE_MEMBER",
        },
        token,
    )
    return email, password


def test_member_is_offered_only_what_a_member_may_do(page: Page, member: tuple[str, str]) -> None:
    sign_in(page, *member)
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Mia Member")
    page.goto("/promotion")
    expect(page.get_by_test_id("results")).to_contain_text("Promo1")
    expect(page.get_by_role("link", name="New promotion")).to_have_count(0)
    page.get_by_test_id("results").locator("tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Promotion: "))).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete…")).to_have_count(0)
    # an admin-only page reached by its address says why it is refused
    page.goto("/user/new")
    expect(page.get_by_role("alert")).to_have_text("Only admins may create users.")
    # a member edits their own record, without the fields only an admin may change
    page.goto("/user")
    page.locator(field(page, "lastname")).fill("Member")
    page.locator(field(page, "email")).fill(member[0])
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(member[0])
    rows.first.get_by_role("link").click()
    page.get_by_role("button", name="Edit").click()
    expect(page.locator(field(page, "role"))).not_to_be_editable()
    expect(page.locator(field(page, "active"))).to_be_disabled()
    page.locator(field(page, "company")).fill("Members Ltd")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")


def test_member_refused_by_the_service_sees_why_and_the_request_id(
    page: Page, suite: Suite, member: tuple[str, str]
) -> None:
    sign_in(page, *member)
    page.goto("/user")
    page.get_by_test_id("results").locator("tbody tr", has_text="duck@mymail.com").get_by_role(
        "link"
    ).click()
    expect(page.get_by_role("heading", name=f"User: {ADMIN_NAME}")).to_be_visible()
    # The admin's record offers the member nothing; a page that is stale (the member was an
    # admin when it loaded) still gets the service's refusal, shown clearly.
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    page.evaluate(
        """() => {
          const s = JSON.parse(localStorage.getItem('gotemp.session'));
          s.role = 'admin';
          localStorage.setItem('gotemp.session', JSON.stringify(s));
        }"""
    )
    page.reload()
    page.get_by_role("button", name="Delete…").click()
    error = page.get_by_test_id("error")
    expect(error).to_contain_text("Not allowed: your role may not do this")
    expect(error.get_by_test_id("request-id")).to_have_text(re.compile(r"^[0-9a-f]{16}$"))
    document(page, "refused")
