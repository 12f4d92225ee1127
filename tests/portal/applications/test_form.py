"""The public application form: SPEC field names, one clear message per field,
nothing typed lost on an error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from portal.applications.forms import APPLICATION_FIELDS, read_application
from tests.portal.support import APPLICATION, post_form

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

SPEC_FIELDS = {
    "organization_name",
    "website",
    "country",
    "contact_name",
    "contact_email",
    "platform_description",
    "offers_chat",
    "user_age_range",
    "monthly_active_users",
    "moderation_team_size",
    "escalation_contact",
    "ncmec_esp_id",
    "agree_terms",
}


def test_the_form_has_exactly_the_spec_fields_each_with_a_label(client: TestClient) -> None:
    page = client.get("/apply").text
    form = page.split('<form method="post" action="/apply"', 1)[1].split("</form>", 1)[0]
    names = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([a-z_]+)"', form))
    csrf = {name for name in names if "csrf" in name}
    assert len(csrf) == 1
    assert names - csrf == SPEC_FIELDS == set(APPLICATION_FIELDS)
    for field_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page):
        assert f'for="{field_id}"' in page, field_id
    assert "<legend>Does the platform offer chat between users?</legend>" in page


def test_a_complete_form_is_accepted_and_cleaned() -> None:
    outcome = read_application({**APPLICATION, "website": "chat.example", "ncmec_esp_id": " 123 "})
    assert outcome.errors == {}
    assert outcome.data is not None
    assert outcome.data.website == "https://chat.example"
    assert outcome.data.monthly_active_users == 25_000
    assert outcome.data.ncmec_esp_id == "123"
    assert outcome.data.offers_chat is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("organization_name", "  ", "Enter the organisation's name."),
        ("website", "not a site", "Enter a web address like https://example.org."),
        ("website", "javascript:alert(1)", "Enter a web address like https://example.org."),
        ("contact_email", "ada-at-example", "Enter an e-mail address like name@example.org."),
        ("offers_chat", "", "Choose yes or no: does the platform offer chat between users?"),
        ("user_age_range", "toddlers", "Choose the ages of the platform's users."),
        (
            "monthly_active_users",
            "lots",
            "Enter the number of monthly active users as a whole number, like 1500.",
        ),
        ("moderation_team_size", "-3", "as a whole number"),
        ("escalation_contact", "", "Enter who handles urgent child-safety escalations."),
        ("ncmec_esp_id", "<script>", "An NCMEC ESP id has only letters, digits and hyphens."),
        ("agree_terms", "", "You must agree to the terms of use to apply."),
        ("organization_name", "x" * 201, "must be at most 200 characters"),
    ],
)
def test_each_field_says_what_is_wrong(field: str, value: str, message: str) -> None:
    outcome = read_application({**APPLICATION, field: value})
    assert outcome.data is None
    assert list(outcome.errors) == [field]
    assert message in outcome.errors[field]


def test_an_error_shows_every_message_and_keeps_what_was_typed(client: TestClient) -> None:
    typed = {**APPLICATION, "contact_email": "wrong", "agree_terms": "", "offers_chat": "no"}
    response = post_form(client, "/apply", "/apply", typed)
    assert response.status_code == 422
    page = response.text
    assert "There is a problem" in page
    assert '<a href="#contact_email">Enter an e-mail address like name@example.org.</a>' in page
    assert 'aria-invalid="true"' in page
    assert 'value="Example Chat Ltd"' in page
    assert 'value="wrong"' in page
    assert "Group chat for school clubs." in page
    assert 'id="offers_chat-no" name="offers_chat" value="no" checked' in page
    assert '<option value="13_17" selected>' in page
    assert 'value="25,000"' in page


def test_typed_html_is_shown_as_text(client: TestClient) -> None:
    response = post_form(
        client,
        "/apply",
        "/apply",
        {**APPLICATION, "organization_name": "<b>Bold</b>", "agree_terms": ""},
    )
    assert "&lt;b&gt;Bold&lt;/b&gt;" in response.text
    assert "<b>Bold</b>" not in response.text
