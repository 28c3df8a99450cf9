"""What more than one billing test module uses that is not a fixture."""

from __future__ import annotations


def invalid(response) -> dict:
    """The field messages of a 400 in the API's error shape."""
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (400, "invalid")
    return body["fields"]
