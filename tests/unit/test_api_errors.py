"""One JSON error shape for every failure a client can meet."""

import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_caller_gets_401_in_the_error_shape(client):
    response = client.get("/api/v1/companies")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_bad_token_gets_401(client):
    response = client.get("/api/v1/companies", HTTP_AUTHORIZATION="Token nope")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_unknown_api_url_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


def test_wrong_method_is_405(api, owner):
    response = api.as_user(owner).delete("/api/v1/me")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_400_not_500(api, staff):
    response = api.as_user(staff).post("/api/v1/companies", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/companies" in schema.content
    assert docs.status_code == 200


def test_server_error_under_api_is_json(rf):
    from config.api import server_error

    response = server_error(rf.get("/api/v1/companies"))

    assert response.status_code == 500
    assert b'"code": "server_error"' in response.content


def test_password_guessing_for_tokens_is_rate_limited(api, owner, settings):
    from django.core.cache import cache

    cache.clear()
    attempts = [api.post("/api/v1/auth/token", {"username": "owner", "password": f"guess{n}"}) for n in range(21)]

    assert [r.status_code for r in attempts[:20]] == [400] * 20
    assert attempts[20].status_code == 429
    assert attempts[20].json()["error"]["code"] == "throttled"
    cache.clear()
